"""Architecture families as plain ``nn.Module``s (no Lightning): import them from here or by short name."""

from mlplab.models.counting import count_parameters
from mlplab.models.flat import FlatMLP
from mlplab.models.timeseries import DLinear, PatchTST, TimeMixer, TSMixer, TSMixerGoogle
from mlplab.models.vision import BottleneckMLP, ConventionalMLP, HourglassMLP, StandardMLP

__all__ = [
    "BottleneckMLP",
    "ConventionalMLP",
    "DLinear",
    "FlatMLP",
    "HourglassMLP",
    "PatchTST",
    "StandardMLP",
    "TSMixer",
    "TSMixerGoogle",
    "TimeMixer",
    "count_parameters",
]
