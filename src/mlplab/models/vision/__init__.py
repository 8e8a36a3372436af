"""Image families: plain MLPs on flattened images and token-mixing vision MLPs."""

from mlplab.models.vision.hourglass import ConventionalMLP, HourglassMLP
from mlplab.models.vision.scaling_mlp import BottleneckMLP, StandardMLP

__all__ = ["BottleneckMLP", "ConventionalMLP", "HourglassMLP", "StandardMLP"]
