"""Image-to-image tasks of the Hourglass paper: denoising, super-resolution ×s, generative classification."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchvision.utils import make_grid

from mlplab.data.common import per_sample_normal
from mlplab.errors import ConfigError
from mlplab.loggers import log_image
from mlplab.tasks.base import ImageBackbone, Task

RestorationMode = Literal["denoise", "super_resolution", "generative_classification"]


class ImageRestoration(Task):
    """Map a degraded image to a clean one, pixels in [0, 1], with an MSE loss (see :meth:`loss`).

    The three modes of the Hourglass paper (Chen et al., 2025), built from clean images on the device:

    * ``denoise``: input = clamp(image + N(0, ``noise_std``²), 0, 1), target = image.
    * ``super_resolution``: input = bicubic downsampling of the image by ``scale`` (no antialiasing,
      as the paper's code), target = image. Height and width must be divisible by ``scale``.
    * ``generative_classification``: input = image, target = the prototype of its class, i.e. the
      first training image of that class (taken from the DataModule, saved in checkpoints).

    Training noise is fresh every step (each process of a multi-process run draws its own); the noise
    of a validation, test or prediction image is drawn from ``(eval_seed, its index in the split)``
    (:func:`~mlplab.data.common.per_sample_normal`), so every evaluation of a model sees the same noisy
    images, whatever the evaluation batch size, the number of processes or the device.

    Metrics, one torchmetrics object per stage (summed over the processes of a multi-process run):
    ``<stage>/psnr`` (data range 1, the mean of per-image PSNR: not the PSNR of the mean squared error,
    which is lower), ``<stage>/ssim`` (torchmetrics': a Gaussian window of σ 1.5, 11 × 11 pixels, over
    the image with reflected borders, averaged over each image's pixels, then over the images) and
    ``<stage>/loss`` (the mean squared error over every image), and for denoising and super-resolution
    ``<stage>/psnr_input``, the PSNR of the degraded input itself (bicubic upsampling for
    super-resolution): the bar a model must clear. Each validation epoch writes an image grid
    ``val/samples`` with rows input / prediction / target to the run's loggers (:mod:`mlplab.loggers`).

    The backbone is called with ``(input_shape, image_shape)`` and must return values in [0, 1] (the
    paper's families end in a sigmoid). The DataModule must deliver raw pixels: ``normalize: false``.

    Args:
        backbone: The family: its class path and arguments.
        image_shape: ``(C, H, W)`` of the clean images; filled in from the DataModule.
        num_classes: Number of classes (for the prototypes of ``generative_classification``, which
            needs it); filled in from the DataModule; ``None``: no classes (denoising and
            super-resolution do not use them).
        mode: Which degradation to undo.
        noise_std: Standard deviation of the Gaussian noise for ``denoise``.
        scale: Downsampling factor for ``super_resolution``.
        eval_seed: Seed of the validation / test noise.
        num_logged_images: Images per row of the logged grid (0: no grid).
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/psnr"
    monitor_mode = "max"
    architecture_arguments = ("backbone", "dropped_layers", "mode")
    evaluation_neutral_arguments = (*Task.evaluation_neutral_arguments, "num_logged_images")

    def __init__(
        self,
        backbone: ImageBackbone,
        image_shape: tuple[int, int, int],
        num_classes: int | None = None,
        mode: RestorationMode = "denoise",
        noise_std: float = 0.25,
        scale: int = 2,
        eval_seed: int = 1234,
        num_logged_images: int = 8,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        if mode not in ("denoise", "super_resolution", "generative_classification"):
            raise ConfigError(
                "ImageRestoration: mode must be denoise, super_resolution or generative_classification, "
                f"got {mode!r}"
            )
        if mode == "generative_classification" and num_classes is None:
            raise ConfigError(
                "ImageRestoration: generative_classification needs num_classes (its targets are the class "
                "prototypes): pass num_classes=data.num_classes"
            )
        if mode == "denoise" and noise_std <= 0:
            raise ConfigError(f"ImageRestoration: noise_std must be positive for denoising, got {noise_std}")
        if num_logged_images < 0:
            raise ConfigError(
                f"ImageRestoration: num_logged_images must be >= 0 (0: no grid), got {num_logged_images}"
            )
        channels, height, width = image_shape
        if mode == "super_resolution" and (scale < 2 or height % scale or width % scale):
            raise ConfigError(
                f"ImageRestoration: super-resolution ×{scale} needs an integer scale ≥ 2 dividing the image "
                f"height and width, got images of {height}×{width}"
            )
        self.image_shape = tuple(image_shape)
        self.mode = mode
        self.noise_std = noise_std
        self.scale = scale
        self.eval_seed = eval_seed
        self.num_logged_images = num_logged_images
        if mode == "super_resolution":
            self.input_shape = (channels, height // scale, width // scale)
        else:
            self.input_shape = self.image_shape
        self.backbone = self.build_backbone(backbone, self.input_shape, self.image_shape)
        # one per class for generative classification; none when built without classes
        self.register_buffer("prototypes", torch.zeros(num_classes or 0, *self.image_shape))
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")
        self.val_input_psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))
        self.test_input_psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self._logged_samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _metrics(stage: str) -> MetricCollection:
        return MetricCollection(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
            },
            prefix=f"{stage}/",
        )

    def unused_data_arguments(self) -> set[str]:
        """``num_classes`` unless the targets are class prototypes (denoising, super-resolution)."""
        return set() if self.mode == "generative_classification" else {"num_classes"}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        if getattr(datamodule, "normalize", False):
            raise ConfigError(
                "ImageRestoration needs raw pixels in [0, 1]: set data.init_args.normalize: false"
            )
        if self.mode == "generative_classification":
            self.prototypes.copy_(datamodule.class_prototypes().to(self.prototypes))

    # ------------------------------------------------------------------------------ degradations
    def degrade(
        self, images: torch.Tensor, labels: torch.Tensor, sample_indices: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Build ``(input, target)`` from clean images ``(B, C, H, W)`` and their labels.

        Args:
            images: Clean images in [0, 1].
            labels: Their classes.
            sample_indices: The images' indices in their split, for evaluation: the noise of each is
                drawn from ``(eval_seed, index)``. ``None`` (training): fresh noise from torch's
                generator.
        """
        if self.mode == "denoise":
            if sample_indices is None:
                noise = torch.randn(images.shape, device=images.device, dtype=images.dtype)
            else:
                noise = per_sample_normal(sample_indices.cpu(), images.shape[1:], self.eval_seed)
                noise = noise.to(device=images.device, dtype=images.dtype, non_blocking=True)
            return (images + self.noise_std * noise).clamp_(0.0, 1.0), images
        if self.mode == "super_resolution":
            low = F.interpolate(images, size=self.input_shape[1:], mode="bicubic", align_corners=False)
            return low, images
        return images, self.prototypes[labels]

    @property
    def input_description(self) -> str:
        """What the model takes, in words (``mlplab export`` writes it into ``config.json``)."""
        channels, height, width = self.input_shape
        shape = f"(batch, {channels}, {height}, {width})"
        if self.mode == "denoise":
            noise = f"N(0, {self.noise_std:g}²)"
            return f"noisy images {shape}, pixels in [0, 1] (clean images plus {noise}, clamped)"
        if self.mode == "super_resolution":
            full = f"{self.image_shape[1]}x{self.image_shape[2]}"
            return (
                f"low-resolution images {shape}, pixels in [0, 1]: the {full} images downsampled by "
                f"{self.scale} with torch.nn.functional.interpolate(images, size=({height}, {width}), "
                "mode='bicubic', align_corners=False); the output has the full size"
            )
        return f"images {shape}, pixels in [0, 1]; the output is the prototype of their class"

    def example_backbone_input(self, batch_size: int) -> torch.Tensor:
        """Degraded images ``(B, *input_shape)``: the clean images' shape, or theirs at 1/``scale``."""
        return torch.zeros(batch_size, *self.input_shape)

    def input_baseline(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """What the degraded input alone offers as an estimate of the target (None for prototypes)."""
        if self.mode == "denoise":
            return inputs
        if self.mode == "super_resolution":
            return F.interpolate(
                inputs, size=self.image_shape[1:], mode="bicubic", align_corners=False
            ).clamp(0, 1)
        return None

    # ------------------------------------------------------------------------------------ steps
    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss (mean squared error); override it in a subclass to train with another."""
        return F.mse_loss(predictions, targets)

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        inputs, targets = self.degrade(images, labels)
        self.record_flops(inputs)
        return self.loss(self(inputs), targets)

    def evaluation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = batch
        samples = self.evaluation_samples(batch_idx, len(images))
        inputs, targets = self.degrade(images, labels, samples.indices)
        predictions = self(inputs).float()
        real = samples.count  # the rows after it pad this process's share: not counted
        self.update_stage_metrics(stage, real, predictions, targets, self.loss)  # logged at the epoch's end
        input_psnr = self.val_input_psnr if stage == "val" else self.test_input_psnr
        baseline = self.input_baseline(inputs)
        if real > 0 and baseline is not None:
            input_psnr.update(baseline[:real], targets[:real])
        return inputs, predictions, targets

    def log_evaluation(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        input_psnr = self.val_input_psnr if stage == "val" else self.test_input_psnr
        self.log(f"{stage}/loss", self.val_loss if stage == "val" else self.test_loss)
        self.log_dict(metrics, prog_bar=stage == "val")
        if input_psnr.update_called:
            self.log(f"{stage}/psnr_input", input_psnr)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, predictions, targets = self.evaluation_step(batch, batch_idx, "val")
        if batch_idx == 0 and self.num_logged_images > 0:
            count = self.num_logged_images
            self._logged_samples = (inputs[:count], predictions[:count], targets[:count])

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        images, labels = batch
        samples = self.evaluation_samples(batch_idx, len(images))
        inputs, targets = self.degrade(images, labels, samples.indices)
        return {"inputs": inputs, "predictions": self(inputs), "targets": targets}

    # ---------------------------------------------------------------------------------- figures
    def sample_grid(self) -> torch.Tensor | None:
        """The last validation samples as one image: rows input / prediction / target."""
        if self._logged_samples is None:
            return None
        inputs, predictions, targets = (t.detach().float().cpu() for t in self._logged_samples)
        if inputs.shape[-2:] != targets.shape[-2:]:
            inputs = F.interpolate(inputs, size=targets.shape[-2:], mode="nearest")
        rows = torch.cat([inputs.clamp(0, 1), predictions.clamp(0, 1), targets.clamp(0, 1)])
        return make_grid(rows, nrow=len(targets), padding=1, pad_value=1.0)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.trainer.sanity_checking or not self.loggers:
            return
        grid = self.sample_grid()
        if grid is not None:
            log_image(self.loggers, "val/samples", grid, self.global_step)
