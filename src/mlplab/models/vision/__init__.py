"""Image families: plain MLPs on flattened images, token-mixing vision MLPs, MAXIM (one file each).

They are exported from :mod:`mlplab.models`; :mod:`mlplab.models.vision.common` holds their bases.
"""
