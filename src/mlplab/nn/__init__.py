"""Building blocks shared by the families: residual MLPs, channel MLPs, mixtures of experts, projections."""

from mlplab.nn.channel_mlp import ChannelMLP, HourglassChannelMLP
from mlplab.nn.mlp import ResidualMLPBlock, make_norm
from mlplab.nn.moe import MixtureOfExperts, MoEPlusPlus, auxiliary_loss, link_gating_residuals
from mlplab.nn.projection import RandomProjection

__all__ = [
    "ChannelMLP",
    "HourglassChannelMLP",
    "MixtureOfExperts",
    "MoEPlusPlus",
    "RandomProjection",
    "ResidualMLPBlock",
    "auxiliary_loss",
    "link_gating_residuals",
    "make_norm",
]
