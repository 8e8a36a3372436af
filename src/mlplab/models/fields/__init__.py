"""Neural fields: coordinate networks that map pixel coordinates to colours (one file per family).

They are exported from :mod:`mlplab.models`; :mod:`mlplab.models.fields.common` holds their base, the
``image_fitting`` domain and the coordinate encodings, :mod:`mlplab.models.fields.fresh` the FreSh
selection of a family's frequency scale.
"""
