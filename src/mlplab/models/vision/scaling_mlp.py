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

Checked weight for weight against the official code (outputs and every weight's gradient, the three
B-MLP variants and an S-MLP at CIFAR-10 shapes: ``benchmarks/vision_official_check.py``, results in
``docs/results.md``). Images are flattened in ``(C, H, W)`` order, as the official ``torch.reshape`` of
its NCHW batches does, so the official checkpoints' ``linear_in`` applies unchanged.

Shapes: input ``(B, *input_shape)`` flattened; output ``(B, *output_shape)``, usually ``(B, K)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.flat import FlatMLP
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.nn import ResidualMLPBlock

CIFAR = ((3, 32, 32), (10,))
PAPER = "Bachmann et al. 2023, at 32x32x3 input and 10 classes, given to 0.1M"


def _published(depth: int, width: int, params: int) -> Variant:
    """B-MLP ``B-{depth}/Wi-{width}`` with its count in the paper."""
    return Variant(
        {"embed_dim": width, "depth": depth}, params, precision=100_000, shapes=CIFAR, source=PAPER
    )


class ScalingMLP(FlatMLP):
    """Shared body of the two MLPs of "Scaling MLPs": an embedding, the family's blocks, a linear head.

    ``linear_in: d_x -> m``, then ``blocks`` (built by the subclass and handed to :meth:`set_blocks`),
    then ``linear_out: m -> d_y`` and the output activation.

    Args:
        input_shape: Shape of one input sample, e.g. ``(3, 32, 32)``.
        output_shape: Shape of one output sample, ``(num_classes,)`` for classification.
        embed_dim: Width m (the paper's ``Wi``).
        depth: Number of blocks L.
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
        require_positive(type(self).__name__, embed_dim=embed_dim, depth=depth)
        self.embed_dim, self.depth, self.output_activation_kind = embed_dim, depth, output_activation
        self.linear_in = nn.Linear(self.d_x, embed_dim)

    def set_blocks(self, blocks: Iterable[nn.Module]) -> None:
        """Add the blocks (``(B, m) -> (B, m)`` each), then the head and the output activation."""
        self.blocks = nn.Sequential(*blocks)
        self.linear_out = nn.Linear(self.embed_dim, self.d_y)
        self.output_activation = nn.Sigmoid() if self.output_activation_kind == "sigmoid" else nn.Identity()

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.linear_out(self.blocks(self.linear_in(x))))


@register_family(
    domains=("image_classification",),
    variants={
        "tiny": Variant({"embed_dim": 64, "depth": 2}),
        "B-6/Wi-512": _published(6, 512, 14_200_000),
        "B-6/Wi-1024": _published(6, 1024, 53_500_000),
        "B-12/Wi-1024": _published(12, 1024, 103_900_000),
    },
    blocks=BlockLayout(ResidualMLPBlock, mlp=("mlp",)),
    renamed={"width": "embed_dim", "expansion": "mlp_ratio"},
    source="own, weight for weight with the official code",
)
class BottleneckMLP(ScalingMLP):
    """B-MLP: a deep residual MLP with inverted-bottleneck blocks (see the module docstring).

    Args:
        input_shape: Shape of one input sample, e.g. ``(3, 32, 32)``.
        output_shape: Shape of one output sample, ``(num_classes,)`` for classification.
        mlp_ratio: Hidden width of each block as a multiple of ``embed_dim`` (the paper's expansion).
        norm: Normalisation at the start of each block (``layernorm`` in the paper).
        **kwargs: ``embed_dim`` (the residual stream's width m), ``depth`` (residual blocks L) and
            ``output_activation`` (:class:`ScalingMLP`).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        mlp_ratio: float = 4.0,
        norm: Literal["layernorm", "batchnorm"] = "layernorm",
        **kwargs: Any,
    ):
        super().__init__(input_shape, output_shape, **kwargs)
        hidden = int(mlp_ratio * self.embed_dim)
        if hidden <= 0:
            raise ConfigError(f"BottleneckMLP: mlp_ratio must be positive, got {mlp_ratio}")
        width = self.embed_dim
        self.set_blocks(
            ResidualMLPBlock(width, hidden, norm=norm, norm_affine=True, activation="gelu", bias=True)
            for _ in range(self.depth)
        )


@register_family(
    domains=("image_classification",),
    variants={"tiny": Variant({"embed_dim": 64, "depth": 2})},
    renamed={"width": "embed_dim"},
    legacy_keys=[(r"^layers\.", "blocks.")],
    source="own, weight for weight with the official code",
)
class StandardMLP(ScalingMLP):
    """S-MLP: the plain, non-residual MLP baseline of "Scaling MLPs" (see the module docstring).

    ``depth`` L counts the hidden widths: the network has ``L - 1`` hidden ``m -> m`` layers.

    Args:
        input_shape: Shape of one input sample, e.g. ``(3, 32, 32)``.
        output_shape: Shape of one output sample, ``(num_classes,)`` for classification.
        **kwargs: ``embed_dim`` (the width m of every hidden layer), ``depth`` and ``output_activation``
            (:class:`ScalingMLP`).
    """

    def __init__(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...], **kwargs: Any):
        super().__init__(input_shape, output_shape, **kwargs)
        width = self.embed_dim
        self.set_blocks(
            nn.Sequential(nn.LayerNorm(width), nn.GELU(), nn.Linear(width, width))
            for _ in range(self.depth - 1)
        )
