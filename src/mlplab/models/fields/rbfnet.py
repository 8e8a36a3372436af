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

The encoding: the official code offers several grids (DiF-Grid, the image configuration's default,
HashGrid, K-Planes); mlplab has the HashGrid (``main_rgb.py --encoder hashgrid``: ``gridencoder``'s
``GridEncoder``, ``align_corners: false`` as ``configs/rgb.yaml``) without hashing: its lattice, level
resolutions and bilinear read exactly (:class:`MultiResolutionGrid`). The official table hashes a level
once its ``(resolution + 1)^2`` vertices exceed ``2^log2_hashmap_size`` (``2^19``: 725 or more per side
in 2-D); mlplab's grids stay dense at any resolution (at the ``image`` variant's 512 nothing is hashed).
Coordinates beyond [-1, 1] are clamped here; the official kernel returns zero features there.
DiF-Grid and K-Planes are not implemented.

Checked weight for weight (``benchmarks/fields_official_check.py --rbfnet``; docs/results.md): the
decoder against the official ``RBFDecoder`` on the same features, outputs and gradients equal to float32
rounding, per level and, with ``num_levels: 1``, as the official image configuration's ``per_level:
false``; the grids and the whole field against ``GridEncoder`` and ``NeuralFieldNetwork(GridEncoder,
RBFDecoder)``, with the CUDA kernel of ``gridencoder`` transcribed into PyTorch in the check (a CPU
cannot run it). The official decoder also holds ``betas_shifts`` (``n_rbfs`` per level) that its
forward never reads, and its table rows beyond what the kernel reads (padding to multiples of 8, and at
512 a level allocated 514 vertices per side in float64 where the kernel's float32 scale reads 513);
mlplab has neither. Until session 19 the grids were ``round(base g^l)`` cells per side read by
``grid_sample`` at cell centres (another lattice, not the official one).

Shapes: ``(B, 2) -> features (B, L F) -> RBF responses (B, L num_rbfs) -> (B, C)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.fields.common import CoordinateField
from mlplab.models.registry import Variant, register_family


class MultiResolutionGrid(nn.Module):
    """Dense 2-D feature grids at ``num_levels`` resolutions: the lattice of the official ``GridEncoder``.

    Level ``l`` has ``scale_l = base_resolution * g^l - 1`` with ``g = (max_resolution /
    base_resolution)^(1 / (num_levels - 1))`` (in float32, as the kernel), and ``resolution_l + 1``
    vertices per side with ``resolution_l = ceil(scale_l) + 1``, never hashed. A coordinate ``c`` in
    [-1, 1] is read at the vertex position ``p = (c + 1) / 2 * scale_l + 1/2`` (``align_corners: false``,
    as ``configs/rgb.yaml``), bilinearly between vertices ``floor(p)`` and ``floor(p) + 1``, as
    ``gridencoder``'s CUDA kernel does. Coordinates beyond [-1, 1] are clamped to it (the official kernel
    returns zeros there). Grid values start in U(-1e-4, 1e-4), as there.

    Shapes: ``(B, 2)`` (row, column) in [-1, 1] -> ``(B, num_levels features_per_level)``, level by level;
    grid ``l`` is ``(1, features_per_level, resolution_l + 1, resolution_l + 1)`` (rows, columns).
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
        # per_level_scale as gridencoder/grid.py computes it (NumPy float64); each level's scale and
        # resolution as its CUDA kernel does, in float32: exp2f(level * log2(g)) * H - 1, ceil(scale) + 1
        growth = np.exp2(np.log2(max_resolution / base_resolution) / max(num_levels - 1, 1))
        log_growth, base = np.float32(np.log2(growth)), np.float32(base_resolution)
        self.scales = [
            float(np.exp2(np.float32(level) * log_growth) * base - np.float32(1))
            for level in range(num_levels)
        ]
        self.resolutions = [math.ceil(scale) + 1 for scale in self.scales]
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(1, features_per_level, r + 1, r + 1).uniform_(-1e-4, 1e-4))
            for r in self.resolutions
        )

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        unit = (coords.clamp(-1, 1) + 1) / 2
        features = []
        for grid, scale in zip(self.grids, self.scales, strict=True):
            side = grid.shape[-1]
            position = unit * scale + 0.5
            corner = position.floor().clamp(max=side - 2)
            weight = (position - corner).to(grid.dtype)
            corner = corner.long()
            flat = grid.view(grid.shape[1], side * side)
            level = 0
            for row_step in (0, 1):
                for column_step in (0, 1):
                    index = (corner[:, 0] + row_step) * side + corner[:, 1] + column_step
                    w = weight[:, 0] if row_step else 1 - weight[:, 0]
                    w = w * (weight[:, 1] if column_step else 1 - weight[:, 1])
                    level = level + w[:, None] * flat[:, index].t()
            features.append(level)
        return torch.cat(features, dim=-1)


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
    source="own (GNF's RBFDecoder on its HashGrid, unhashed; weight for weight: fields_official_check.py)",
    layout_changes=["2026-11-29: the grids moved onto the official GridEncoder's lattice"],
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
