"""Learning-rate schedules that need to know the length of training."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class LinearWarmupDecay(LRScheduler):
    """Linear warm-up from 0, then linear decay to ``final_fraction`` of the base LR at the last step.

    With the defaults (no warm-up, decay to zero) this is the Hourglass paper's schedule, stepped per
    optimiser step instead of per epoch. ``total_steps=None`` means "the whole run": mlplab's tasks fill
    it in with the trainer's ``estimated_stepping_batches`` when they build the scheduler.

    Args:
        optimizer: The wrapped optimiser.
        total_steps: Optimiser steps of the whole run; ``None`` lets the task fill it in.
        warmup_steps: Steps of linear warm-up from 0 to the base LR.
        final_fraction: LR at the last step as a fraction of the base LR.
        last_epoch: Index of the last step when resuming (PyTorch's convention).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        warmup_steps: int = 0,
        final_fraction: float = 0.0,
        last_epoch: int = -1,
    ):
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_fraction = final_fraction
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """Multiplier of the base LR at optimiser step ``step`` (counted from 0)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.total_steps is None:
            return 1.0
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return 1.0 - (1.0 - self.final_fraction) * progress

    def get_lr(self) -> list[float]:
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]
