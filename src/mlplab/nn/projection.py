"""Linear projections that may be frozen at their random initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn


class RandomProjection(nn.Module):
    """A bias-free linear map ``y = x Wᵀ``, trainable or fixed at its random initialisation.

    The weight is drawn like PyTorch's default ``nn.Linear`` initialisation, uniform in
    ``[-1/sqrt(in_features), 1/sqrt(in_features)]``, from a generator seeded with ``seed``, so the same
    seed always gives the same matrix on any device. When ``trainable`` is false the weight is a
    parameter with ``requires_grad=False``: it counts in the total parameter count, is not handed to the
    optimiser (mlplab's tasks optimise only parameters that require gradients), keeps no optimiser state,
    and stays bit-identical through training. ``regenerate()`` rebuilds it from the seed.

    Shapes: ``(..., in_features) -> (..., out_features)``.

    Args:
        in_features: Input width.
        out_features: Output width.
        trainable: Whether the optimiser updates the weight.
        seed: Seed of the initialisation. ``None`` draws one from torch's global generator (so
            ``seed_everything`` controls it); the seed used is kept in ``self.seed``.
    """

    #: ``weight`` is a linear map: global magnitude pruning prunes it if it trains (mlplab.analysis.pruning).
    prunable_weights = ("weight",)

    def __init__(self, in_features: int, out_features: int, trainable: bool = True, seed: int | None = None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.trainable = trainable
        self.seed = int(torch.randint(0, 2**31 - 1, (1,), device="cpu").item()) if seed is None else int(seed)
        self.weight = nn.Parameter(torch.empty(out_features, in_features), requires_grad=trainable)
        self.reset_parameters()

    @staticmethod
    def initial_weight(in_features: int, out_features: int, seed: int) -> torch.Tensor:
        """The ``(out_features, in_features)`` matrix that ``seed`` produces, on the CPU."""
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(in_features)
        return torch.empty(out_features, in_features).uniform_(-bound, bound, generator=generator)

    def reset_parameters(self) -> None:
        """Draw the weight from ``self.seed`` (skipped on the meta device, where there is no data)."""
        if self.weight.is_meta:
            return
        with torch.no_grad():
            self.weight.copy_(self.initial_weight(self.in_features, self.out_features, self.seed))

    def regenerate(self) -> torch.Tensor:
        """The initial weight, rebuilt from the seed on the weight's device and dtype."""
        weight = self.initial_weight(self.in_features, self.out_features, self.seed)
        return weight.to(device=self.weight.device, dtype=self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"trainable={self.trainable}, seed={self.seed}"
        )
