"""Residual MLP blocks shared by the plain-MLP families."""

from __future__ import annotations

from typing import Literal

import torch
from timm.layers import Mlp, get_act_layer
from torch import nn

NormKind = Literal["batchnorm", "layernorm", "none"]


def make_norm(kind: NormKind, width: int, affine: bool) -> nn.Module:
    """A normalisation layer over the last axis of ``(B, width)`` inputs.

    Args:
        kind: ``batchnorm`` (``BatchNorm1d``), ``layernorm`` or ``none`` (identity).
        width: Number of features.
        affine: Whether the norm has a learnable scale and shift.
    """
    if kind == "batchnorm":
        return nn.BatchNorm1d(width, affine=affine)
    if kind == "layernorm":
        return nn.LayerNorm(width, elementwise_affine=affine)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: expected batchnorm, layernorm or none")


class ResidualMLPBlock(nn.Module):
    """Pre-norm residual MLP block ``z + W2 · act(W1 · norm(z))``.

    With ``norm="batchnorm", norm_affine=False, activation="relu", bias=False`` this is the block of
    the Hourglass MLP paper (Chen et al., 2025); with ``norm="layernorm", activation="gelu",
    bias=True`` and ``hidden = 4 * width`` it is the block of the B-MLP (Bachmann et al., 2023).
    ``hidden < width`` gives a narrow bottleneck inside a wide stream (hourglass), ``hidden > width``
    the conventional wide hidden layer. The two linear layers come from ``timm.layers.Mlp``.

    Shapes: ``(B, width) -> (B, width)``.

    Args:
        width: Width of the residual stream (d_z).
        hidden: Width of the hidden layer (d_h).
        norm: Normalisation applied to the block input.
        norm_affine: Whether that normalisation has learnable scale and shift.
        activation: Activation between the two layers: a class, or a name ``timm.layers.get_act_layer`` knows.
        bias: Whether the two linear layers have biases.
    """

    def __init__(
        self,
        width: int,
        hidden: int,
        norm: NormKind = "batchnorm",
        norm_affine: bool = False,
        activation: str | type[nn.Module] = "relu",
        bias: bool = False,
    ):
        super().__init__()
        self.norm = make_norm(norm, width, norm_affine)
        self.mlp = Mlp(width, hidden_features=hidden, act_layer=get_act_layer(activation), bias=bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.mlp(self.norm(z))
