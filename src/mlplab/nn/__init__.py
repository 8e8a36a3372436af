"""Building blocks shared by the families: residual MLP blocks and random projections."""

from mlplab.nn.mlp import ResidualMLPBlock, make_norm
from mlplab.nn.projection import RandomProjection

__all__ = ["RandomProjection", "ResidualMLPBlock", "make_norm"]
