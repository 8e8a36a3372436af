"""Forecasting families: `family((L, N), (H, N))` maps a history (B, L, N) to a forecast (B, H, N)."""

from mlplab.models.timeseries.common import ForecastingFamily, RevIN, SeriesDecomposition
from mlplab.models.timeseries.dlinear import DLinear
from mlplab.models.timeseries.timemixer import TimeMixer

__all__ = ["DLinear", "ForecastingFamily", "RevIN", "SeriesDecomposition", "TimeMixer"]
