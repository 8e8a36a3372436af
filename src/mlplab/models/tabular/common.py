"""What the tabular families share: the ``tabular`` domain, input checks, feature encodings.

A tabular family is called as ``family(num_numeric, cardinalities, num_outputs, **args)`` and maps a
batch of numeric columns ``x_num (B, num_numeric)`` (float, already standardised or quantile-transformed
by the DataModule) and categorical columns ``x_cat (B, len(cardinalities))`` (int64 codes, column ``i``
in ``range(cardinalities[i])``) to ``(B, num_outputs)``, or, for an ensemble of ``k`` members such as
TabM, to ``(B, k, num_outputs)``: one prediction per member, which the task trains all at once (the
mean of the members' losses) and averages at evaluation. Both inputs are always given; a table
without numeric (or categorical) columns gives a tensor with no columns.

**Unknown categories.** Code 0 of every categorical column means "not seen in the training split"
(the DataModule maps values met only in validation or test there, and, with ``min_category_count``,
values too rare in training). Every family gives code 0 a representation that starts at zero (a
one-hot column whose first-layer weights start at zero, an embedding row that starts at zero), so an
unseen value contributes nothing until training meets code 0 itself.

**Piecewise-linear embeddings** of numeric features (Gorishniy et al., "On Embeddings for Numerical
Features in Tabular Deep Learning", NeurIPS 2022; version "B" of the TabM paper: a linear embedding
plus a zero-initialised piecewise-linear term; package ``rtdl_num_embeddings``): the bin edges are
quantiles of the training split, which the task sets before training through :meth:`fit_to_data`
(they are buffers, so checkpoints keep them). Until then they are quantiles of a standard normal
distribution, what the DataModule's quantile transform makes of any column.
"""

from __future__ import annotations

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Domain, register_domain

#: The registry tests' example data: 4 numeric columns, two categorical ones of 3 and 5 codes, 3 classes.
EXAMPLE_SHAPES = (4, (3, 5), 3)

register_domain(
    Domain(
        "tabular",
        ("TabularTask",),
        "family(num_numeric, cardinalities, num_outputs): (x_num (B, N) float, x_cat (B, C) int64) -> "
        "(B, num_outputs), or (B, k, num_outputs) for an ensemble of k",
        EXAMPLE_SHAPES,
    )
)


def default_bins(num_bins: int) -> torch.Tensor:
    """``num_bins + 1`` bin edges: quantiles of a standard normal between its 0.1 % and 99.9 % points."""
    levels = torch.linspace(0.0, 1.0, num_bins + 1).clamp(1e-3, 1 - 1e-3)
    return torch.special.ndtri(levels)


def compute_bins(x: torch.Tensor, num_bins: int) -> list[torch.Tensor]:
    """Quantile bin edges of every column of ``x`` (the training split), as ``rtdl_num_embeddings``.

    The ``num_bins + 1`` quantiles of each column, with repeated values removed (a column with few
    distinct values gets fewer bins).

    Raises:
        ConfigError: When a column has fewer than two distinct values, or ``num_bins`` is not below the
            number of rows.
    """
    if not 1 < num_bins < len(x):
        raise ConfigError(f"num_bins must be above 1 and below the {len(x)} training rows, got {num_bins}")
    quantiles = torch.quantile(x.float(), torch.linspace(0.0, 1.0, num_bins + 1, device=x.device), dim=0)
    bins = [column.unique() for column in quantiles.T]
    constant = [i for i, edges in enumerate(bins) if len(edges) < 2]
    if constant:
        raise ConfigError(f"numeric column {constant[0]} is constant in the training split: it has no bins")
    return bins


