"""Associative recall (MQAR): cross-entropy and accuracy on the answer positions only."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection

from mlplab.tasks.sequence import SequenceBackbone, SequenceTask

IGNORE_INDEX = -100


class AssociativeRecall(SequenceTask):
    """Recall the value of each queried key: the backbone maps tokens ``(B, T)`` to logits ``(B, T, V)``.

    Labels are -100 everywhere except at the answer positions (MQAR's query tokens), so the loss (mean
    cross-entropy) and the accuracy (argmax equals the label) count those positions only, as Zoology's
    trainer does. Metrics: ``<stage>/acc`` and ``<stage>/loss`` over all answers of the epoch (one set
    per evaluation stage), ``train/acc`` (per epoch) and ``train/loss`` (per step). The best checkpoint
    is chosen by ``val/acc``.

    Args:
        backbone: The sequence family: its class path and arguments.
        vocab_size: Vocabulary size; filled in from the DataModule.
        context_length: Sequence length; filled in from the DataModule.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(
        self,
        backbone: SequenceBackbone,
        vocab_size: int,
        context_length: int,
        **kwargs: Any,
    ):
        super().__init__(backbone, vocab_size, context_length, **kwargs)
        self.save_hyperparameters()
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")

    @staticmethod
    def _metrics(stage: str) -> MetricCollection:
        return MetricCollection({"acc": MeanMetric(), "loss": MeanMetric()}, prefix=f"{stage}/")

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the answer positions (labels other than -100)."""
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)

    @staticmethod
    def answer_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fraction of answer positions predicted right, and the number of answer positions."""
        answers = labels != IGNORE_INDEX
        count = answers.sum()
        correct = ((logits.argmax(-1) == labels) & answers).sum()
        return correct / count.clamp_min(1), count

    def log_training_metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        accuracy, _ = self.answer_accuracy(logits, labels)
        self.log_epoch_mean("train/acc", accuracy, labels.shape[0])  # per batch row, as Lightning weighs

    def update_metrics(self, metrics: MetricCollection, logits: torch.Tensor, targets: torch.Tensor) -> None:
        accuracy, count = self.answer_accuracy(logits, targets)
        metrics["acc"].update(accuracy, weight=count)
        metrics["loss"].update(self.loss(logits, targets).float(), weight=count)
