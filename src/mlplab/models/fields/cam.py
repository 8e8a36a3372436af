"""Coordinate-Aware Modulation (CAM): grid-read scales and shifts of a coordinate MLP's features.

Lee, Rho, Nam, Ko and Park, "Coordinate-Aware Modulation for Neural Fields" (ICLR 2024; official code:
maincold2/CAM, ``CAM_image.py``). An FFN (random Fourier features and ReLU layers) whose every hidden
layer is modulated: ``h = relu(gamma(x) * norm(W h_prev + b) + beta(x))``, with ``gamma`` and ``beta``
read by bilinear interpolation (``grid_sample``, border padding, corners aligned) from a learned
``grid_size × grid_size`` grid at the pixel's coordinate, initialised to 1 and 0. ``norm`` normalises
each pixel's features to zero mean and unit variance (the official code's ``F.instance_norm`` over a
``(1, pixels, features)`` tensor, i.e. per pixel over the features, without affine parameters). The
head is Linear + sigmoid. The grids are spectral-bias free, so high frequencies arrive fast.

The official code trains the grids with a 10 times larger learning rate (an Adam parameter group);
mlplab stores them divided by ``grid_lr_multiplier`` and multiplies them back in ``forward``, which
gives Adam the same effective step on the grid values with a single parameter group.

Checked weight for weight against ``CAM_image.py``'s ``CAM`` as ``train_image`` builds it: outputs and
gradients equal to float32 rounding (``benchmarks/fields_official_check.py --cam``; docs/results.md).

Shapes: ``(B, 2) -> Fourier features (B, 2 num_frequencies) -> (B, embed_dim) x depth -> (B, C)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.fields.common import CoordinateField, FourierFeatures, read_grid
from mlplab.models.fields.fresh import FreSh
from mlplab.models.registry import Variant, register_family


class ModulatedLayer(nn.Module):
    """``relu(gamma(x) * norm(W h + b) + beta(x))`` with ``(gamma, beta)`` read from a learned grid."""

    def __init__(self, in_features: int, out_features: int, grid_size: int, grid_lr_multiplier: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.multiplier = grid_lr_multiplier
        initial = torch.cat(
            [torch.ones(1, 1, grid_size, grid_size), torch.zeros(1, 1, grid_size, grid_size)], 1
        )
        self.grid = nn.Parameter(initial / grid_lr_multiplier)

    def forward(self, h: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        h = F.layer_norm(self.linear(h), (self.linear.out_features,))  # per pixel, over the features
        affine = read_grid(self.grid * self.multiplier, coords, align_corners=True)
        gamma, beta = affine[:, :1], affine[:, 1:]
        return torch.relu(h * gamma + beta)


@register_family(
    domains=("image_fitting",),
    variants={
        "tiny": Variant({"embed_dim": 16, "depth": 2, "num_frequencies": 8, "grid_size": 4}),
        "image": Variant(
            {"embed_dim": 256, "depth": 3, "num_frequencies": 256, "frequency_scale": 10.0, "grid_size": 32},
            source="CAM_image.py defaults",
        ),  # fmt: skip
    },
    source="own, weight for weight with the official code (fields_official_check.py)",
)
class CAM(CoordinateField):
    """A Fourier-feature MLP whose hidden features are modulated from grids (see the module docstring).

    Args:
        input_shape: ``(2,)``; filled in by the task.
        output_shape: ``(channels,)``; filled in from the image.
        embed_dim: Width of the hidden layers.
        depth: Number of modulated hidden layers (the official ``num_layers``).
        num_frequencies: Columns of the random Fourier feature matrix.
        frequency_scale: Its standard deviation sigma.
        grid_size: Cells per side of each layer's modulation grid.
        grid_lr_multiplier: How much faster the grids learn than the rest (10 in the official code).
        fresh: Choose ``frequency_scale`` with FreSh before training
            (:class:`~mlplab.models.fields.fresh.FreSh`).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 256,
        depth: int = 3,
        num_frequencies: int = 256,
        frequency_scale: float = 10.0,
        grid_size: int = 32,
        grid_lr_multiplier: float = 10.0,
        fresh: FreSh | None = None,
    ):
        super().__init__(input_shape, output_shape, fresh, reads_2d_grids=True)
        require_positive("CAM", embed_dim=embed_dim, depth=depth, grid_size=grid_size)
        if not grid_lr_multiplier > 0:
            raise ConfigError(f"CAM: grid_lr_multiplier must be positive, got {grid_lr_multiplier}")
        self.encoding = FourierFeatures(self.in_features, num_frequencies, frequency_scale)
        widths = [self.encoding.out_features] + [embed_dim] * depth
        self.layers = nn.ModuleList(
            ModulatedLayer(w_in, w_out, grid_size, grid_lr_multiplier)
            for w_in, w_out in zip(widths, widths[1:])
        )
        self.head = nn.Linear(embed_dim, self.out_features)

    def set_frequency_scale(self, value: float) -> None:
        """Set the Fourier features' sigma (what FreSh chooses)."""
        self.encoding.set_frequency_scale(value)

    def field(self, coords: torch.Tensor) -> torch.Tensor:
        h = self.encoding(coords)
        for layer in self.layers:
            h = layer(h, coords)
        return torch.sigmoid(self.head(h))
