"""Helpers of the sweep tests: a tiny sweep on the offline 8x8 digits, the command runner, fake results."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from mlplab.tools.sweep import execute
from mlplab.tools.sweep.record import RESULT_FILE, RunRecord
from tests.conftest import REPO

QUICKSTART = REPO / "configs" / "quickstart.yaml"
TINY = {
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 2,
    "trainer.limit_val_batches": 1,
    "trainer.limit_test_batches": 1,
    "trainer.log_every_n_steps": 1,
    "data.init_args.batch_size": 32,
}
# On the 8x8 digits (d_x = d_y = 64): hourglass embed_dim (128 + 2 L mlp_dim),
# conventional 2*64*64 + 2 L 64 mlp_dim.
HOURGLASS = {"class_path": "HourglassMLP", "grid": {"embed_dim": [64, 128], "mlp_dim": [8], "depth": [1]}}
CONVENTIONAL = {"class_path": "ConventionalMLP", "grid": {"mlp_dim": [72], "depth": [1]}}


def write_sweep(folder: Path, name: str = "sweep.yaml", **changes) -> Path:
    """A tiny sweep on the digits: hourglass 9,216 and 18,432 parameters, conventional 17,408."""
    config = {
        "base": str(QUICKSTART),
        "families": {"hourglass": HOURGLASS, "conventional": CONVENTIONAL},
        "budgets": [9216, 18432],
        "tolerance": 0.1,
        "seeds": [0],
        "overrides": TINY,
    }
    config.update(changes)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def quiet(_: str) -> None:
    """A log function that drops the sweep's progress lines."""


def finish(run: RunRecord, best_val: float, status: str = "ok") -> RunRecord:
    """Record ``run`` as finished with ``best_val`` without training it (its files as a real run's)."""
    execute.prepare(run)
    result = RunRecord.from_json({**run.to_json(), "config": {}})
    result.status, result.best_val, result.test, result.epochs = status, best_val, best_val - 0.5, 1
    result.error = "" if status == "ok" else "RuntimeError: made up"
    result.write(RESULT_FILE)
    return result


def run_mlplab(*args: str) -> int:
    """Run the ``mlplab`` program in this process; return its exit status (0 when it returns normally)."""
    from mlplab.__main__ import main

    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    return 0


@pytest.fixture
def mlplab():
    """The in-process ``mlplab`` runner (``mlplab sweep`` goes through mlplab.__main__)."""
    return run_mlplab
