"""Keep the best checkpoint by the task's own main metric."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that, when ``monitor`` is not set, follows the task's main validation metric.

    Every mlplab task names its main metric (``monitor``, e.g. ``val/psnr``) and whether larger is
    better (``monitor_mode``); this callback picks them up at setup, so a recipe never spells them out.
    Set ``monitor`` (and ``mode``) to choose another metric. All other arguments are
    ``ModelCheckpoint``'s; checkpoints go to ``<run dir>/checkpoints`` unless ``dirpath`` is set.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.monitor is None and getattr(pl_module, "monitor", None):
            self.monitor = pl_module.monitor
            self.mode = pl_module.monitor_mode
            self.kth_value = torch.tensor(float("inf") if self.mode == "min" else float("-inf"))
        super().setup(trainer, pl_module, stage)
