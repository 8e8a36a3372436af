"""Shared by the sequence benchmarks: run one recipe through mlplab's CLI and record what happened.

Not a benchmark itself; ``sequence_shakespeare.py`` and ``sequence_mqar.py`` import it.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters
from mlplab.models.sequence.backends import backends_in_use
from mlplab.tools.provenance import code_version

REPO = Path(__file__).resolve().parents[1]


class RunRecorder(L.Callback):
    """Wall time, training time without validation, steps and every validation's metrics of a fit.

    The device is synchronised only at the edges of validation and at the end of training.
    """

    def __init__(self, metric: str):
        self.metric = metric
        self.fit_start = 0.0
        self.train_seconds = 0.0
        self._segment = 0.0
        self.validations: list[dict[str, float]] = []
        self.peak_memory_gib = 0.0

    @staticmethod
    def _sync(trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_start = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self._segment = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and self._segment:
            self._sync(trainer)
            self.train_seconds += time.perf_counter() - self._segment

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is not None:
            self.validations.append(
                {
                    "step": trainer.global_step,
                    "seconds": time.perf_counter() - self.fit_start,
                    self.metric: float(value),
                }
            )
        self._sync(trainer)
        self._segment = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(trainer)
        if self._segment:
            self.train_seconds += time.perf_counter() - self._segment
            self._segment = 0.0


def run_recipe(cli_args: list[str], metric: str) -> tuple[MLPLabCLI, RunRecorder, float]:
    """Fit with ``cli_args`` (as on the command line); return the CLI, the recorder and the wall time.

    The recorder's ``peak_memory_gib`` is the fit's peak memory (see :func:`reset_peak_memory`).
    """
    cli = MLPLabCLI(args=cli_args, run=False)
    recorder = RunRecorder(metric)
    cli.trainer.callbacks.append(recorder)
    device = cli.trainer.strategy.root_device
    reset_peak_memory(device)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    recorder.peak_memory_gib = round(peak_memory(device) / 1024**3, 2)
    return cli, recorder, seconds


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or the process's peak resident set on Linux."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif Path("/proc/self/clear_refs").exists():
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def peak_memory(device: torch.device) -> int:
    """Bytes: the most CUDA memory allocated by tensors, or the process's peak resident set (CPU).

    The resident set includes the Python process itself (about 1 GiB with torch and Lightning loaded).
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def backends(cli: MLPLabCLI) -> str:
    """The sequence-mixer backends the model used (see :mod:`mlplab.models.sequence.backends`)."""
    return backends_in_use(cli.model.backbone)


def flops_per_token(cli: MLPLabCLI, tokens_per_batch: int) -> float | str:
    """Training FLOPs (forward and backward) per token, matrix products only; ``""`` when not counted."""
    flops = getattr(cli.model, "flops_per_batch", None)
    return round(flops / tokens_per_batch) if flops else ""


def parameters(cli: MLPLabCLI) -> int:
    return count_parameters(cli.model.backbone)[0]


def device_name(cli: MLPLabCLI) -> str:
    device = cli.trainer.strategy.root_device
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def commit() -> str:
    return code_version(REPO)
