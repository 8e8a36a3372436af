"""What the point-by-point regression tasks share: ``(inputs, targets)`` batches fitted with the MSE."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, Metric

from mlplab.tasks.base import Task


class PointwiseFitting(Task):
    """Base of :class:`~mlplab.tasks.FunctionFitting` and :class:`~mlplab.tasks.ImageFitting`.

    A batch is ``(inputs, targets)``; the backbone maps the inputs to predictions of the targets' shape,
    trained with the mean squared error (:meth:`loss`). An evaluation batch adds its real rows (the rows
    after them pad a process's share) to the stage's mean ``loss`` and to its metric, logged as
    ``<stage>/loss`` and ``<stage>/<metric_name>``.

    A subclass builds the backbone, keeps ``val_loss`` / ``test_loss`` (``MeanMetric``) and its metric as
    ``val_<metric_name>`` / ``test_<metric_name>``, and implements :meth:`check_batch`.
    """

    #: The metric's name, in the logged ``<stage>/<metric_name>`` and in the attributes that hold it.
    metric_name: ClassVar[str]
    #: The inputs' key in :meth:`predict_step`'s output.
    inputs_name: ClassVar[str]

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss (mean squared error); override it in a subclass to train with another."""
        return F.mse_loss(predictions, targets)

    def check_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Refuse a batch the task was not built for (a one-line ``ConfigError``); subclasses implement it."""
        raise NotImplementedError

    def metric_predictions(self, predictions: torch.Tensor) -> torch.Tensor:
        """The predictions as the metric takes them (as they are here)."""
        return predictions

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        self.check_batch(inputs, targets)
        self.record_flops(inputs)
        return self.loss(self(inputs), targets)

    def evaluation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the stage's metric and loss with the batch's real rows; return them, predicted and true."""
        inputs, targets = batch
        self.check_batch(inputs, targets)
        real = self.evaluation_samples(batch_idx, len(targets)).count  # later rows pad this process's share
        predictions, targets = self(inputs).float()[:real], targets[:real]
        if real > 0:
            mean_loss, metric = self._stage_metrics(stage)
            mean_loss.update(self.loss(predictions, targets), weight=real)
            metric.update(self.metric_predictions(predictions), targets)
        return predictions, targets

    def _stage_metrics(self, stage: str) -> tuple[MeanMetric, Metric]:
        return getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_{self.metric_name}")

    def log_evaluation(self, stage: str) -> None:
        mean_loss, metric = self._stage_metrics(stage)
        self.log(f"{stage}/loss", mean_loss)
        self.log(f"{stage}/{self.metric_name}", metric, prog_bar=stage == "val")

    def predict_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        inputs, targets = batch
        return {self.inputs_name: inputs, "predictions": self(inputs), "targets": targets}
