"""What the neural-field families share: the ``image_fitting`` domain, their base and the encodings.

A neural field maps a pixel's coordinates to its colour. mlplab's convention (the task
:class:`~mlplab.tasks.ImageFitting` and :class:`~mlplab.data.ImageFittingDataModule` keep it):

* coordinates ``(B, 2)`` are ``(row, column)`` of pixel centres, scaled to [-1, 1]
  (pixel ``i`` of ``H`` sits at ``(2 i + 1) / H - 1``);
* colours ``(B, C)`` are in [0, 1] (``C`` = 1 for a grey image, 3 for RGB).

A family is called as ``family((2,), (C,), **args)``: the input and output sample shapes, as every
mlplab family is. Families whose embedding has a frequency scale (random Fourier features' sigma,
SIREN's first omega) keep it in a buffer ``frequency_scale`` that :mod:`mlplab.models.fields.fresh`
(FreSh) may set before training; the value is saved in checkpoints with the weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Domain, register_domain

register_domain(Domain("image_fitting", ("ImageFitting",),
                       "family((2,), (channels,)): coordinates (B, 2) in [-1, 1] -> colours (B, C) in [0, 1]",
                       ((2,), (3,))))  # fmt: skip


class CoordinateField(nn.Module):
    """Base of the neural fields: checks the shapes, and the coordinates of every batch.

    Subclasses build their layers after calling this ``__init__`` and implement :meth:`field`.

    Shapes: ``(B, in_features) -> (B, out_features)``.

    Args:
        input_shape: ``(in_features,)``, the coordinate dimension (2 for images).
        output_shape: ``(out_features,)``, the channels of a colour.
        fresh: FreSh settings (:class:`~mlplab.models.fields.fresh.FreSh`) for families with a
            ``frequency_scale``; ``None``: keep the configured scale.
        reads_2d_grids: The family reads learned 2-D grids at the coordinates (:func:`read_grid`), so
            it takes only ``input_shape`` ``(2,)``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        fresh=None,
        reads_2d_grids: bool = False,
    ):
        super().__init__()
        owner = type(self).__name__
        if len(input_shape) != 1 or len(output_shape) != 1:
            raise ConfigError(
                f"{owner} maps coordinates (in_features,) to colours (channels,), got input_shape "
                f"{tuple(input_shape)} and output_shape {tuple(output_shape)}"
            )
        require_positive(owner, in_features=input_shape[0], out_features=output_shape[0])
        self.in_features = int(input_shape[0])
        self.out_features = int(output_shape[0])
        if reads_2d_grids and self.in_features != 2:
            raise ConfigError(f"{owner} reads 2-D grids: input_shape must be (2,), got {tuple(input_shape)}")
        if fresh is not None and not hasattr(self, "set_frequency_scale"):
            raise ConfigError(f"{owner} has no frequency scale for FreSh to choose; remove fresh")
        self.fresh = fresh

    def field(self, coords: torch.Tensor) -> torch.Tensor:
        """Map coordinates ``(B, in_features)`` to colours ``(B, out_features)``."""
        raise NotImplementedError

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if coords.ndim != 2 or coords.shape[-1] != self.in_features:
            raise ConfigError(
                f"{type(self).__name__} was built for coordinates of shape (B, {self.in_features}), "
                f"got a batch of shape {tuple(coords.shape)}"
            )
        return self.field(coords)


def read_grid(grid: torch.Tensor, coords: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Read a learned 2-D grid bilinearly at the coordinates; beyond the border the border's values.

    Shapes: grid ``(1, C, H, W)`` and coordinates ``(B, 2)`` (row, column) in [-1, 1] -> ``(B, C)``.

    Args:
        grid: The grid's values, rows along ``H`` and columns along ``W``.
        coords: The coordinates, in the domain's (row, column) order.
        align_corners: ``grid_sample``'s: -1 and 1 are the centres of the corner cells (``True``) or
            their outer edges (``False``).
    """
    where = coords.flip(-1).view(1, -1, 1, 2).to(grid.dtype)  # grid_sample reads (x = column, y = row)
    return F.grid_sample(grid, where, padding_mode="border", align_corners=align_corners)[0, :, :, 0].t()


class FrequencyScaled(nn.Module):
    """A module with a scalar ``frequency_scale`` buffer that FreSh may set (see the module docstring)."""

    def __init__(self, frequency_scale: float):
        super().__init__()
        if not frequency_scale > 0:
            raise ConfigError(
                f"{type(self).__name__}: frequency_scale must be positive, got {frequency_scale}"
            )
        self.register_buffer("frequency_scale", torch.tensor(float(frequency_scale)))

    def set_frequency_scale(self, value: float) -> None:
        """Use ``value`` as the frequency scale from now on."""
        self.frequency_scale.fill_(float(value))


class FourierFeatures(FrequencyScaled):
    """Random Fourier features (Tancik et al., NeurIPS 2020): ``[sin(2π σ B v), cos(2π σ B v)]``.

    ``B`` is a fixed ``(in_features, num_frequencies)`` Gaussian matrix drawn once (a buffer) and ``v``
    the coordinates mapped from [-1, 1] to [0, 1], so ``σ`` (``frequency_scale``) means what it means
    in the paper and in the CAM code (``RandFourierFeature``, range 1).

    Shapes: ``(B, in_features) -> (B, 2 num_frequencies)``.
    """

    def __init__(self, in_features: int, num_frequencies: int, frequency_scale: float):
        super().__init__(frequency_scale)
        require_positive("FourierFeatures", num_frequencies=num_frequencies)
        self.register_buffer("matrix", torch.randn(in_features, num_frequencies))
        self.out_features = 2 * num_frequencies

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        phase = (2 * math.pi) * ((coords + 1) / 2) @ (self.matrix * self.frequency_scale)
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)


class PositionalEncoding(FrequencyScaled):
    """NeRF's positional encoding: ``[v, sin(2^k π s v), cos(2^k π s v)]`` for ``k < num_frequencies``.

    ``s`` is the ``frequency_scale`` (1 in NeRF).

    Shapes: ``(B, in_features) -> (B, in_features (1 + 2 num_frequencies))``.
    """

    def __init__(self, in_features: int, num_frequencies: int, frequency_scale: float = 1.0):
        super().__init__(frequency_scale)
        require_positive("PositionalEncoding", num_frequencies=num_frequencies)
        self.register_buffer("octaves", 2.0 ** torch.arange(num_frequencies) * math.pi, persistent=False)
        self.out_features = in_features * (1 + 2 * num_frequencies)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        phase = (coords[..., None] * self.octaves * self.frequency_scale).flatten(-2)
        return torch.cat([coords, torch.sin(phase), torch.cos(phase)], dim=-1)


__all__ = ["CoordinateField", "FourierFeatures", "FrequencyScaled", "PositionalEncoding", "read_grid"]
