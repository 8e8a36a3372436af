"""Function fitting: regress samples of a formula, as the KAN papers evaluate their networks."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MeanSquaredError

from mlplab.errors import ConfigError, require_positive
from mlplab.tasks.base import ImageBackbone, Task


class FunctionFitting(Task):
    """Fit ``y = f(x)`` from samples with the mean squared error; report the root mean squared error.

    The backbone is called as ``family((num_inputs,), (num_outputs,))`` and maps ``(B, num_inputs)`` to
    ``(B, num_outputs)`` (the KAN families, or any flat MLP such as ``StandardMLP``). Metrics:
    ``<stage>/rmse`` (over the whole split, every process of a multi-process run, without the rows that
    pad a process's share) and ``<stage>/loss``; the best checkpoint is chosen by ``val/rmse``.

    Args:
        backbone: The family: its class path and arguments.
        num_inputs: Input dimension; filled in from the DataModule.
        num_outputs: Output dimension; filled in from the DataModule.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/rmse"
    monitor_mode = "min"

    def __init__(self, backbone: ImageBackbone, num_inputs: int, num_outputs: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        require_positive("FunctionFitting", num_inputs=num_inputs, num_outputs=num_outputs)
        self.num_inputs, self.num_outputs = num_inputs, num_outputs
        self.backbone = self.build_backbone(backbone, (num_inputs,), (num_outputs,))
        self.val_rmse = MeanSquaredError(squared=False)
        self.test_rmse = MeanSquaredError(squared=False)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    def example_backbone_input(self, batch_size: int) -> torch.Tensor:
        """Points ``(B, num_inputs)``."""
        return torch.zeros(batch_size, self.num_inputs)

    def example_inputs(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Inputs of the backbone by name, for ``mlplab export``: points ``(B, num_inputs)`` in [-1, 1]."""
        return {"inputs": torch.rand(batch_size, self.num_inputs, generator=generator) * 2 - 1}

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss (mean squared error); override it in a subclass to train with another."""
        return F.mse_loss(predictions, targets)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[-1] != self.num_inputs:
            raise ConfigError(
                f"FunctionFitting was built for {self.num_inputs} inputs, "
                f"got a batch of shape {tuple(x.shape)}"
            )

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        self._check(x)
        self.record_flops(x)
        return self.loss(self(x), y)

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str) -> None:
        x, y = batch
        self._check(x)
        real = self.evaluation_samples(batch_idx, len(y)).count  # later rows pad this process's share
        if real > 0:
            predictions, y = self(x[:real]).float(), y[:real]
            mean_loss, rmse = self._stage_metrics(stage)
            mean_loss.update(self.loss(predictions, y), weight=real)
            rmse.update(predictions, y)

    def _stage_metrics(self, stage: str) -> tuple[MeanMetric, MeanSquaredError]:
        return (self.val_loss, self.val_rmse) if stage == "val" else (self.test_loss, self.test_rmse)

    def log_evaluation(self, stage: str) -> None:
        mean_loss, rmse = self._stage_metrics(stage)
        self.log(f"{stage}/loss", mean_loss)
        self.log(f"{stage}/rmse", rmse, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def predict_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"inputs": x, "predictions": self(x), "targets": y}
