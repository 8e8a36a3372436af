"""TabM: an MLP ensemble in one model, with BatchEnsemble adapters around shared weights.

Paper: Yury Gorishniy, Akim Kotelnikov, Artem Babenko, "TabM: Advancing Tabular Deep Learning with
Parameter-Efficient Ensembling", ICLR 2025. Official code: github.com/yandex-research/tabm (the
``tabm`` package, ``tabm.py``; the paper's experiments in ``paper/``).

TabM holds ``k`` MLPs (``ensemble_size``; the paper's ``k``) that share their weight matrices. Every
linear layer is a BatchEnsemble layer: member ``i`` computes ``((x * r_i) @ W.T) * s_i + b_i``, with
``W`` shared and the adapters ``r_i``, ``s_i``, ``b_i`` its own. All members see the same batch, each
makes its own prediction, the task trains them all at once (the mean of their losses) and averages
their predictions (probabilities for classification).

* ``arch_type: tabm``: every layer a BatchEnsemble layer. TabM's initialisation: the first layer's
  ``r`` random (``±1`` per member and feature, or normal with numeric embeddings; one value per
  feature, repeated over the feature's one-hot or embedding width), every other ``r`` and ``s`` one,
  the biases equal across members.
* ``arch_type: tabm-mini``: only one member-specific scaling of the input (``adapter``), then a plain
  shared MLP; the members differ by that scaling alone.
* ``arch_type: tabm-packed``: ``k`` independent MLPs computed side by side (no sharing).

The blocks are ``Linear -> ReLU -> Dropout`` (``depth`` of them, width ``embed_dim``; the paper's
``n_blocks`` and ``d_block``), then a per-member linear head. Numeric columns enter as they are or
through piecewise-linear embeddings (``num_bins``; TabM† in the paper); categorical ones one-hot.
Weight for weight the same as the ``tabm`` package's ``TabM`` (checked in ``tests/models/tabular``) and
the paper's own model (``paper/bin/model.py``) at its tuned configurations: outputs and gradients equal
(``benchmarks/tabular_official_check.py --tabm``; docs/results.md).

Deviations: the paper's tables train each member on its own shuffled batches
(``share_training_batches: false``); mlplab's loader gives every member the same batch, the paper's
TabM♠ (shared batches), which the package and later versions of the paper recommend as the simpler
default. The one-hot column of code 0 (unknown categories) starts with zero weights (see
:mod:`mlplab.models.tabular.common`).

Shapes: ``(x_num (B, N), x_cat (B, C)) -> (B, k, num_outputs)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive, require_rate
from mlplab.models.registry import Variant, register_family
from mlplab.models.tabular.common import FlatFeatures, TabularFamily, zero_unknown_inputs

ArchType = Literal["tabm", "tabm-mini", "tabm-packed"]
ScalingInit = Literal["auto", "random-signs", "normal"]

CALIFORNIA = (8, (), 1)
PAPER = "TabM paper's tuned configuration on California housing, paper/exp/{}/california (report.json)"


def _uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    bound = fan_in**-0.5
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


@torch.no_grad()
def init_scaling(weight: torch.Tensor, kind: str, chunks: list[int]) -> None:
    """One random value per member and chunk (feature), repeated over the chunk: ``±1`` or N(0, 1)."""
    start = 0
    for size in chunks:
        value = torch.empty(weight.shape[0], 1, device=weight.device)
        if kind == "normal":
            value.normal_()
        else:
            value.bernoulli_(0.5).mul_(2).sub_(1)
        weight[:, start : start + size] = value
        start += size


class LinearBatchEnsemble(nn.Module):
    """``k`` linear layers sharing ``W``: member ``i`` computes ``((x * r_i) @ W.T) * s_i + b_i``.

    Shapes: ``(B, k, in_features) -> (B, k, out_features)``. ``r`` and ``s`` start at one (TabM sets the
    first layer's ``r`` afterwards), ``W`` and the bias uniform in ``±1/sqrt(in_features)``, the bias
    equal across members.
    """

    #: ``weight`` is a linear map: global magnitude pruning prunes it (:mod:`mlplab.analysis.pruning`).
    prunable_weights = ("weight",)

    def __init__(self, in_features: int, out_features: int, k: int):
        super().__init__()
        self.weight = _uniform((out_features, in_features), in_features)
        self.r = nn.Parameter(torch.ones(k, in_features))
        self.s = nn.Parameter(torch.ones(k, out_features))
        self.bias = nn.Parameter(_uniform((out_features,), in_features).detach().expand(k, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x * self.r) @ self.weight.T) * self.s + self.bias


class LinearEnsemble(nn.Module):
    """``k`` independent linear layers side by side: ``(B, k, in_features) -> (B, k, out_features)``."""

    #: ``weight`` holds ``k`` linear maps: global magnitude pruning prunes it (mlplab.analysis.pruning).
    prunable_weights = ("weight",)

    def __init__(self, in_features: int, out_features: int, k: int):
        super().__init__()
        self.weight = _uniform((k, in_features, out_features), in_features)
        self.bias = _uniform((k, out_features), in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.transpose(0, 1) @ self.weight).transpose(0, 1) + self.bias


class EnsembleBlock(nn.Module):
    """``Linear -> ReLU -> Dropout`` on ``(B, k, d)``, the linear layer of the chosen ensemble kind."""

    def __init__(self, linear: nn.Module, dropout: float):
        super().__init__()
        self.linear = linear
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.activation(self.linear(x)))


@register_family(
    domains=("tabular",),
    variants={
        "tiny": Variant({"ensemble_size": 4, "depth": 2, "embed_dim": 16, "dropout": 0.0}),
        "california": Variant(
            {"ensemble_size": 32, "depth": 3, "embed_dim": 400, "dropout": 0.2077},
            params=438_688,
            shapes=CALIFORNIA,
            source=PAPER.format("tabm"),
        ),
        "california-ple": Variant(
            {
                "ensemble_size": 32,
                "depth": 3,
                "embed_dim": 416,
                "dropout": 0.1811,
                "num_bins": 47,
                "numeric_embed_dim": 20,
            },
            params=545_472,
            shapes=CALIFORNIA,
            source=PAPER.format("tabm-piecewiselinear"),
        ),
        "mini-california": Variant(
            {"arch_type": "tabm-mini", "ensemble_size": 32, "depth": 3, "embed_dim": 304, "dropout": 0.0861},
            params=198_192,
            shapes=CALIFORNIA,
            source=PAPER.format("tabm-mini"),
        ),
        "packed-california": Variant(
            {"arch_type": "tabm-packed", "ensemble_size": 32, "depth": 4, "embed_dim": 992, "dropout": 0.0},
            params=94_882_848,
            shapes=CALIFORNIA,
            source=PAPER.format("tabm-packed"),
        ),
    },  # fmt: skip
    blocks=None,
    source="own, weight for weight with the `tabm` package and the paper's model (tabular_official_check.py)",
)
class TabM(TabularFamily):
    """TabM: ``k`` MLPs with shared weights and their own adapters, one prediction each (module docstring).

    Args:
        num_numeric: Numeric columns; filled in from the data.
        cardinalities: Codes per categorical column; filled in from the data.
        num_outputs: Classes, or 1 for regression; filled in from the data.
        arch_type: ``tabm`` (BatchEnsemble layers), ``tabm-mini`` (one input adapter) or
            ``tabm-packed`` (independent members).
        ensemble_size: Members k.
        depth: Blocks (the paper's ``n_blocks``).
        embed_dim: Width of the blocks (``d_block``).
        dropout: Dropout after every block's activation.
        num_bins: Piecewise-linear embeddings of the numeric columns with up to this many bins each
            (fitted to the training split's quantiles); ``None``: numeric columns as they are.
        numeric_embed_dim: Embedding size per numeric column with ``num_bins`` (``d_embedding``).
        start_scaling_init: Distribution of the first adapter: ``auto`` is ``random-signs`` without
            numeric embeddings and ``normal`` with them (the package's defaults).
    """

    def __init__(
        self,
        num_numeric: int,
        cardinalities: tuple[int, ...],
        num_outputs: int,
        arch_type: ArchType = "tabm",
        ensemble_size: int = 32,
        depth: int = 3,
        embed_dim: int = 512,
        dropout: float = 0.1,
        num_bins: int | None = None,
        numeric_embed_dim: int = 16,
        start_scaling_init: ScalingInit = "auto",
    ):
        super().__init__(num_numeric, cardinalities, num_outputs)
        owner = type(self).__name__
        require_positive(owner, ensemble_size=ensemble_size, depth=depth, embed_dim=embed_dim)
        if arch_type not in ("tabm", "tabm-mini", "tabm-packed"):
            raise ConfigError(f"{owner}: arch_type must be tabm, tabm-mini or tabm-packed, got {arch_type!r}")
        require_rate(owner, dropout=dropout)
        self.arch_type = arch_type
        self.k = ensemble_size
        self.features = FlatFeatures(num_numeric, self.cardinalities, num_bins, numeric_embed_dim)
        if start_scaling_init == "auto":
            start_scaling_init = "normal" if self.features.embeddings is not None else "random-signs"
        d_in = self.features.width
        self.adapter = None
        if arch_type == "tabm-mini":
            self.adapter = nn.Parameter(torch.empty(ensemble_size, d_in))
            init_scaling(self.adapter, start_scaling_init, self.features.feature_widths)

        def linear(i: int, fan_in: int) -> nn.Module:
            if arch_type == "tabm":
                return LinearBatchEnsemble(fan_in, embed_dim, ensemble_size)
            if arch_type == "tabm-packed":
                return LinearEnsemble(fan_in, embed_dim, ensemble_size)
            return nn.Linear(fan_in, embed_dim)

        self.blocks = nn.ModuleList(
            EnsembleBlock(linear(i, d_in if i == 0 else embed_dim), dropout) for i in range(depth)
        )
        first = self.blocks[0].linear
        if arch_type == "tabm":
            init_scaling(first.r, start_scaling_init, self.features.feature_widths)
        zero_unknown_inputs(first.weight, self.features.unknown_positions, dim=1)
        self.head = LinearEnsemble(embed_dim, num_outputs, ensemble_size)

    def fit_to_data(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor) -> None:
        self.features.fit_to_data(x_num)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        self.check_input(x_num, x_cat)
        x = self.features(x_num, x_cat)
        x = x.unsqueeze(1).expand(-1, self.k, -1)  # (B, d) -> (B, k, d): every member sees the batch
        if self.adapter is not None:
            x = x * self.adapter
        for block in self.blocks:
            x = block(x)
        return self.head(x)


__all__ = ["EnsembleBlock", "LinearBatchEnsemble", "LinearEnsemble", "TabM", "init_scaling"]