class LinearEmbeddings(nn.Module):
    """A learned vector per numeric feature, scaled by its value, plus a bias: ``(B, N) -> (B, N, d)``.

    Initialisation as ``rtdl_num_embeddings.LinearEmbeddings``: both uniform in ``±1/sqrt(d)``.
    """

    def __init__(self, num_features: int, embed_dim: int):
        super().__init__()
        bound = embed_dim**-0.5
        self.weight = nn.Parameter(torch.empty(num_features, embed_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_features, embed_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, self.weight, x.unsqueeze(-1))


class PiecewiseLinearEmbeddings(nn.Module):
    """Piecewise-linear embeddings, version "B": ``linear(x) + PLE(x) @ W`` per feature, ``(B, N, d)``.

    ``PLE(x)`` encodes a value by the bins of its feature: ``[1, ..., 1, (x - left) / width, 0, ..., 0]``
    (the bins below ``x`` full, its own bin partly, those above empty; the first and last bins are open
    towards -inf and +inf). A feature with fewer bins than ``num_bins`` keeps its last component in the
    last slot and zeros in between, the layout of ``rtdl_num_embeddings`` (so weights map one to one).
    ``W`` (``weight``, per feature ``(num_bins, d)``) starts at zero: at initialisation the embedding is
    the linear one.

    Args:
        num_features: Numeric features N.
        num_bins: Most bins a feature can have (its edges are set by :meth:`set_bins`).
        embed_dim: Embedding size d per feature (``d_embedding``).
    """

    def __init__(self, num_features: int, num_bins: int, embed_dim: int):
        super().__init__()
        require_positive(
            type(self).__name__, num_features=num_features, num_bins=num_bins, embed_dim=embed_dim
        )
        self.num_bins = num_bins
        self.linear = LinearEmbeddings(num_features, embed_dim)
        self.weight = nn.Parameter(torch.zeros(num_features, num_bins, embed_dim))
        self.register_buffer("encoding_weight", torch.zeros(num_features, num_bins))
        self.register_buffer("encoding_bias", torch.zeros(num_features, num_bins))
        self.register_buffer("single_bin", torch.zeros(num_features, dtype=torch.bool))
        if self.encoding_weight.device.type != "meta":
            self.set_bins([default_bins(num_bins)] * num_features)

    @torch.no_grad()
    def set_bins(self, bins: list[torch.Tensor]) -> None:
        """Set every feature's bin edges (increasing, at least two, at most ``num_bins + 1``)."""
        if len(bins) != self.encoding_weight.shape[0]:
            raise ConfigError(
                f"got bin edges for {len(bins)} features, built for {self.encoding_weight.shape[0]}"
            )
        weight = torch.zeros_like(self.encoding_weight)
        bias = torch.zeros_like(self.encoding_bias)
        for i, edges in enumerate(bins):
            edges = edges.to(weight)
            count = len(edges) - 1
            if not 1 <= count <= self.num_bins or (edges.diff() <= 0).any():
                raise ConfigError(
                    f"feature {i}: bin edges must increase and give 1 to {self.num_bins} bins, got {count}"
                )
            width = edges.diff()
            w, b = 1.0 / width, -edges[:-1] / width
            weight[i, -1], bias[i, -1] = w[-1], b[-1]
            weight[i, : count - 1], bias[i, : count - 1] = w[:-1], b[:-1]
            self.single_bin[i] = count == 1
        self.encoding_weight.copy_(weight)
        self.encoding_bias.copy_(bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The piecewise-linear encoding ``(B, N) -> (B, N, num_bins)``."""
        z = torch.addcmul(self.encoding_bias, self.encoding_weight, x.unsqueeze(-1))
        if z.shape[-1] == 1:
            return z
        last = z[..., -1:]
        last = torch.where(self.single_bin.unsqueeze(-1), last, last.clamp_min(0.0))
        return torch.cat([z[..., :1].clamp_max(1.0), z[..., 1:-1].clamp(0.0, 1.0), last], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ple = torch.einsum("bnk,nkd->bnd", self.encode(x), self.weight)
        return self.linear(x) + ple


def one_hot(x_cat: torch.Tensor, cardinalities: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The one-hot codes of every categorical column, side by side: ``(B, C) -> (B, sum(cardinalities))``."""
    # a comparison rather than F.one_hot, which checks the codes on the host (a synchronisation per step)
    codes = [x_cat[:, i, None] == torch.arange(c, device=x_cat.device) for i, c in enumerate(cardinalities)]
    return torch.cat(codes, dim=-1).to(dtype)


class TabularFamily(nn.Module):
    """Base of the tabular families: the data shapes, the input check and the data-fitted parts.

    Args:
        num_numeric: Numeric columns N; filled in from the data.
        cardinalities: Codes per categorical column (code 0: unknown); filled in from the data.
        num_outputs: Outputs: the number of classes, or 1 for regression; filled in from the data.
    """

    def __init__(self, num_numeric: int, cardinalities: tuple[int, ...], num_outputs: int):
        super().__init__()
        owner = type(self).__name__
        cardinalities = tuple(int(c) for c in cardinalities)
        require_positive(owner, num_outputs=num_outputs)
        if num_numeric < 0 or any(c < 1 for c in cardinalities):
            raise ConfigError(f"{owner}: num_numeric must be >= 0 and every cardinality >= 1, got "
                              f"{num_numeric} and {cardinalities}")  # fmt: skip
        if num_numeric == 0 and not cardinalities:
            raise ConfigError(f"{owner}: the table has no feature columns (no numeric, no categorical)")
        self.num_numeric = num_numeric
        self.cardinalities = cardinalities
        self.num_outputs = num_outputs

    def check_input(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> None:
        """Refuse a batch whose columns are not those the family was built for, in one line."""
        expected = (self.num_numeric, len(self.cardinalities))
        got = (x_num.shape[-1] if x_num.ndim == 2 else None, x_cat.shape[-1] if x_cat.ndim == 2 else None)
        if got != expected or len(x_num) != len(x_cat):
            raise ConfigError(
                f"{type(self).__name__} was built for {expected[0]} numeric and {expected[1]} categorical "
                f"columns, got batches of shape {tuple(x_num.shape)} and {tuple(x_cat.shape)}"
            )

    def fit_to_data(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor) -> None:
        """Set what the family takes from the training split (the task calls it before training)."""


class FlatFeatures(nn.Module):
    """The input of the MLP-like families: numeric columns (raw or embedded) and one-hot codes, ``(B, d_in)``.

    Args:
        num_numeric: Numeric columns N.
        cardinalities: Codes per categorical column.
        num_bins: Piecewise-linear embeddings with up to this many bins per numeric feature; ``None``:
            the numeric columns as they are.
        numeric_embed_dim: Embedding size per numeric feature (with ``num_bins``).
    """

    def __init__(
        self, num_numeric: int, cardinalities: tuple[int, ...], num_bins: int | None, numeric_embed_dim: int
    ):
        super().__init__()
        self.cardinalities = tuple(cardinalities)
        self.embeddings = (
            PiecewiseLinearEmbeddings(num_numeric, num_bins, numeric_embed_dim)
            if num_bins is not None and num_numeric > 0
            else None
        )
        numeric_width = numeric_embed_dim if self.embeddings is not None else 1
        #: The width of every feature in the flat vector, numeric ones first (TabM's initialisation chunks).
        self.feature_widths = [numeric_width] * num_numeric + list(self.cardinalities)
        self.width = sum(self.feature_widths)
        offset, unknown = numeric_width * num_numeric, []
        for c in self.cardinalities:
            unknown.append(offset)
            offset += c
        #: Positions of the code-0 ("unknown") one-hot columns in the flat vector.
        self.unknown_positions = unknown

    def fit_to_data(self, x_num: torch.Tensor) -> None:
        """Set the bins of the piecewise-linear embeddings to the quantiles of the training split."""
        if self.embeddings is not None:
            self.embeddings.set_bins(compute_bins(x_num, self.embeddings.num_bins))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = []
        if x_num.shape[-1]:
            parts.append(x_num if self.embeddings is None else self.embeddings(x_num).flatten(1))
        if self.cardinalities:
            parts.append(one_hot(x_cat, self.cardinalities, x_num.dtype))
        return torch.cat(parts, dim=-1)


@torch.no_grad()
def zero_unknown_inputs(weight: torch.Tensor, positions: list[int], dim: int) -> None:
    """Zero the weights that read the code-0 ("unknown") one-hot columns (``positions`` along ``dim``)."""
    if positions:
        weight.index_fill_(dim, torch.tensor(positions, device=weight.device), 0.0)


__all__ = [
    "EXAMPLE_SHAPES",
    "FlatFeatures",
    "LinearEmbeddings",
    "PiecewiseLinearEmbeddings",
    "TabularFamily",
    "compute_bins",
    "default_bins",
    "one_hot",
    "zero_unknown_inputs",
]
