"""``mlplab sweep`` end to end: runs as processes, crashes recorded, history kept, one-line errors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO
from tests.tools.sweep.conftest import read_csv, write_sweep

CRASHING_FAMILY = '''
import os
import signal

import torch

from mlplab.models import HourglassMLP


class CrashingMLP(HourglassMLP):
    """An Hourglass MLP that fails in a real run, not on the meta device where the sweep counts it:
    with mlp_dim = 8 it raises in __init__; with mlp_dim = 16 its process is killed as out-of-memory
    kills it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.mlp_dim == 8 and torch.empty(0).device.type != "meta":
            raise RuntimeError("crashing: this shape fails in __init__")

    def forward(self, x):
        if self.mlp_dim == 16 and x.device.type != "meta":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)
'''
HOURGLASS_128 = {"class_path": "HourglassMLP", "grid": {"embed_dim": [128], "mlp_dim": [8], "depth": [1]}}


def test_runs_are_processes_crashes_are_recorded_and_history_is_kept(tmp_path, mlplab, capsys):
    (tmp_path / "crashing.py").write_text(CRASHING_FAMILY)
    crashing = {
        "class_path": "crashing.CrashingMLP",
        "grid": {"embed_dim": [64], "mlp_dim": [8, 16], "depth": [1]},
    }
    path = write_sweep(tmp_path, families={"hourglass": HOURGLASS_128, "crashing": crashing},
                       budgets=[9216, 10240, 18432])  # fmt: skip
    assert mlplab("sweep", "--config", str(path), "--out", "out") == 0
    assert "3 of 3 runs finished (2 failed)" in capsys.readouterr().out
    out = tmp_path / "out"
    rows = {r["shape"]: r for r in read_csv(out / "results.csv")}
    fine, raised, killed = (
        rows["embed_dim=128 mlp_dim=8 depth=1"],
        rows["embed_dim=64 mlp_dim=8 depth=1"],
        rows["embed_dim=64 mlp_dim=16 depth=1"],
    )
    assert fine["status"] == "ok" and float(fine["best_val"]) > 0 and float(fine["test"]) > 0
    run_dir = out / "runs" / fine["run_id"]
    assert (run_dir / "run.yaml").is_file() and fine["run_dir"] == str(
        run_dir / "lightning_logs" / "version_0"
    )
    hparams = yaml.safe_load(
        (run_dir / "lightning_logs/version_0/hparams.yaml").read_text().replace("!!python/tuple", "")
    )
    assert hparams["params_total"] == int(fine["params_total"]) == 18432  # the meta count is the real one
    assert (run_dir / "lightning_logs/version_0/checkpoints/best.ckpt").is_file()
    assert (
        raised["status"] == "failed"
        and raised["error"] == "RuntimeError: crashing: this shape fails in __init__"
    )
    assert "Traceback" in (out / "runs" / raised["run_id"] / "error.txt").read_text()
    assert killed["status"] == "failed"
    assert killed["error"] == "the run's process was killed by SIGKILL (out of memory?)"
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {(r["budget"], r["family"]) for r in read_csv(out / "best.csv")} == {("18432", "hourglass")}
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert "sweep/pareto" in events.Tags()["images"]

    records = {p: p.read_bytes() for p in out.glob("runs/*/result.json")}
    assert mlplab("sweep", "--config", str(path), "--out", "out") == 0  # nothing left to do
    assert "3 runs (1 seed(s) each), 3 finished, 0 to run" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.glob("runs/*/result.json")} == records  # read back, not repeated

    # a changed override (and a narrower sweep): one new run; the earlier ones stay, marked
    narrower = write_sweep(tmp_path, "narrower.yaml", families={"hourglass": HOURGLASS_128}, budgets=[18432])
    assert mlplab("sweep", "--config", str(narrower), "--out", "out", "--trainer.max_epochs=2") == 0
    rows = read_csv(out / "results.csv")
    assert len(rows) == 4 and [r["current"] for r in rows] == ["yes", "no", "no", "no"]
    assert rows[0]["epochs"] == "2" and rows[0]["shape"] == "embed_dim=128 mlp_dim=8 depth=1"
    earlier = next(r for r in rows if r["run_id"] == fine["run_id"])
    assert earlier["settings"] == "max_epochs=1" and earlier["best_val"] == fine["best_val"]
    best = {(r["family"], r["settings"], r["current"]) for r in read_csv(out / "best.csv")}
    assert best == {("hourglass", "", "yes"), ("hourglass", "max_epochs=1", "no")}


ERRORS = {
    "budget no shape meets": (
        {"budgets": [9216, 1_000_000]},
        "budgets: no shape of any family has 900k to 1.1M total parameters (budget 1M ± 10%; closest: "
        "hourglass embed_dim=128 mlp_dim=8 depth=1 with 18.4k); widen the grid or the tolerance, or drop the "
        "budget",
    ),
    "every shape refused": (
        {
            "families": {
                "hourglass": {"class_path": "HourglassMLP", "grid": {"embed_dim": [64], "mlp_dim": [64]}}
            }
        },
        "families.hourglass: HourglassMLP refuses every shape of the grid (HourglassMLP needs a narrow "
        "bottleneck, mlp_dim < embed_dim (d_h < d_z); got mlp_dim=64, embed_dim=64",
    ),
    "every shape refused for an option's first value": (
        {"options": {"model.init_args.noise_std": [-0.1, 0.2]}},
        "families.hourglass: every shape of the grid is refused with options model.init_args.noise_std=-0.1 "
        "(ImageRestoration: noise_std must be positive",
    ),
    "value of the wrong type": (
        {"families": {"hourglass": {"class_path": "HourglassMLP", "grid": {"depth": ["deep"]}}}},
        "sweep.yaml: families.hourglass.grid: depth: expected int, got 'deep' (HourglassMLP's depth)",
    ),
    "run argument nobody takes": ({"overrides": {"trainer.no_such_key": 1}}, "unrecognized arguments"),
    "unknown key": ({"budget": [1]}, "sweep.yaml: unknown key 'budget' (a sweep file has families, base"),
    "tolerance of the wrong type": (
        {"tolerance": "lots"},
        "sweep.yaml: tolerance: expected float, got 'lots'",
    ),
}


@pytest.mark.parametrize(("changes", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_mistakes_end_with_one_clear_line(tmp_path, mlplab, capsys, changes, message):
    path = write_sweep(tmp_path, **changes)
    assert mlplab("sweep", "--config", str(path), "--out", "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "out").exists()


FOLDER = "expected a folder (new or of an earlier sweep), got a file"
COMMAND_ERRORS = {
    "--out is a file": (["--out", "taken"], f"error: --out taken: {FOLDER}"),
    "--out under a file": (["--out", "taken/out"], f"error: --out taken/out: {FOLDER} (taken is a file)"),
    "no --config": (["--out", "o"], "error: --config: give the sweep file, e.g. --config configs/sweeps/"),
    "unknown engine": (
        ["--out", "o", "--engine", "mpi"],
        "error: argument --engine: invalid choice: 'mpi' (choose from 'sequential', 'ray', 'slurm')",
    ),
    "no workers": (["--out", "o", "--workers", "0"], "error: --workers: expected a positive integer, got 0"),
}


@pytest.mark.parametrize(("args", "message"), COMMAND_ERRORS.values(), ids=COMMAND_ERRORS.keys())
def test_mistakes_on_the_command_line_end_with_one_clear_line(tmp_path, mlplab, capsys, args, message):
    (tmp_path / "taken").write_text("a file of the user's\n")
    config = (
        [] if "no --config" in message or args == ["--out", "o"] else ["--config", str(write_sweep(tmp_path))]
    )
    assert mlplab("sweep", *config, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert (tmp_path / "taken").read_text() == "a file of the user's\n" and not (tmp_path / "o").exists()


def test_help_says_what_sweep_does(mlplab, capsys):
    assert mlplab("--help") == 0
    assert "mlplab sweep --config SWEEP.yaml --out DIR" in " ".join(capsys.readouterr().out.split())
    assert mlplab("sweep", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "usage: mlplab sweep" in text and "Pareto" in text and "{sequential,ray,slurm}" in text
    assert "Parameter budgets: numbers, 2e6, or k / M / G suffixes" in text  # the typed keys' docstrings
    assert "--slurm.partition" in text


def test_cli_py_runs_sweep(tmp_path):
    path = write_sweep(tmp_path)
    command = [
        sys.executable,
        str(REPO / "cli.py"),
        "sweep",
        "--config",
        str(path),
        "--out",
        "out",
        "--dry-run",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 runs (1 seed(s) each), 0 finished, 3 to run" in result.stdout
    assert "conventional   mlp_dim=72 depth=1" in result.stdout
    assert not (tmp_path / "out").exists()


def test_the_training_cli_imports_nothing_of_the_sweep():
    tree = ast.parse((REPO / "src" / "mlplab" / "cli.py").read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    ]
    assert imported and not [name for name in imported if name and name.startswith("mlplab.tools")]


def test_an_old_mlplab_script_says_how_to_run_sweep(capsys):
    from mlplab.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["sweep", "--help"])
    assert exited.value.code == 2
    assert "python -m mlplab sweep" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_sweep_runs_in_minutes(tmp_path, mlplab):
    path = REPO / "configs" / "sweeps" / "quickstart.yaml"
    assert mlplab("sweep", "--config", str(path), "--out", "out") == 0
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 13 and all(r["status"] == "ok" for r in rows)


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_its_ranks(tmp_path):
    import os
    import signal
    import time

    overrides = {"trainer.max_epochs": 1000, "trainer.devices": 2, "trainer.strategy": "ddp"}
    path = write_sweep(tmp_path, families={"hourglass": HOURGLASS_128}, budgets=[18432], overrides=overrides)
    command = [sys.executable, "-m", "mlplab", "sweep", "--config", str(path), "--out", "out"]
    sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    logs = []
    while time.monotonic() < deadline and not any("GLOBAL_RANK: 1" in log.read_text() for log in logs):
        time.sleep(1)
        logs = (
            list((tmp_path / "out" / "runs").glob("*/log.txt"))
            if (tmp_path / "out" / "runs").exists()
            else []
        )
    time.sleep(3)
    os.kill(sweep.pid, signal.SIGINT)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130 and err.strip().splitlines()[-1].startswith("interrupted: finished runs")
    (run,) = (tmp_path / "out" / "runs").iterdir()
    assert not (run / "result.json").exists()  # not recorded: the next invocation trains it
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "planned"
    ranks = subprocess.run(["pgrep", "-f", str(run / "run.yaml")], capture_output=True, text=True)
    assert ranks.stdout.strip() == ""  # no rank left behind


def test_a_run_is_announced_with_the_count_its_budget_applies_to():
    # with count: trainable, "[1/1] ... 28.2k parameters (budget 20k)" gave the total count of a run
    # that meets its budget in trainable parameters (a fixed W_in counts in total only)
    from types import SimpleNamespace

    from mlplab.tools.sweep.command import _Progress

    shape = "embed_dim=128 mlp_dim=46 depth=1"
    run = SimpleNamespace(run_id="a", family="hourglass", shape=shape, options="", seed=0, params_total=28160,
                          params_trainable=19968, budget=20000)  # fmt: skip
    for count, expected in (("trainable", "20k trainable parameters (budget 20k)"),
                            ("total", "28.2k parameters (budget 20k)")):  # fmt: skip
        lines = []
        _Progress(SimpleNamespace(spec=SimpleNamespace(count=count)), [run], lines.append).started(run)
        assert lines == [f"[1/1] hourglass embed_dim=128 mlp_dim=46 depth=1  seed 0: {expected}"]
