"""Forecasting families: `family((L, N), (H, N))` maps a history (B, L, N) to a forecast (B, H, N).

The families are exported from :mod:`mlplab.models`; this package exports what they share.
"""

from mlplab.models.timeseries.common import ForecastingFamily, RevIN, SeriesDecomposition

__all__ = ["ForecastingFamily", "RevIN", "SeriesDecomposition"]
