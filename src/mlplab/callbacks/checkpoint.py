"""Keep the best checkpoint by the task's own main metric, and the latest one beside it."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that, when ``monitor`` is not set, follows the task's main validation metric.

    Every mlplab task names its main metric (``monitor``, e.g. ``val/psnr``) and whether larger is
    better (``monitor_mode``); this callback picks them up at setup, so a recipe never spells them out.
    Set ``monitor`` (and ``mode``) to choose another metric. All other arguments are
    ``ModelCheckpoint``'s; checkpoints go to ``<run dir>/checkpoints`` unless ``dirpath`` is set.

    With ``save_last=True`` (mlplab's default), ``last.ckpt`` holds the state after the latest
    validation (or training epoch, where no validation runs), for resuming with ``--ckpt_path last``.
    Lightning 2.6 writes it only when a top-k checkpoint is saved at the same step, which made it a
    copy of the best one; this callback writes it at every such point whatever the Lightning version.
    """

    _last_saved_at_step: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.monitor is None and getattr(pl_module, "monitor", None):
            self.monitor = pl_module.monitor
            self.mode = pl_module.monitor_mode
            self.kth_value = torch.tensor(float("inf") if self.mode == "min" else float("-inf"))
        super().setup(trainer, pl_module, stage)

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_saved_at_step = trainer.global_step

    def _keep_last_current(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` unless this step's state is already in it."""
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking and not trainer.fast_dev_run
        if self.save_last is True and fitting and self._last_saved_at_step != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._keep_last_current(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._keep_last_current(trainer)
