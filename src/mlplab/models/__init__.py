"""Architecture families as plain ``nn.Module``s (no Lightning): import them from here or by short name."""

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
from mlplab.models.vision import BottleneckMLP, ConventionalMLP, HourglassMLP, StandardMLP

__all__ = [
    "BottleneckMLP",
    "ConventionalMLP",
    "FlatMLP",
    "GatedAssociativeMemory",
    "GatedConv",
    "GatedLinearAttention",
    "HopfieldLM",
    "HourglassMLP",
    "Mamba",
    "SequenceModel",
    "StandardMLP",
    "Transformer",
    "count_parameters",
]
