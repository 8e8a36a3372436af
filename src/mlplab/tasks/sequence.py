"""What the sequence tasks share: the family contract, auxiliary losses, checkpoint checks, epoch means."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from mlplab.errors import CheckpointError, require_positive
from mlplab.tasks.base import Task

#: A sequence family (class or ``functools.partial``) called as ``family(vocab_size, context_length)``;
#: it maps int64 tokens ``(B, T)`` to logits ``(B, T, vocab_size)``, causally.
SequenceBackbone = Callable[[int, int], nn.Module]


class BitsPerToken(MeanMetric):
    """Mean cross-entropy (nats) reported in bits: ``mean / ln 2`` (bits per character for characters)."""

    def compute(self) -> torch.Tensor:
        return super().compute() / math.log(2)


class Perplexity(MeanMetric):
    """Mean cross-entropy (nats) reported as perplexity ``exp(mean)``."""

    def compute(self) -> torch.Tensor:
        return torch.exp(super().compute())


class SequenceTask(Task):
    """Base of the sequence tasks: builds ``backbone(vocab_size, context_length)`` and trains it.

    The training loss is :meth:`loss` (plus the backbone's auxiliary losses, as in every task).
    Validation and test update the subclass's ``val_metrics`` or ``test_metrics`` with the real rows of
    every batch (:meth:`update_metrics`) and log them.
    Loading a checkpoint whose ``vocab_size`` or ``context_length`` differ from this run's ends with one
    line that names both values.

    Args:
        backbone: The sequence family: its class path and arguments.
        vocab_size: Vocabulary size; filled in from the DataModule.
        context_length: Longest sequence; filled in from the DataModule.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    def __init__(
        self,
        backbone: SequenceBackbone,
        vocab_size: int,
        context_length: int,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        require_positive(type(self).__name__, vocab_size=vocab_size, context_length=context_length)
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.backbone = self.build_backbone(backbone, vocab_size, context_length)

    #: What :meth:`items_in_batch` counts (the throughput callback logs ``train/device/tokens_per_sec``).
    item_name = "tokens"

    def items_in_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        """Tokens in a training batch: ``B x T`` of its inputs."""
        return batch[0].numel()

    def example_backbone_input(self, batch_size: int) -> torch.Tensor:
        """Token ids ``(B, context_length)``."""
        return torch.zeros(batch_size, self.context_length, dtype=torch.long)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The task's loss of logits ``(B, T, V)`` against targets ``(B, T)``."""
        raise NotImplementedError

    def log_training_metrics(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Hook for metrics of the training batch (no host synchronisation)."""

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        self.record_flops(inputs)
        logits = self(inputs)
        self.log_training_metrics(logits.detach(), targets)
        return self.loss(logits, targets)

    def update_metrics(self, metrics: MetricCollection, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add the real rows of an evaluation batch to a stage's ``metrics``; subclasses implement it."""
        raise NotImplementedError

    def evaluation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str) -> None:
        inputs, targets = batch
        logits = self(inputs)
        real = self.evaluation_samples(batch_idx, len(inputs)).count  # later rows pad this process's share
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        if real > 0:
            self.update_metrics(metrics, logits[:real], targets[:real])

    def log_evaluation(self, stage: str) -> None:
        self.log_dict(self.val_metrics if stage == "val" else self.test_metrics, prog_bar=stage == "val")

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        inputs, targets = batch
        return {"inputs": inputs, "predictions": self(inputs).argmax(-1), "targets": targets}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("hyper_parameters", {})
        for key, fix in (
            ("vocab_size", "use the data the checkpoint was trained on"),
            ("context_length", "set data.init_args.context_length to the checkpoint's"),
        ):
            theirs, ours = saved.get(key), getattr(self, key)
            if theirs is not None and theirs != ours:
                relation = "longer than" if key == "context_length" and ours > theirs else "different from"
                raise CheckpointError(
                    f"the checkpoint's model was built for {key}={theirs}; this run's {key}={ours} is "
                    f"{relation} the model's: {fix}"
                )
        super().on_load_checkpoint(checkpoint)
