"""Image classification: cross-entropy with label smoothing and mixup, top-1 / top-5 accuracy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from mlplab.errors import ConfigError, require_rate
from mlplab.tasks.base import ImageBackbone, Task


class ImageClassification(Task):
    """Classify images ``(B, C, H, W)`` into ``num_classes`` logits ``(B, K)``.

    Loss: cross-entropy with optional label smoothing; with ``mixup_alpha`` or ``cutmix_alpha`` above
    zero, timm's ``Mixup`` mixes the training batch and its (smoothed) one-hot targets and the loss is
    soft-target cross-entropy. Metrics: ``<stage>/acc`` (top-1) and ``<stage>/acc_top5`` (when there are
    more than 5 classes), one torchmetrics object per evaluation stage, plus ``<stage>/loss`` (plain
    cross-entropy on validation and test, the mean over every image); ``train/acc`` is the epoch's
    top-1 accuracy on the un-mixed training batches as trained on (augmented, in training mode: with
    dropout), absent with mixup. Epoch figures cover the processes of a multi-process run together.

    Args:
        backbone: The family: its class path and arguments; it is called with
            ``(image_shape, (num_classes,))``.
        image_shape: ``(C, H, W)`` of the images; filled in from the DataModule.
        num_classes: Number of classes; filled in from the DataModule.
        label_smoothing: Label smoothing of the training loss.
        mixup_alpha: Beta-distribution parameter of mixup (0: off). Mixup and CutMix pair the samples of
            a batch: they need an even ``data.batch_size`` (checked before a fit starts).
        cutmix_alpha: Beta-distribution parameter of CutMix (0: off).
        mixup_prob: Probability of mixing a batch when mixup or CutMix is on.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/acc"
    monitor_mode = "max"
    evaluation_neutral_arguments = (
        *Task.evaluation_neutral_arguments, "label_smoothing", "mixup_alpha", "cutmix_alpha", "mixup_prob"
    )  # fmt: skip

    def __init__(
        self,
        backbone: ImageBackbone,
        image_shape: tuple[int, int, int],
        num_classes: int,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        require_rate("ImageClassification", label_smoothing=label_smoothing)
        if num_classes < 2:
            raise ConfigError(f"ImageClassification: num_classes must be at least 2, got {num_classes}")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ConfigError(
                "ImageClassification: mixup_alpha and cutmix_alpha must be >= 0 (0: off), "
                f"got {mixup_alpha} and {cutmix_alpha}"
            )
        if not 0.0 <= mixup_prob <= 1.0:
            raise ConfigError(f"ImageClassification: mixup_prob must be in [0, 1], got {mixup_prob}")
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.backbone = self.build_backbone(backbone, self.image_shape, (num_classes,))
        self.mixup = None
        if mixup_alpha > 0 or cutmix_alpha > 0:
            from timm.data import Mixup  # imported only when mixing: timm takes most of a second to import

            self.mixup = Mixup(
                mixup_alpha=mixup_alpha,
                cutmix_alpha=cutmix_alpha,
                prob=mixup_prob,
                label_smoothing=label_smoothing,
                num_classes=num_classes,
            )
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint trained on other classes in a line naming them, before the weights' check.

        A DataModule that records its class names (:class:`~mlplab.data.ImageFolderDataModule`) says
        which differ; a checkpoint for another count would otherwise be refused for its head's shape.
        """
        datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
        check = getattr(datamodule, "check_class_names", None)
        state = checkpoint.get(type(datamodule).__qualname__)
        if check is not None and isinstance(state, dict):
            check(state)
        super().on_load_checkpoint(checkpoint)

    def setup(self, stage: str) -> None:
        """Before a fit with mixup / CutMix, refuse an odd ``data.batch_size``: they pair the samples."""
        super().setup(stage)
        batch_size = getattr(self.trainer.datamodule, "batch_size", None)
        if stage == "fit" and self.mixup is not None and isinstance(batch_size, int) and batch_size % 2:
            raise ConfigError(
                f"ImageClassification: mixup / CutMix need an even data.batch_size, got {batch_size}"
            )

    def _metrics(self, stage: str) -> MetricCollection:
        metrics = {"acc": MulticlassAccuracy(self.num_classes, top_k=1, average="micro")}
        if self.num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(self.num_classes, top_k=5, average="micro")
        return MetricCollection(metrics, prefix=f"{stage}/")

    def example_backbone_input(self, batch_size: int) -> torch.Tensor:
        """Images ``(B, C, H, W)``."""
        return torch.zeros(batch_size, *self.image_shape)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss; override it in a subclass to train with another.

        Cross-entropy against class indices (with label smoothing) or, after mixup, against soft
        targets ``(B, K)``.
        """
        if targets.is_floating_point():  # probabilities: timm's SoftTargetCrossEntropy, in torch
            return F.cross_entropy(logits, targets)
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        self.record_flops(images)
        if self.mixup is not None:
            if images.shape[0] % 2:
                raise ConfigError(f"mixup / CutMix need an even batch size, got {images.shape[0]}")
            mixed, soft_targets = self.mixup(images, labels)
            return self.loss(self(mixed), soft_targets)
        logits = self(images)
        # a plain mean keeps the accelerator busy: metric objects check their inputs on the host
        accuracy = (logits.detach().argmax(-1) == labels).float().mean()
        self.log_epoch_mean("train/acc", accuracy, len(labels))
        return self.loss(logits, labels)

    def evaluation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str) -> None:
        images, labels = batch
        logits = self(images)
        real = self.evaluation_samples(batch_idx, len(images)).count  # later rows pad this process's share
        self.update_stage_metrics(stage, real, logits, labels, F.cross_entropy)

    def log_evaluation(self, stage: str) -> None:
        shown = stage == "val"  # in the progress bar
        self.log(f"{stage}/loss", self.val_loss if stage == "val" else self.test_loss, prog_bar=shown)
        self.log_dict(self.val_metrics if stage == "val" else self.test_metrics, prog_bar=shown)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        images, labels = batch
        probabilities = self(images).softmax(dim=-1)
        return {"probabilities": probabilities, "predictions": probabilities.argmax(-1), "labels": labels}
