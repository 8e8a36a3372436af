"""Save what ``predict`` returns into the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


class SavePredictions(BasePredictionWriter):
    """Write the predictions of ``mlplab predict`` to ``<run dir>/predictions.pt``.

    The tasks' ``predict_step`` returns a dict of tensors per batch (e.g. ``predictions``,
    ``targets``); they are concatenated along the batch axis and saved with ``torch.save``, to be read
    back with ``torch.load(path)``.

    Args:
        filename: File name inside the run directory.
    """

    def __init__(self, filename: str = "predictions.pt"):
        super().__init__(write_interval="epoch")
        self.filename = filename

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        if not batches or not isinstance(batches[0], dict):
            return
        merged = {key: torch.cat([batch[key].detach().cpu() for batch in batches]) for key in batches[0]}
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f".rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        path = folder / (self.filename + suffix)
        torch.save(merged, path)
        rank_zero_info(f"predictions saved to {path}")
