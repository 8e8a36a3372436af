"""SIREN: sine-activated coordinate MLP with its principled initialisation.

Sitzmann, Martel, Bergman, Lindell and Wetzstein, "Implicit Neural Representations with Periodic
Activation Functions" (NeurIPS 2020; official code: vsitzmann/siren, ``explore_siren.ipynb`` and
``modules.py``). Layer ``l`` computes ``sin(omega (W x + b))``; the first layer's weights are drawn from
U(-1/in, 1/in) and scaled by ``first_omega`` (the embedding's frequency, 30 in the paper), the later
ones from U(-sqrt(6/in)/omega, sqrt(6/in)/omega) so that ``omega W`` keeps the activations'
distribution through depth; the head is linear with the same initialisation. Biases keep PyTorch's
default initialisation, as in the official code.

The official image fitting trains on pixels scaled to [-1, 1]; mlplab's colours are in [0, 1], so the
linear head's output ``y`` is returned as ``(y + 1) / 2``: the same network and the same loss up to a
factor 1/4 (which Adam does not see).

``first_omega`` is kept in a buffer (``frequency_scale``) that FreSh may set before training.

Checked weight for weight against ``explore_siren.ipynb``'s ``Siren`` and ``modules.py``'s
``SingleBVPNet(type="sine")``: outputs and gradients equal to float32 rounding
(``benchmarks/fields_official_check.py --siren``; docs/results.md).

Shapes: ``(B, 2) -> (B, embed_dim) x depth sine layers -> (B, C)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlplab.errors import require_positive
from mlplab.models.fields.common import CoordinateField
from mlplab.models.fields.fresh import FreSh
from mlplab.models.registry import Variant, register_family


class SineLayer(nn.Module):
    """``sin(omega (W x + b))`` with SIREN's initialisation (``first``: the input layer's).

    ``omega`` is a buffer so that FreSh can set the first layer's.
    """

    def __init__(self, in_features: int, out_features: int, omega: float, first: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        bound = 1 / in_features if first else math.sqrt(6 / in_features) / omega
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)
        self.register_buffer("omega", torch.tensor(float(omega)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * self.linear(x))


@register_family(
    domains=("image_fitting",),
    variants={
        "tiny": Variant({"embed_dim": 16, "depth": 2}),
        "image": Variant(
            {"embed_dim": 256, "depth": 4, "first_omega": 30.0, "hidden_omega": 30.0},
            source="explore_siren.ipynb: hidden_features=256, hidden_layers=3",
        ),  # fmt: skip
    },
    source="own, weight for weight with the official code (fields_official_check.py)",
)
class SIREN(CoordinateField):
    """Sine-activated coordinate MLP (see the module docstring).

    Args:
        input_shape: ``(2,)``; filled in by the task.
        output_shape: ``(channels,)``; filled in from the image.
        embed_dim: Width of the sine layers (the paper's ``hidden_features``).
        depth: Number of sine layers, the first included (the official ``hidden_layers`` + 1).
        first_omega: Frequency of the first layer (``first_omega_0``), FreSh's frequency scale.
        hidden_omega: Frequency of the later layers (``hidden_omega_0``).
        fresh: Choose ``first_omega`` with FreSh before training (:class:`~mlplab.models.fields.fresh.FreSh`).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 256,
        depth: int = 4,
        first_omega: float = 30.0,
        hidden_omega: float = 30.0,
        fresh: FreSh | None = None,
    ):
        super().__init__(input_shape, output_shape, fresh)
        require_positive("SIREN", embed_dim=embed_dim, depth=depth)
        layers = [SineLayer(self.in_features, embed_dim, first_omega, first=True)]
        layers += [SineLayer(embed_dim, embed_dim, hidden_omega) for _ in range(depth - 1)]
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(embed_dim, self.out_features)
        bound = math.sqrt(6 / embed_dim) / hidden_omega
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound)

    @property
    def frequency_scale(self) -> torch.Tensor:
        """The first layer's omega."""
        return self.layers[0].omega

    def set_frequency_scale(self, value: float) -> None:
        """Set the first layer's omega (what FreSh chooses)."""
        self.layers[0].omega.fill_(float(value))

    def field(self, coords: torch.Tensor) -> torch.Tensor:
        return (self.head(self.layers(coords)) + 1) / 2
