"""Base class of the families that see an image as one flat vector (the plain MLPs)."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive


class FlatMLP(nn.Module):
    """Flatten each sample, map it with ``body``, reshape the result to ``output_shape``.

    Subclasses build their layers in ``__init__`` (after calling this one, which sets ``d_x`` and
    ``d_y``) and implement ``body``. Inputs of any other shape than ``input_shape`` are refused with a
    :class:`~mlplab.errors.ConfigError` naming both shapes.

    Shapes: ``(B, *input_shape) -> (B, d_x) -> body -> (B, d_y) -> (B, *output_shape)``.

    Args:
        input_shape: Shape of one input sample, e.g. ``(1, 28, 28)``.
        output_shape: Shape of one output sample, e.g. ``(1, 28, 28)`` or ``(10,)``.
    """

    def __init__(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]):
        super().__init__()
        owner = type(self).__name__
        for axis in (*input_shape, *output_shape):
            require_positive(owner, **{"every size in input_shape and output_shape": axis})
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.d_x = math.prod(self.input_shape)
        self.d_y = math.prod(self.output_shape)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Map flattened inputs ``(B, d_x)`` to flattened outputs ``(B, d_y)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(
                f"{type(self).__name__} was built for inputs of shape {self.input_shape}, "
                f"got a batch of shape {tuple(x.shape)}"
            )
        return self.body(x.flatten(1)).view(x.shape[0], *self.output_shape)
