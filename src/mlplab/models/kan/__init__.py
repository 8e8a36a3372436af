"""Kolmogorov-Arnold networks: the B-spline KAN (pykan's layer) and S-KAN (selectable activation spaces).

They are exported from :mod:`mlplab.models`; :mod:`mlplab.models.kan.layers` holds the layers and the
``function_fitting`` domain.
"""
