"""Architecture families as plain ``nn.Module``s (no Lightning): import them from here or by short name.

Every family registers itself (:mod:`mlplab.models.registry`) in its own file; importing this package
imports them all. ``mlplab models`` lists them with their named variants.
"""

from mlplab.models import registry
from mlplab.models.counting import count_parameters
from mlplab.models.flat import FlatMLP
from mlplab.models.sequence.common import SequenceModel
from mlplab.models.sequence.gam import GatedAssociativeMemory
from mlplab.models.sequence.gated_conv import GatedConv
from mlplab.models.sequence.gla import GatedLinearAttention
from mlplab.models.sequence.hopfield import HopfieldLM
from mlplab.models.sequence.mamba import Mamba
from mlplab.models.sequence.transformer import Transformer
from mlplab.models.tabular.finalmlp import FinalMLP
from mlplab.models.tabular.mlp import TabularMLP
from mlplab.models.tabular.tabm import TabM
from mlplab.models.timeseries.dlinear import DLinear
from mlplab.models.timeseries.patchtst import PatchTST
from mlplab.models.timeseries.timemixer import TimeMixer
from mlplab.models.timeseries.tsmixer import TSMixer
from mlplab.models.timeseries.tsmixer_google import TSMixerGoogle
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
    "DLinear",
    "DynamicSpectrumMixer",
    "FinalMLP",
    "FlatMLP",
    "GatedAssociativeMemory",
    "GatedConv",
    "GatedLinearAttention",
    "HopfieldLM",
    "HourglassMLP",
    "Mamba",
    "MlpMixer",
    "NiNformer",
    "PatchTST",
    "PoolFormer",
    "RaftMLP",
    "ResMLP",
    "SequenceModel",
    "StandardMLP",
    "StripMLP",
    "TSMixer",
    "TabM",
    "TabularMLP",
    "TSMixerGoogle",
    "TimeMixer",
    "Transformer",
    "count_parameters",
    "registry",
]
