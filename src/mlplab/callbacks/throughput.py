"""Throughput, FLOPs and MFU per step through Lightning's ``ThroughputMonitor``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ThroughputMonitor


def leading_batch_size(batch: Any) -> int:
    """Number of samples in a batch: the first dimension of its first tensor."""
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0])


class Throughput(ThroughputMonitor):
    """Log ``train/samples_per_sec``, ``train/flops_per_sec`` and, on a GPU, ``train/mfu`` every few steps.

    A thin ``ThroughputMonitor`` whose batch size is the first dimension of the batch's first tensor.
    The FLOPs of a step come from the task's ``flops_per_batch``, which mlplab's tasks measure once with
    ``measure_flops`` on a meta-device copy of the backbone (forward and backward). MFU needs the
    device's peak FLOP/s, which Lightning knows for GPUs, not CPUs. Values are averaged over a sliding
    window of steps and logged at the trainer's ``log_every_n_steps``.

    Args:
        window_size: Number of steps in the sliding window.
    """

    def __init__(self, window_size: int = 20):
        super().__init__(batch_size_fn=leading_batch_size, window_size=window_size, separator="/")
