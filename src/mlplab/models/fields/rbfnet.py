"""Gaussian RBFNet (GNF): a single layer of Gaussian radial basis functions on multi-resolution grid features.

Bouzidi, Laga, Wannous and Sohel, "GNF: Gaussian Neural Fields for Multidimensional Signal
Representation and Reconstruction" (arXiv 2503.06762, 2025; project page GRBFNet.github.io; official
code: the authors' GNF repository, ``models/gnf_fields.py``, ``RBFDecoder``). The MLP decoder of a
grid-based neural field is replaced by one layer of Gaussian RBF units in the space of the grid
features: unit ``n`` responds ``exp(-1/2 sum_d beta_nd (f_d - c_nd)^2)`` to the feature vector ``f``,
with a learned centre ``c_n`` and learned per-dimension (anisotropic) precisions ``beta_n = exp(log
beta_n)``; a linear layer mixes the responses into the colour.

As in the official decoder with ``per_level``, the units come in one group per grid level, and the
group of level ``l`` sees the features of levels ``0..l`` (coarse to fine), its centres and precisions
being the concatenation of the per-level ones of levels ``0..l`` (each level adds ``features_per_level``
dimensions to the shared centres). Centres and grid features start in U(-1e-4, 1e-4) and the
log-precisions at 0, as there.

The encoding: the official code offers several grids (DiF-Grid, HashGrid, K-Planes); for 2-D images
mlplab uses dense multi-resolution grids (a HashGrid without hashing, which 2-D allows), resolutions
growing geometrically from ``base_resolution`` to ``max_resolution``, features read by bilinear
interpolation at the coordinate.

The decoder is checked weight for weight against the official ``RBFDecoder`` on the same features:
outputs and gradients equal to float32 rounding (``benchmarks/fields_official_check.py --rbfnet``;
docs/results.md), per level and, with ``num_levels: 1``, as the official image configuration's
``per_level: false``. The official decoder also holds ``betas_shifts`` (``n_rbfs`` per level) that its
forward never reads; mlplab has no such parameter. The grids are not compared.

Shapes: ``(B, 2) -> features (B, L F) -> RBF responses (B, L num_rbfs) -> (B, C)``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.fields.common import CoordinateField, read_grid
from mlplab.models.registry import Variant, register_family


class MultiResolutionGrid(nn.Module):
    """Dense 2-D feature grids at ``num_levels`` resolutions, read bilinearly at the coordinates.

    Shapes: ``(B, 2)`` (row, column) in [-1, 1] -> ``(B, num_levels features_per_level)``, level by level.
    """

    def __init__(self, num_levels: int, features_per_level: int, base_resolution: int, max_resolution: int):
        super().__init__()
        require_positive("MultiResolutionGrid", num_levels=num_levels, features_per_level=features_per_level,
                         base_resolution=base_resolution, max_resolution=max_resolution)  # fmt: skip
        if max_resolution < base_resolution:
            raise ConfigError(
                f"GaussianRBFNet: max_resolution ({max_resolution}) must be at least base_resolution "
                f"({base_resolution})"
            )
        growth = (max_resolution / base_resolution) ** (1 / max(num_levels - 1, 1))
        self.resolutions = [round(base_resolution * growth**level) for level in range(num_levels)]
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(1, features_per_level, r, r).uniform_(-1e-4, 1e-4))
            for r in self.resolutions
        )

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.cat([read_grid(grid, coords, align_corners=False) for grid in self.grids], dim=-1)


@register_family(
    domains=("image_fitting",),
    variants={
        "tiny": Variant(
            {
                "num_levels": 2,
                "features_per_level": 2,
                "base_resolution": 4,
                "max_resolution": 8,
                "num_rbfs": 8,
            }
        ),  # fmt: skip
        "image": Variant(
            {
                "num_levels": 8,
                "features_per_level": 4,
                "base_resolution": 16,
                "max_resolution": 512,
                "num_rbfs": 32,
            },
            source="mlplab's setting for 512-pixel images",
        ),  # fmt: skip
    },
    source="own, decoder weight for weight with the official code (fields_official_check.py)",
)
class GaussianRBFNet(CoordinateField):
    """Gaussian RBF units on multi-resolution grid features (see the module docstring).

    Args:
        input_shape: ``(2,)``; filled in by the task.
        output_shape: ``(channels,)``; filled in from the image.
        num_levels: Grid levels L (each with its own group of RBF units).
        features_per_level: Features F per grid cell and level.
        base_resolution: Cells per side of the coarsest grid.
        max_resolution: Cells per side of the finest grid.
        num_rbfs: RBF units per level (the official ``n_rbfs``).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        num_levels: int = 8,
        features_per_level: int = 4,
        base_resolution: int = 16,
        max_resolution: int = 512,
        num_rbfs: int = 32,
    ):
        super().__init__(input_shape, output_shape, reads_2d_grids=True)
        require_positive("GaussianRBFNet", num_rbfs=num_rbfs)
        self.encoding = MultiResolutionGrid(num_levels, features_per_level, base_resolution, max_resolution)
        self.features_per_level = features_per_level
        self.centres = nn.ParameterList(
            nn.Parameter(torch.empty(num_rbfs, features_per_level).uniform_(-1e-4, 1e-4))
            for _ in range(num_levels)
        )
        self.log_precisions = nn.ParameterList(
            nn.Parameter(torch.zeros(num_rbfs, features_per_level)) for _ in range(num_levels)
        )
        self.head = nn.Linear(num_rbfs * num_levels, self.out_features)

    def field(self, coords: torch.Tensor) -> torch.Tensor:
        features = self.encoding(coords)
        responses = []
        for level in range(len(self.centres)):
            width = (level + 1) * self.features_per_level
            f = features[:, :width]
            centres = torch.cat(list(self.centres[: level + 1]), dim=-1)
            precisions = torch.cat(list(self.log_precisions[: level + 1]), dim=-1).exp()
            # sum_d beta (f - c)^2 expanded into matrix products: O(B N), as the official decoder
            distance = (f * f) @ precisions.t() - 2 * f @ (precisions * centres).t()
            distance = distance + (precisions * centres * centres).sum(-1)
            responses.append(torch.exp(-0.5 * distance))
        return self.head(torch.cat(responses, dim=-1))
