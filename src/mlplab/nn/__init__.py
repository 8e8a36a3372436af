"""Building blocks shared by the families: residual MLP blocks, channel MLPs, random projections."""

from mlplab.nn.channel_mlp import ChannelMLP, HourglassChannelMLP
from mlplab.nn.mlp import ResidualMLPBlock, make_norm
from mlplab.nn.projection import RandomProjection

__all__ = ["ChannelMLP", "HourglassChannelMLP", "RandomProjection", "ResidualMLPBlock", "make_norm"]
