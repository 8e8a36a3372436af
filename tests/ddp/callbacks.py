"""Callbacks the multi-process tests put into runs by class path (``--trainer.callbacks+=...``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback


class StallOnRank(Callback):
    """Process ``rank`` sleeps ``seconds`` at the start of training step ``step``; the others go on.

    The others then wait for it in the step's gradient all-reduce, as they would for a process that
    got one batch more or is stuck.
    """

    def __init__(self, rank: int = 1, step: int = 3, seconds: float = 600.0):
        self.rank, self.step, self.seconds = rank, step, seconds

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            time.sleep(self.seconds)


class SignalAtStep(Callback):
    """Process ``rank`` sends itself ``signum`` (SIGTERM) at the start of training step ``step``."""

    def __init__(self, rank: int = 0, step: int = 3, signum: int = 15):
        self.rank, self.step, self.signum = rank, step, signum

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            import os

            os.kill(os.getpid(), self.signum)


class RecordRandomDraws(Callback):
    """Write two draws of torch's generator at the start of training to ``<folder>/draws.rank<r>.json``."""

    def __init__(self, folder: str = "."):
        self.folder = folder

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        path = Path(self.folder) / f"draws.rank{trainer.global_rank}.json"
        path.write_text(json.dumps(torch.rand(2).tolist()))


class SlowSteps(Callback):
    """Sleep ``seconds`` at every training step, and write the rank's pid to ``<folder>/pid.rank<r>``."""

    def __init__(self, seconds: float = 0.2, folder: str = "."):
        self.seconds, self.folder = seconds, folder

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        import os

        (Path(self.folder) / f"pid.rank{trainer.global_rank}").write_text(str(os.getpid()))

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        time.sleep(self.seconds)
