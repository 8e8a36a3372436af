"""The plain MLP baseline of the tabular benchmarks (the TabM paper's MLP and MLP†).

Yury Gorishniy, Ivan Rubachev, Valentin Khrulkov, Artem Babenko, "Revisiting Deep Learning Models for
Tabular Data", NeurIPS 2021, as the TabM paper (ICLR 2025) runs it: ``depth`` blocks
``Linear -> ReLU -> Dropout`` of width ``embed_dim``, then a linear head; numeric columns as they are
or through piecewise-linear embeddings (``num_bins``: MLP† of the TabM paper), categorical columns
one-hot. The same layers as the ``tabm`` package's ``MLPBackbone`` plus ``nn.Linear`` (checked weight
for weight in ``tests/models/tabular``, and against the paper's own model, ``paper/bin/model.py`` with
``arch_type: plain``, at its tuned configurations in ``benchmarks/tabular_official_check.py --tabm``);
TabM with ``k = 1`` and no adapters.

Shapes: ``(x_num (B, N), x_cat (B, C)) -> (B, num_outputs)``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlplab.errors import require_positive, require_rate
from mlplab.models.registry import Variant, register_family
from mlplab.models.tabular.common import FlatFeatures, TabularFamily, zero_unknown_inputs

CALIFORNIA = (8, (), 1)
PAPER = "TabM paper's tuned configuration on California housing, paper/exp/{}/california (report.json)"


@register_family(
    domains=("tabular",),
    variants={
        "tiny": Variant({"depth": 2, "embed_dim": 16, "dropout": 0.0}),
        "california": Variant(
            {"depth": 2, "embed_dim": 208, "dropout": 0.1719},
            params=45_553,
            shapes=CALIFORNIA,
            source=PAPER.format("mlp"),
        ),
        "california-ple": Variant(
            {"depth": 2, "embed_dim": 672, "dropout": 0.2608, "num_bins": 108, "numeric_embed_dim": 20},
            params=578_721,
            shapes=CALIFORNIA,
            source=PAPER.format("mlp-piecewiselinear"),
        ),
    },  # fmt: skip
    blocks=None,
    source="own, weight for weight with the paper's model (benchmarks/tabular_official_check.py)",
)
class TabularMLP(TabularFamily):
    """A plain MLP on the flat features (module docstring).

    Args:
        num_numeric: Numeric columns; filled in from the data.
        cardinalities: Codes per categorical column; filled in from the data.
        num_outputs: Classes, or 1 for regression; filled in from the data.
        depth: Blocks (``n_blocks``).
        embed_dim: Width of the blocks (``d_block``).
        dropout: Dropout after every block's activation.
        num_bins: Piecewise-linear embeddings of the numeric columns with up to this many bins each;
            ``None``: numeric columns as they are.
        numeric_embed_dim: Embedding size per numeric column with ``num_bins`` (``d_embedding``).
    """

    def __init__(
        self,
        num_numeric: int,
        cardinalities: tuple[int, ...],
        num_outputs: int,
        depth: int = 3,
        embed_dim: int = 512,
        dropout: float = 0.1,
        num_bins: int | None = None,
        numeric_embed_dim: int = 16,
    ):
        super().__init__(num_numeric, cardinalities, num_outputs)
        require_positive(type(self).__name__, depth=depth, embed_dim=embed_dim)
        require_rate(type(self).__name__, dropout=dropout)
        self.features = FlatFeatures(num_numeric, self.cardinalities, num_bins, numeric_embed_dim)
        widths = [self.features.width] + [embed_dim] * depth
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout))
            for d_in, d_out in zip(widths[:-1], widths[1:])
        )
        zero_unknown_inputs(self.blocks[0][0].weight, self.features.unknown_positions, dim=1)
        self.head = nn.Linear(embed_dim, num_outputs)

    def fit_to_data(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor) -> None:
        self.features.fit_to_data(x_num)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        self.check_input(x_num, x_cat)
        x = self.features(x_num, x_cat)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


__all__ = ["TabularMLP"]
