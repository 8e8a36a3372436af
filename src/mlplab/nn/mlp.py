"""Residual MLP blocks shared by the plain-MLP families."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

NormKind = Literal["batchnorm", "layernorm", "none"]

#: Activations by name that need no timm (importing timm takes most of a second).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def activation_layer(activation: str | type[nn.Module]) -> type[nn.Module]:
    """The activation class a name or class stands for.

    The names of :data:`ACTIVATIONS` map to torch's classes; any other name goes through
    ``timm.layers.get_act_layer`` (``gelu_tanh``, ``quick_gelu``, ``hard_swish``, ...), which is
    imported only then.
    """
    if not isinstance(activation, str):
        return activation
    if activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    from timm.layers import get_act_layer

    return get_act_layer(activation)


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


class TwoLayerMLP(nn.Module):
    """``fc2(act(fc1(x)))``: the two linear layers of a block, named as in timm's ``Mlp``.

    Shapes: ``(..., in_features) -> (..., out_features)``.

    Args:
        in_features: Input width.
        hidden_features: Width of the hidden layer.
        out_features: Output width (``None``: ``in_features``).
        activation: Activation between the layers: a class, or a name :func:`activation_layer` knows.
        bias: Whether the two layers have biases.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        activation: str | type[nn.Module] = "gelu",
        bias: bool = True,
    ):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = activation_layer(activation)()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ResidualMLPBlock(nn.Module):
    """Pre-norm residual MLP block ``z + W2 · act(W1 · norm(z))``.

    With ``norm="batchnorm", norm_affine=False, activation="relu", bias=False`` this is the block of
    the Hourglass MLP paper (Chen et al., 2025); with ``norm="layernorm", activation="gelu",
    bias=True`` and ``hidden = 4 * width`` it is the block of the B-MLP (Bachmann et al., 2023).
    ``hidden < width`` gives a narrow bottleneck inside a wide stream (hourglass), ``hidden > width``
    the conventional wide hidden layer. The two linear layers are a :class:`TwoLayerMLP` (named as in
    timm's ``Mlp``: ``mlp.fc1``, ``mlp.fc2``).

    Shapes: ``(B, width) -> (B, width)``.

    Args:
        width: Width of the residual stream (d_z).
        hidden: Width of the hidden layer (d_h).
        norm: Normalisation applied to the block input.
        norm_affine: Whether that normalisation has learnable scale and shift.
        activation: Activation between the two layers: a class, or a name :func:`activation_layer` knows.
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
        self.mlp = TwoLayerMLP(width, hidden, activation=activation, bias=bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.mlp(self.norm(z))
