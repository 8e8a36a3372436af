"""Image families: plain MLPs on flattened images and token-mixing vision MLPs."""

from mlplab.models.vision.activator import Activator
from mlplab.models.vision.dynamic_spectrum_mixer import DynamicSpectrumMixer
from mlplab.models.vision.hourglass import ConventionalMLP, HourglassMLP
from mlplab.models.vision.maxim import MAXIM
from mlplab.models.vision.ms_mlp import MSMLP
from mlplab.models.vision.ninformer import NiNformer
from mlplab.models.vision.raft_mlp import RaftMLP
from mlplab.models.vision.scaling_mlp import BottleneckMLP, StandardMLP
from mlplab.models.vision.strip_mlp import StripMLP
from mlplab.models.vision.timm_families import GMLP, ConViT, MlpMixer, PoolFormer, ResMLP

__all__ = [
    "GMLP",
    "MAXIM",
    "MSMLP",
    "Activator",
    "BottleneckMLP",
    "ConViT",
    "ConventionalMLP",
    "DynamicSpectrumMixer",
    "HourglassMLP",
    "MlpMixer",
    "NiNformer",
    "PoolFormer",
    "RaftMLP",
    "ResMLP",
    "StandardMLP",
    "StripMLP",
]
