"""Callbacks that break a run on purpose; the CLI takes them as ``--trainer.callbacks+=<module>.<Name>``."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch


class KillAtStep(L.Callback):
    """``kill -9`` the process itself once training has taken ``step`` steps: no cleanup of any kind."""

    def __init__(self, step: int = 10):
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class InterruptAtStep(L.Callback):
    """Press Ctrl-C (send SIGINT to the process itself) in the middle of training step ``step``."""

    def __init__(self, step: int = 10):
        self.step = step

    def on_before_optimizer_step(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            signal.raise_signal(signal.SIGINT)


class PoisonAtStep(L.Callback):
    """Make a weight NaN after optimizer step ``step``, as a diverging step would."""

    def __init__(self, step: int = 10):
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


class InterruptInValidation(L.Callback):
    """Send ``signum`` (Ctrl-C 2, SIGTERM 15) to this process after validation batch ``batch`` of ``epoch``"""

    def __init__(self, epoch: int = 0, batch: int = 1, signum: int = 2):
        self.epoch = epoch
        self.batch = batch
        self.signum = signum

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx, *args):
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        if fitting and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            signal.raise_signal(signal.Signals(self.signum))
