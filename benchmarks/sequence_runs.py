"""Shared by the sequence benchmarks: run one recipe through mlplab's CLI and record what happened.

Not a benchmark itself; ``sequence_shakespeare.py`` and ``sequence_mqar.py`` import it.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters
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
    """Fit with ``cli_args`` (as on the command line); return the CLI, the recorder and the wall time."""
    cli = MLPLabCLI(args=cli_args, run=False)
    recorder = RunRecorder(metric)
    cli.trainer.callbacks.append(recorder)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli, recorder, time.perf_counter() - start


def parameters(cli: MLPLabCLI) -> int:
    return count_parameters(cli.model.backbone)[0]


def device_name(cli: MLPLabCLI) -> str:
    device = cli.trainer.strategy.root_device
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def commit() -> str:
    return code_version(REPO)


def finished_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def append_row(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerow({key: row.get(key, "") for key in fields})
