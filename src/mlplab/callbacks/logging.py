"""Callbacks that write to the run directory or the loggers, and stay quiet when a run has neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import SaveConfigCallback


class LearningRates(LearningRateMonitor):
    """``LearningRateMonitor`` that does nothing in runs without a logger (instead of refusing to start).

    Logs ``lr-<Optimizer>`` every logging step; the arguments are ``LearningRateMonitor``'s.
    """

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self.active = bool(trainer.loggers)
        if self.active:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "active", False):
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "active", False):
            super().on_train_epoch_start(trainer, *args, **kwargs)


class SaveRunConfig(SaveConfigCallback):
    """Save the resolved ``config.yaml`` into the run directory, when the run has one (a logger).

    Without a logger there is no run directory; Lightning would write into ``default_root_dir``
    itself and refuse the next run there, so nothing is written instead. A resumed fit continues in its
    run directory: the config and hyper-parameters it was started with are kept as ``config.1.yaml``
    and ``hparams.1.yaml`` (``.2`` for the next resumption, ...); ``config.yaml`` and ``hparams.yaml``
    are those of the part that runs now.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.loggers or self.already_saved:
            return
        log_dir = trainer.log_dir
        if log_dir is not None and trainer.is_global_zero:
            existing = Path(log_dir) / self.config_filename
            if existing.is_file():  # keep the earlier part's config and hparams beside the new ones
                number = 1
                while existing.with_name(f"{existing.stem}.{number}{existing.suffix}").exists():
                    number += 1
                for file in (existing, Path(log_dir) / "hparams.yaml"):
                    if file.is_file():
                        file.rename(file.with_name(f"{file.stem}.{number}{file.suffix}"))
        super().setup(trainer, pl_module, stage)
