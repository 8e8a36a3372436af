"""Parameter counting."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts; frozen parameters (e.g. a fixed ``W_in``) count in total only.

    Works on modules built on the meta device too, where parameters hold no memory.
    """
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable
