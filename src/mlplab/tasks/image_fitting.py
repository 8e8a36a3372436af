"""Neural-field image fitting: a coordinate network learns one image, pixel coordinates -> colours."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio

from mlplab.errors import ConfigError
from mlplab.loggers import log_image
from mlplab.models.fields.fresh import select_frequency_scale
from mlplab.tasks.base import ImageBackbone, Task
from mlplab.tasks.pointwise import PointwiseFitting


class ImageFitting(PointwiseFitting):
    """Fit one image with a neural field: MSE between predicted and true colours of random pixels.

    The backbone is called as ``family((2,), (C,))`` and maps pixel coordinates ``(B, 2)`` ((row,
    column) of pixel centres in [-1, 1]) to colours ``(B, C)`` in [0, 1]
    (:mod:`mlplab.models.fields`). The DataModule (:class:`~mlplab.data.ImageFittingDataModule`)
    serves random training pixels and every pixel, in row-major order, for validation and test.

    Metrics: ``<stage>/psnr``, the PSNR of the whole image (data range 1: from the squared error summed
    over every pixel and channel, predictions clamped to [0, 1]) and ``<stage>/loss``, over every process of a
    multi-process run without the rows that pad a process's share; the best
    checkpoint is chosen by ``val/psnr``. ``train/seconds_to_psnr`` is logged once, the first time a
    validation reaches ``target_psnr`` (training time since the fit started, validation excluded). Each
    validation writes a TensorBoard image ``val/fit``: the fit beside the target.

    FreSh: a family built with ``fresh`` (SIREN, CoordinateMLP, CAM) gets its ``frequency_scale`` chosen
    before the first training step (:func:`~mlplab.models.fields.fresh.select_frequency_scale`); the
    choice is logged (``fresh/frequency_scale``) and kept in checkpoints with the weights, so a resumed
    fit does not choose again.

    Args:
        backbone: The family: its class path and arguments.
        image_shape: ``(C, H, W)`` of the image; filled in from the DataModule.
        target_psnr: PSNR (dB) whose first validation time is logged as ``train/seconds_to_psnr``.
        log_images: Write the ``val/fit`` image every validation.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/psnr"
    monitor_mode = "max"
    metric_name = "psnr"
    inputs_name = "coords"
    evaluation_neutral_arguments = (*Task.evaluation_neutral_arguments, "target_psnr", "log_images")

    def __init__(
        self,
        backbone: ImageBackbone,
        image_shape: tuple[int, int, int],
        target_psnr: float = 30.0,
        log_images: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        if len(image_shape) != 3:
            raise ConfigError(f"ImageFitting: image_shape must be (C, H, W), got {tuple(image_shape)}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.target_psnr = target_psnr
        self.log_images = log_images
        self.backbone = self.build_backbone(backbone, (2,), (self.image_shape[0],))
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.test_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self._rendered: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._train_seconds = 0.0
        self._epoch_started: float | None = None
        self._reached_target = False
        #: Seconds FreSh took to choose the frequency scale (0 when it did not run).
        self.fresh_seconds = 0.0

    # ------------------------------------------------------------------------------------ FreSh
    def on_fit_start(self) -> None:
        """Choose the backbone's frequency scale with FreSh, unless the fit resumes from a checkpoint.

        Lightning has restored a resumed fit's weights (the chosen scale among them) before this hook.
        """
        super().on_fit_start()
        fresh = getattr(self.backbone, "fresh", None)
        datamodule = getattr(self.trainer, "datamodule", None)
        if fresh is None or datamodule is None or self.trainer.ckpt_path:
            return
        target = datamodule.target_image()
        channels, height, width = target.shape
        if (channels, height, width) != self.image_shape:
            return  # the data's image differs: the task will refuse it at the first batch
        from mlplab.data.fields import pixel_grid

        device = next(self.backbone.parameters()).device
        coords = pixel_grid(height, width).to(device)
        started = time.perf_counter()
        best, distances = select_frequency_scale(
            lambda: self._backbone_factory(*self._backbone_args), target.to(device), coords, fresh
        )
        self.backbone.set_frequency_scale(best)
        self.fresh_seconds = time.perf_counter() - started
        listed = ", ".join(f"{c:g}: {d:.3f}" for c, d in distances.items())
        rank_zero_info(
            f"FreSh chose frequency_scale {best:g} for {type(self.backbone).__name__} in "
            f"{self.fresh_seconds:.1f} s (spectrum distances {listed})"
        )
        for logger in self.loggers:
            logger.log_hyperparams({"fresh/frequency_scale": best, "fresh/seconds": self.fresh_seconds})

    # ------------------------------------------------------------------------------------ steps
    def example_backbone_input(self, batch_size: int) -> torch.Tensor:
        """Pixel coordinates ``(B, 2)``."""
        return torch.zeros(batch_size, 2)

    def example_inputs(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Inputs of the backbone by name, for ``mlplab export``: pixel ``coords`` ``(B, 2)`` in [-1, 1]."""
        return {"coords": torch.rand(batch_size, 2, generator=generator) * 2 - 1}

    def check_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if targets.shape[-1] != self.image_shape[0]:
            raise ConfigError(
                f"ImageFitting was built for images of {self.image_shape[0]} channels, got colours of "
                f"{targets.shape[-1]}; use the config the checkpoint was trained with"
            )

    def metric_predictions(self, predictions: torch.Tensor) -> torch.Tensor:
        """The predictions clamped to [0, 1], the colours' range, for the PSNR."""
        return predictions.clamp(0, 1)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        predictions, colours = self.evaluation_step(batch, batch_idx, "val")
        if self.log_images:
            self._rendered.append(predictions.detach().clamp(0, 1).cpu())
            self._targets.append(colours.detach().float().cpu())

    # ------------------------------------------------------------------------------ time to a PSNR
    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        if self._epoch_started is not None:  # validation time does not count as training time
            self._train_seconds += time.perf_counter() - self._epoch_started
            self._epoch_started = None

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        rendered, targets = self._rendered, self._targets
        self._rendered, self._targets = [], []
        if self.trainer.sanity_checking:
            return
        if self.training or self.trainer.state.fn == "fit":
            self._epoch_started = time.perf_counter()
        psnr = float(self.val_psnr.compute()) if self.val_psnr.update_called else None
        if not self._reached_target and psnr is not None and psnr >= self.target_psnr:
            self._reached_target = True
            self.log("train/seconds_to_psnr", self._train_seconds)
            rank_zero_info(
                f"val/psnr reached {self.target_psnr:g} dB after {self._train_seconds:.1f} s of training"
            )
        channels, height, width = self.image_shape
        if not rendered or sum(len(r) for r in rendered) != height * width:
            return  # a partial validation (limit_val_batches): no whole image to show
        fit = torch.cat(rendered).view(height, width, channels).permute(2, 0, 1)
        target = torch.cat(targets).view(height, width, channels).permute(2, 0, 1)
        side_by_side = torch.cat([fit, torch.ones(channels, height, 2), target], dim=-1)
        log_image(self.loggers, "val/fit", side_by_side, self.global_step)
