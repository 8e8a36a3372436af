"""What every mlplab task shares: the injected backbone, optimiser wiring, counts and FLOPs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from mlplab.errors import CheckpointError, ConfigError
from mlplab.models.counting import count_parameters, count_training_flops
from mlplab.optim import LinearWarmupDecay

#: A family class (or ``functools.partial`` of one) whose first two arguments are the shape of one input
#: sample and the shape of one output sample; the task calls it with the shapes it gets from the data.
ImageBackbone = Callable[[tuple[int, ...], tuple[int, ...]], nn.Module]


class Task(L.LightningModule):
    """Base class of the tasks: builds the backbone, wires the optimiser, counts parameters and FLOPs.

    Subclasses build ``self.backbone`` by calling :meth:`build_backbone` with the shapes they derive
    from the DataModule, and set ``monitor`` / ``monitor_mode`` to their main validation metric (the
    checkpoint callback keeps the best epoch by it). Only parameters that require gradients reach the
    optimiser, so frozen weights keep no optimiser state and never change.

    Args:
        optimizer: Optimiser class with its arguments (``class_path`` / ``init_args``); AdamW with
            PyTorch's defaults when not given.
        lr_scheduler: LR scheduler with its arguments; ``None`` keeps the LR constant. The default,
            :class:`~mlplab.optim.LinearWarmupDecay`, decays linearly to zero over the whole run.
        lr_scheduler_interval: Step the scheduler every optimiser ``step`` or every ``epoch``.
    """

    #: Name of the validation metric the best checkpoint is chosen by.
    monitor: str = "val/loss"
    #: Whether larger (``max``) or smaller (``min``) values of ``monitor`` are better.
    monitor_mode: Literal["min", "max"] = "min"

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = LinearWarmupDecay,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
    ):
        super().__init__()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.flops_per_batch: int | None = None
        self._backbone_factory: Callable[..., nn.Module] | None = None
        self._backbone_args: tuple = ()

    # ------------------------------------------------------------------------------- backbone
    def build_backbone(self, factory: Callable[..., nn.Module], *shapes: Any) -> nn.Module:
        """Call the injected family ``factory`` with the task's shapes and keep both for re-building.

        Raises:
            ConfigError: When ``factory`` is an already-built module rather than a class or partial.
        """
        if isinstance(factory, nn.Module):
            raise ConfigError(
                f"{type(self).__name__}: backbone must be a family class or functools.partial of one "
                f"(the task passes it the data's shapes), got an instance of {type(factory).__name__}"
            )
        self._backbone_factory, self._backbone_args = factory, shapes
        return factory(*shapes)

    def measure_flops(self, example_input: torch.Tensor) -> int:
        """FLOPs of a training step (forward and backward) of the backbone on a batch like ``example_input``.

        The backbone is re-built on the meta device, so this costs no memory and no real compute.
        """
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            meta_backbone = self._backbone_factory(*self._backbone_args)
            meta_input = torch.empty_like(example_input, device="meta")
            return count_training_flops(lambda: meta_backbone(meta_input))

    def record_flops(self, backbone_input: torch.Tensor) -> None:
        """Measure ``flops_per_batch`` once, at the first training batch (read by the throughput monitor)."""
        if self.flops_per_batch is None and self._backbone_factory is not None:
            try:
                self.flops_per_batch = self.measure_flops(backbone_input)
            except Exception:  # a family that cannot run on the meta device: throughput without FLOPs
                self.flops_per_batch = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    # ------------------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> Any:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(trainable)
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        if getattr(scheduler, "total_steps", 0) is None:
            scheduler.total_steps = int(self.trainer.estimated_stepping_batches)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.lr_scheduler_interval},
        }

    # ------------------------------------------------------------------------ bookkeeping hooks
    def on_fit_start(self) -> None:
        total, trainable = count_parameters(self.backbone)
        for logger in self.loggers:
            logger.log_hyperparams({"params_total": total, "params_trainable": trainable})

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint whose weights do not fit this model."""
        saved = checkpoint.get("state_dict", {})
        own = self.state_dict()
        missing = sorted(own.keys() - saved.keys())
        unexpected = sorted(saved.keys() - own.keys())
        shared = own.keys() & saved.keys()
        reshaped = sorted(k for k in shared if tuple(own[k].shape) != tuple(saved[k].shape))
        if not (missing or unexpected or reshaped):
            return
        trained_with = checkpoint.get("hyper_parameters", {}).get("backbone", {})
        trained_with = trained_with.get("class_path", "?") if isinstance(trained_with, dict) else "?"
        if reshaped:
            key = reshaped[0]
            example = f"{key} is {tuple(saved[key].shape)} there but {tuple(own[key].shape)} here"
        else:
            example = f"e.g. {(missing or unexpected)[0]}"
        raise CheckpointError(
            f"the checkpoint does not fit this {type(self.backbone).__name__} (it holds a {trained_with}): "
            f"{len(missing)} missing, {len(unexpected)} unexpected and {len(reshaped)} differently shaped "
            f"weights ({example}); use the config the checkpoint was trained with"
        )
