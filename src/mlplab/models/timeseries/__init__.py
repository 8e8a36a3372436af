"""Forecasting families: `family((L, N), (H, N))` maps a history (B, L, N) to a forecast (B, H, N)."""

from mlplab.models.timeseries.common import ForecastingFamily, RevIN, SeriesDecomposition
from mlplab.models.timeseries.dlinear import DLinear
from mlplab.models.timeseries.patchtst import PatchTST
from mlplab.models.timeseries.timemixer import TimeMixer
from mlplab.models.timeseries.tsmixer import TSMixer
from mlplab.models.timeseries.tsmixer_google import TSMixerGoogle

__all__ = [
    "DLinear",
    "ForecastingFamily",
    "PatchTST",
    "RevIN",
    "SeriesDecomposition",
    "TSMixer",
    "TSMixerGoogle",
    "TimeMixer",
]
