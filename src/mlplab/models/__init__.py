"""Architecture families as plain ``nn.Module``s (no Lightning): import them from here or by short name."""

from mlplab.models import registry
from mlplab.models.counting import count_parameters
from mlplab.models.flat import FlatMLP
from mlplab.models.sequence import (
    GatedAssociativeMemory,
    GatedConv,
    GatedLinearAttention,
    HopfieldLM,
    Mamba,
    SequenceModel,
    Transformer,
)
from mlplab.models.timeseries import DLinear, PatchTST, TimeMixer, TSMixer, TSMixerGoogle
from mlplab.models.vision import (
    GMLP,
    MAXIM,
    MSMLP,
    Activator,
    BottleneckMLP,
    ConventionalMLP,
    ConViT,
    DynamicSpectrumMixer,
    HourglassMLP,
    MlpMixer,
    NiNformer,
    PoolFormer,
    RaftMLP,
    ResMLP,
    StandardMLP,
    StripMLP,
)

__all__ = [
    "GMLP",
    "MAXIM",
    "MSMLP",
    "Activator",
    "BottleneckMLP",
    "ConViT",
    "ConventionalMLP",
    "DLinear",
    "DynamicSpectrumMixer",
    "FlatMLP",
    "HourglassMLP",
    "MlpMixer",
    "NiNformer",
    "PatchTST",
    "PoolFormer",
    "RaftMLP",
    "ResMLP",
    "StandardMLP",
    "StripMLP",
    "TSMixer",
    "TSMixerGoogle",
    "TimeMixer",
    "GatedAssociativeMemory",
    "GatedConv",
    "GatedLinearAttention",
    "HopfieldLM",
    "Mamba",
    "SequenceModel",
    "Transformer",
    "count_parameters",
    "registry",
]
