"""The deep residual MLP (B-MLP) of "Scaling MLPs" and its non-residual baseline (S-MLP).

Paper: Gregor Bachmann, Sotiris Anagnostidis, Thomas Hofmann, "Scaling MLPs: A Tale of Inductive
Bias", NeurIPS 2023. Official code: github.com/gregorbachmann/scaling_mlps (``models/networks.py``:
``BottleneckMLP``, ``StandardMLP``).

* B-MLP, named B-L/Wi-m: flatten -> ``Linear(d_x, m)`` -> L blocks ``z + Wc · GELU(We · LN(z))``
  (``We: m -> 4m``, ``Wc: 4m -> m``, with biases, LayerNorm with affine parameters) -> ``Linear(m, K)``.
  There is no norm after the last block, as in the official code. Parameters at 32×32×3 input and
  10 classes: B-6/Wi-512 14.2M, B-6/Wi-1024 53.5M, B-12/Wi-1024 103.9M.
* S-MLP: flatten -> ``Linear(d_x, m)`` -> (L-1) times ``Linear(m, m) ∘ GELU ∘ LN`` -> ``Linear(m, K)``,
  no skip connections (the official ``StandardMLP`` with ``widths = [m] * L``).

Shapes: input ``(B, *input_shape)`` flattened; output ``(B, *output_shape)``, usually ``(B, K)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.flat import FlatMLP
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.nn import ResidualMLPBlock

CIFAR = ((3, 32, 32), (10,))
PAPER = "Bachmann et al. 2023, at 32x32x3 input and 10 classes, given to 0.1M"


@register_family(
    domains=("image_classification",),
    variants={
        "tiny": Variant({"embed_dim": 64, "depth": 2}),
        "B-6/Wi-512": Variant(
            {"embed_dim": 512, "depth": 6}, params=14_200_000, precision=100_000, shapes=CIFAR, source=PAPER
        ),
        "B-6/Wi-1024": Variant(
            {"embed_dim": 1024, "depth": 6}, params=53_500_000, precision=100_000, shapes=CIFAR, source=PAPER
        ),
        "B-12/Wi-1024": Variant(
            {"embed_dim": 1024, "depth": 12},
            params=103_900_000,
            precision=100_000,
            shapes=CIFAR,
            source=PAPER,
        ),
    },
    blocks=BlockLayout(ResidualMLPBlock, mlp=("mlp",)),
    renamed={"width": "embed_dim", "expansion": "mlp_ratio"},
    source="own, following the official code",
)
class BottleneckMLP(FlatMLP):
    """B-MLP: a deep residual MLP with inverted-bottleneck blocks (see the module docstring).

    Args:
        input_shape: Shape of one input sample, e.g. ``(3, 32, 32)``.
        output_shape: Shape of one output sample, ``(num_classes,)`` for classification.
        embed_dim: Width m of the residual stream (the paper's ``Wi``).
        depth: Number of residual blocks L.
        mlp_ratio: Hidden width of each block as a multiple of ``embed_dim`` (the paper's expansion).
        norm: Normalisation at the start of each block (``layernorm`` in the paper).
        output_activation: ``none`` for logits, ``sigmoid`` for pixel targets in [0, 1].
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 1024,
        depth: int = 6,
        mlp_ratio: float = 4.0,
        norm: Literal["layernorm", "batchnorm"] = "layernorm",
        output_activation: Literal["none", "sigmoid"] = "none",
    ):
        super().__init__(input_shape, output_shape)
        require_positive("BottleneckMLP", embed_dim=embed_dim, depth=depth)
        hidden = int(mlp_ratio * embed_dim)
        if hidden <= 0:
            raise ConfigError(f"BottleneckMLP: mlp_ratio must be positive, got {mlp_ratio}")
        self.linear_in = nn.Linear(self.d_x, embed_dim)
        self.blocks = nn.Sequential(
            *(
                ResidualMLPBlock(embed_dim, hidden, norm=norm, norm_affine=True, activation="gelu", bias=True)
                for _ in range(depth)
            )
        )
        self.linear_out = nn.Linear(embed_dim, self.d_y)
        self.output_activation = nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity()

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.linear_out(self.blocks(self.linear_in(x))))


@register_family(
    domains=("image_classification",),
    variants={"tiny": Variant({"embed_dim": 64, "depth": 2})},
    renamed={"width": "embed_dim"},
    source="own, following the official code",
)
class StandardMLP(FlatMLP):
    """S-MLP: the plain, non-residual MLP baseline of "Scaling MLPs" (see the module docstring).

    Args:
        input_shape: Shape of one input sample, e.g. ``(3, 32, 32)``.
        output_shape: Shape of one output sample, ``(num_classes,)`` for classification.
        embed_dim: Width m of every hidden layer (the paper's ``Wi``).
        depth: Number of hidden widths L; the network has ``L - 1`` hidden ``m -> m`` layers.
        output_activation: ``none`` for logits, ``sigmoid`` for pixel targets in [0, 1].
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 1024,
        depth: int = 6,
        output_activation: Literal["none", "sigmoid"] = "none",
    ):
        super().__init__(input_shape, output_shape)
        require_positive("StandardMLP", embed_dim=embed_dim, depth=depth)
        self.linear_in = nn.Linear(self.d_x, embed_dim)
        self.layers = nn.Sequential(
            *(
                nn.Sequential(nn.LayerNorm(embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
                for _ in range(depth - 1)
            )
        )
        self.linear_out = nn.Linear(embed_dim, self.d_y)
        self.output_activation = nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity()

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.linear_out(self.layers(self.linear_in(x))))
