"""Numerical precision helpers shared by the families."""

from __future__ import annotations

import contextlib

import torch


def autocast_off(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast disabled on ``x``'s device (the meta device, where FLOPs are counted, has none)."""
    if torch.amp.is_autocast_available(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()
