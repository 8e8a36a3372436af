"""Activator: a transformer whose attention is replaced by a GLU unit.

Paper: Abdullah Nazhat Abdullah, Tarkan Aydin, "Activator: GLU Activation Function as the Core Component
of a Vision Transformer", arXiv 2405.15953 (2024). Official code: github.com/Abdullah-88/Activator
(``activator.py``, ``activator_only_GEGLU.py``, ``train.py``).

* Patch embedding: a ``p × p`` convolution of stride ``p`` to ``d_model`` (``embed_dim``) channels,
  flattened to ``N = (H/p)·(W/p)`` tokens.
* Block: ``x = x + GU(LN(x))``, then ``x = x + FFN(LN(x))`` (the FFN is dropped with ``ffn=False``,
  the paper's reduced variant). The gating unit is
  ``GU(x) = W3 · (LN_h(act(W1 x)) ⊙ LN_h(W2 x))`` with ``W1, W2: d_model -> d_ffn`` (``mlp_dim``),
  ``W3: d_ffn -> d_model`` (GELU: GEGLU; the paper's ablation also uses SiLU and ReLU).
* Head: mean over the tokens, then a linear classifier (no final norm).

Checked weight for weight against the official code (outputs and every weight's gradient, at the
``cifar10`` variants: ``benchmarks/vision_official_check.py``, results in ``docs/results.md``).

Following the official code rather than the paper's figure: one LayerNorm per block serves both
residual branches, and one LayerNorm ``LN_h`` (over ``d_ffn``) serves both GLU halves. No layer mixes
tokens: the only spatial aggregation is the final mean over patches.

The FFN is the family's channel MLP (``channel_mlp``: conventional ``d_model -> d_ffn -> d_model`` with
GELU and dropout as the official ``FeedForward``, or hourglass).

CIFAR-10 protocol of the paper: that of :class:`~mlplab.models.vision.common.IsotropicPatchClassifier`
(variant ``cifar10``); 73.2% reported.

Shapes: ``(B, C, H, W) -> (B, N, d_model) -> (B, d_model) -> (B, num_classes)``.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import get_act_layer
from torch import nn

from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import CIFAR10, CONVENTIONAL, IsotropicPatchClassifier
from mlplab.nn import ChannelMLP


class ActivatorGatingUnit(nn.Module):
    """``W3 · (LN(act(W1 x)) ⊙ LN(W2 x))`` with one LayerNorm shared by both halves (official code).

    Shapes: ``(..., dim) -> (..., dim)``.

    Args:
        dim: Token width.
        hidden: Width of the gated halves.
        activation: Activation of the first half (``gelu``: GEGLU; ``silu``: SwiGLU; ``relu``: ReGLU).
    """

    def __init__(self, dim: int, hidden: int, activation: str = "gelu"):
        super().__init__()
        self.proj_1 = nn.Linear(dim, hidden)
        self.proj_2 = nn.Linear(dim, hidden)
        self.proj_3 = nn.Linear(hidden, dim)
        self.act = get_act_layer(activation)()
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.norm(self.act(self.proj_1(x)))
        v = self.norm(self.proj_2(x))
        return self.proj_3(u * v)


class ActivatorBlock(nn.Module):
    """``x + GU(LN(x))``, then (optionally) ``x + FFN(LN(x))``, with one shared LayerNorm (official code).

    Shapes: ``(B, N, dim) -> (B, N, dim)``.

    Args:
        dim: Token width.
        hidden: Hidden width of the gating unit and of the conventional FFN.
        dropout: Dropout inside the FFN.
        ffn: Keep the FFN (``False``: the paper's variant without it).
        activation: Activation of the gating unit.
        channel_mlp: The FFN: conventional or hourglass.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        dropout: float = 0.0,
        ffn: bool = True,
        activation: str = "gelu",
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.gating = ActivatorGatingUnit(dim, hidden, activation)
        self.ffn = channel_mlp.build(dim, hidden, drop=dropout) if ffn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gating(self.norm(x))
        if self.ffn is not None:
            x = x + self.ffn(self.norm(x))
        return x


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant(IsotropicPatchClassifier.tiny_args),
        "cifar10": Variant(
            IsotropicPatchClassifier.cifar10_args,
            params=2_650_890,
            shapes=CIFAR10,
            source="the official activator.py built with its train.py's CIFAR-10 configuration",
        ),
        "cifar10-no-ffn": Variant(
            {**IsotropicPatchClassifier.cifar10_args, "ffn": False},
            params=1_599_242,
            shapes=CIFAR10,
            source="the official activator_only_GEGLU.py, same configuration",
        ),
    },
    blocks=BlockLayout(ActivatorBlock, mixer=("gating",), mlp=("ffn",)),
    renamed=IsotropicPatchClassifier.renamed_args,
    source="own, weight for weight with the official code",
)
class Activator(IsotropicPatchClassifier):
    """Activator image classifier (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        ffn: Keep the FFN in every block (``False``: GLU units only, the paper's reduced variant).
        activation: Activation of the gating units (``gelu``, ``silu``, ``relu``).
        **kwargs: The arguments of :class:`~mlplab.models.vision.common.IsotropicPatchClassifier`:
            ``patch_size``, ``embed_dim``, ``mlp_dim`` (the gating units' and FFNs' hidden width),
            ``depth``, ``dropout`` (inside the FFNs), ``channel_mlp`` (the FFN).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        ffn: bool = True,
        activation: str = "gelu",
        **kwargs: Any,
    ):
        super().__init__(input_shape, output_shape, **kwargs)
        self.set_blocks(
            ActivatorBlock(self.embed_dim, self.mlp_dim, self.dropout_rate, ffn, activation, self.channel_mlp)
            for _ in range(self.depth)
        )
