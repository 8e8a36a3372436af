"""Throughput, FLOPs and MFU of training, measured with Lightning's ``Throughput`` at the logging steps."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.throughput import Throughput as ThroughputMeter
from lightning.fabric.utilities.throughput import get_available_flops
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from mlplab.errors import require_positive

PRECISION_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16, "64": torch.float64}

#: Dense peak FLOP/s (datasheet figures without sparsity) of GPUs whose peak Lightning does not find, by a
#: part of the device's name, most specific first. Lightning 2.6 knows the H200 only under the names
#: "h200 sxm1" / "h200 nvl1", which no device reports ("NVIDIA H200", "NVIDIA H200 NVL"), and with the
#: figures of sparse matrices (twice the dense ones). "tfloat32": float32 matrix products on tensor cores
#: (``torch.get_float32_matmul_precision()`` other than "highest").
DENSE_PEAK_FLOPS: dict[str, dict[torch.dtype | str, float]] = {
    "h200 nvl": {torch.float64: 30e12, torch.float32: 60e12, "tfloat32": 417.5e12,
                 torch.bfloat16: 835.5e12, torch.float16: 835.5e12},
    "h200": {torch.float64: 34e12, torch.float32: 67e12, "tfloat32": 494.7e12,
             torch.bfloat16: 989.4e12, torch.float16: 989.4e12},
}  # fmt: skip


def leading_batch_size(batch: Any) -> int:
    """Number of samples in a batch: the first dimension of its first tensor."""
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0])


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype the matrix units run in under a Trainer ``precision`` setting (for the peak FLOP/s)."""
    return PRECISION_DTYPES.get(str(precision).split("-")[0], torch.float32)


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """The device's peak FLOP/s in ``dtype`` (dense): :data:`DENSE_PEAK_FLOPS`, else Lightning's table.

    None for CPUs and for GPUs neither knows (Lightning then warns once).
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        for chip, peaks in DENSE_PEAK_FLOPS.items():
            if chip in name:
                tensor_cores = dtype is torch.float32 and torch.get_float32_matmul_precision() != "highest"
                return peaks.get("tfloat32" if tensor_cores else dtype)
    return get_available_flops(device, dtype)


class Throughput(Callback):
    """Log samples/s, FLOPs/s, on a GPU MFU, and tokens/s for the sequence tasks.

    The metrics are ``train/device/samples_per_sec``, ``.../flops_per_sec``, ``.../mfu`` and, for
    tasks that count items in their batches (the sequence tasks: tokens), ``.../tokens_per_sec``.

    Lightning's ``Throughput`` meter (the engine of its ``ThroughputMonitor``) is updated at every
    logging step (every ``trainer.log_every_n_steps`` optimizer steps, whatever the gradient
    accumulation) with the samples, batches and FLOPs since the last one; rates are averaged over the
    last ``window_size`` updates, and the time from a validation's start to the next training batch
    (the validation and the checkpoints written after it) is left out. The rates are logged at the step
    Lightning logs that batch's ``train/loss`` and learning rate at.
    Unlike ``ThroughputMonitor``, which waits for the GPU after every step, this waits only when it logs,
    so the measurement does not slow down the training it measures. FLOPs per batch come from the
    task's ``flops_per_batch`` (measured once with ``measure_flops`` on a meta-device copy of the
    backbone, forward and backward); MFU divides by the device's dense peak FLOP/s in the training
    precision (:func:`peak_flops`: Lightning's table, and the H200, which it misses), known for GPUs,
    not CPUs. Items per batch come from the task's
    ``items_in_batch(batch)`` and are named by its ``item_name`` (``"tokens"``).

    Args:
        window_size: Number of logging steps the rates are averaged over.
    """

    def __init__(self, window_size: int = 4):
        require_positive("throughput", window_size=window_size)
        self.window_size = window_size
        self.meter: ThroughputMeter | None = None
        self._start = 0.0
        self._batches = self._samples = self._batches_since_update = self._items = 0
        self._validation_start: float | None = None
        self._logged_step = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        device = trainer.strategy.root_device
        available = peak_flops(device, compute_dtype(trainer.precision))
        self.meter = ThroughputMeter(
            available_flops=available, world_size=trainer.world_size, window_size=max(2, self.window_size)
        )

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.meter.reset()
        self._start = time.perf_counter()
        self._batches = self._samples = self._batches_since_update = self._items = 0
        self._logged_step = trainer.global_step

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches += 1
        self._batches_since_update += 1
        self._samples += leading_batch_size(batch)
        count_items = getattr(pl_module, "items_in_batch", None)
        if count_items is not None:
            self._items += count_items(batch)
        step = trainer.global_step  # optimizer steps: several batches each with gradient accumulation
        if step == self._logged_step or step % max(1, trainer.log_every_n_steps):
            return
        self._logged_step = step
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # the clock must see the work the GPU has queued
        flops_per_batch = getattr(pl_module, "flops_per_batch", None)
        self.meter.update(
            time=time.perf_counter() - self._start,
            batches=self._batches,
            samples=self._samples,
            flops=flops_per_batch * self._batches_since_update if flops_per_batch else None,
            lengths=self._items if count_items is not None else None,
        )
        self._batches_since_update = 0
        item_name = getattr(pl_module, "item_name", "items")
        metrics = {
            f"train/{key.replace('items', item_name).replace('lengths', item_name)}": value
            for key, value in self.meter.compute().items()
        }
        # the step Lightning logs this batch's train/loss and learning rate at (its batches that
        # stepped, counted after this hook): one less than global_step, already counting this step
        logged_at = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=logged_at)

    @rank_zero_only
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and self._validation_start is None:
            self._validation_start = time.perf_counter()

    @rank_zero_only
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._validation_start is not None:  # training resumes: leave out the validation and what
            self._start += time.perf_counter() - self._validation_start  # followed it (checkpoint writes)
            self._validation_start = None
