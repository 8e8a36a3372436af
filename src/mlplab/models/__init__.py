"""Architecture families as plain ``nn.Module``s (no Lightning): import them from here or by short name.

Every family registers itself (:mod:`mlplab.models.registry`) in its own file; importing this package
imports them all. ``mlplab models`` lists them with their named variants.
"""

from mlplab.models import registry
from mlplab.models.counting import count_parameters
from mlplab.models.fields.cam import CAM
from mlplab.models.fields.coordinate_mlp import CoordinateMLP
from mlplab.models.fields.fresh import FreSh
from mlplab.models.fields.rbfnet import GaussianRBFNet
from mlplab.models.fields.siren import SIREN
from mlplab.models.flat import FlatMLP
from mlplab.models.kan.kan import KAN
from mlplab.models.kan.skan import SKAN
from mlplab.models.sequence.common import SequenceModel
from mlplab.models.sequence.gam import GatedAssociativeMemory
from mlplab.models.sequence.gated_conv import GatedConv
from mlplab.models.sequence.gla import GatedLinearAttention
from mlplab.models.sequence.hopfield import HopfieldLM
from mlplab.models.sequence.mamba import Mamba
from mlplab.models.sequence.transformer import Transformer
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
    "CAM",
    "GMLP",
    "KAN",
    "MAXIM",
    "MSMLP",
    "SIREN",
    "SKAN",
    "Activator",
    "BottleneckMLP",
    "ConViT",
    "ConventionalMLP",
    "CoordinateMLP",
    "DLinear",
    "DynamicSpectrumMixer",
    "FlatMLP",
    "FreSh",
    "GatedAssociativeMemory",
    "GaussianRBFNet",
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
    "TSMixerGoogle",
    "TimeMixer",
    "Transformer",
    "count_parameters",
    "registry",
]
