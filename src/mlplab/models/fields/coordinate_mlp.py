"""Coordinate MLP: a ReLU MLP on positional or random-Fourier-feature encodings of the coordinates.

The baseline neural field of Tancik et al., "Fourier Features Let Networks Learn High Frequency
Functions in Low Dimensional Domains" (NeurIPS 2020; official code: tancik/fourier-feature-networks),
as the CAM code builds it (``FFN`` in maincold2/CAM ``CAM_image.py``): an encoding, ``depth`` Linear +
ReLU layers of width ``embed_dim``, and a Linear + sigmoid head. ``encoding: positional`` is NeRF's
encoding, ``none`` the plain coordinate MLP that shows the spectral bias.

With ``encoding: fourier`` checked weight for weight (outputs and gradients) against the CAM code's
``FFN`` and against the Fourier-feature paper's own JAX network (``Demo.ipynb``'s ``make_network(4,
256)`` on ``input_mapping``, run with JAX on the CPU, float32 and float64; the ``ffn`` variant is that
network): ``benchmarks/fields_official_check.py --cam --fourier --jax-path``; docs/results.md. The
initialisation is PyTorch's (the CAM code's); the JAX code draws stax ``Dense``'s defaults (Glorot-normal
weights, N(0, 0.01) biases). ``B`` is N(0, 1) times ``frequency_scale`` in both.

Shapes: ``(B, 2) -> encoding (B, E) -> (B, embed_dim) x depth -> (B, C)`` in (0, 1).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.fields.common import CoordinateField, FourierFeatures, PositionalEncoding
from mlplab.models.fields.fresh import FreSh
from mlplab.models.registry import Variant, register_family


@register_family(
    domains=("image_fitting",),
    variants={
        "tiny": Variant({"embed_dim": 16, "depth": 2, "num_frequencies": 8}),
        "ffn": Variant(
            {"embed_dim": 256, "depth": 3, "num_frequencies": 256, "frequency_scale": 10.0},
            source="CAM code's FFN baseline (CAM_image.py)",
        ),  # fmt: skip
    },
    source="own, weight for weight with the CAM code and the JAX Demo (fields_official_check.py)",
)
class CoordinateMLP(CoordinateField):
    """A ReLU MLP on an encoding of the coordinates (see the module docstring).

    Args:
        input_shape: ``(2,)``; filled in by the task.
        output_shape: ``(channels,)``; filled in from the image.
        embed_dim: Width of the hidden layers.
        depth: Number of hidden Linear + ReLU layers (the CAM code's ``num_layers``).
        encoding: ``fourier`` (random Fourier features), ``positional`` (NeRF's) or ``none``.
        num_frequencies: Frequencies of the encoding (Fourier: columns of B; positional: octaves).
        frequency_scale: Fourier: the standard deviation sigma of B; positional: a factor on every octave.
        fresh: Choose ``frequency_scale`` with FreSh before training
            (:class:`~mlplab.models.fields.fresh.FreSh`).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 256,
        depth: int = 3,
        encoding: Literal["fourier", "positional", "none"] = "fourier",
        num_frequencies: int = 256,
        frequency_scale: float = 10.0,
        fresh: FreSh | None = None,
    ):
        super().__init__(input_shape, output_shape, fresh if encoding != "none" else None)
        require_positive("CoordinateMLP", embed_dim=embed_dim, depth=depth)
        if encoding == "fourier":
            self.encoding = FourierFeatures(self.in_features, num_frequencies, frequency_scale)
        elif encoding == "positional":
            self.encoding = PositionalEncoding(self.in_features, num_frequencies, frequency_scale)
        elif encoding == "none":
            if fresh is not None:
                raise ConfigError("CoordinateMLP: fresh needs an encoding with a frequency scale, not none")
            self.encoding = nn.Identity()
        else:
            raise ConfigError(
                f"CoordinateMLP: encoding must be fourier, positional or none, got {encoding!r}"
            )
        width = getattr(self.encoding, "out_features", self.in_features)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, embed_dim), nn.ReLU()]
            width = embed_dim
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(embed_dim, self.out_features)

    def set_frequency_scale(self, value: float) -> None:
        """Set the encoding's frequency scale (what FreSh chooses)."""
        if not hasattr(self.encoding, "set_frequency_scale"):
            raise ConfigError("CoordinateMLP with encoding none has no frequency scale")
        self.encoding.set_frequency_scale(value)

    def field(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.layers(self.encoding(coords))))
