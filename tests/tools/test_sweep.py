"""``mlplab sweep``: meta-device counts, the budget filter, resuming, failures, outputs and errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters
from mlplab.tools import sweep
from mlplab.tools.sweep import count_on_meta, load_sweep, plan_sweep, run_sweep
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
# On the 8x8 digits (d_x = d_y = 64): hourglass d_z(128 + 2 L d_h), conventional 2*64*64 + 2 L 64 d_h.
HOURGLASS = {"class_path": "HourglassMLP", "grid": {"d_z": [64, 128], "d_h": [8], "depth": [1]}}
CONVENTIONAL = {"class_path": "ConventionalMLP", "grid": {"d_h": [72], "depth": [1]}}


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


# --------------------------------------------------------------------------------------- counting
COUNT_CASES = {
    "hourglass, fixed W_in": (
        [f"--config={QUICKSTART}", "--model.backbone.d_z=128", "--model.backbone.d_h=16",
         "--model.backbone.depth=2", "--model.backbone.fixed_input_projection=true"],
        (128 * (128 + 2 * 2 * 16), 128 * (64 + 2 * 2 * 16)),
    ),
    "conventional, switched from the hourglass recipe": (
        [f"--config={QUICKSTART}",
         sweep.backbone_argument(load_sweep(REPO / "configs/sweeps/quickstart.yaml").families[1],
                                 {"d_h": 300, "depth": 2})],
        (2 * 64 * 64 + 2 * 2 * 64 * 300,) * 2,
    ),
    "conventional on MNIST, super-resolution (d_z = d_y)": (
        [f"--config={REPO / 'configs/image/conventional_mnist_sr.yaml'}", "--model.backbone.depth=2"],
        (196 * 784 + 2 * 2 * 784 * 785 + 784 * 784,) * 2,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("args", "expected"), COUNT_CASES.values(), ids=COUNT_CASES.keys())
def test_meta_counts_equal_real_counts(args, expected):
    total, trainable, task = count_on_meta(args)
    assert all(p.is_meta for p in task.parameters())  # nothing was allocated
    real = MLPLabCLI(args=args, run=False)
    assert (total, trainable) == count_parameters(real.model.backbone) == expected


def test_budget_filter_keeps_the_shapes_within_the_tolerance(tmp_path):
    grid = {"d_z": [64, 128, 256], "d_h": [8, 16], "depth": [1, 2]}
    spec = load_sweep(
        write_sweep(
            tmp_path,
            families={"hourglass": {"class_path": "HourglassMLP", "grid": grid}},
            budgets=["10k", "40k"],
            tolerance=0.1,
            seeds=[0, 1],
            options={"model.init_args.optimizer.init_args.lr": [0.001, 0.01]},
        )
    )
    plan = plan_sweep(spec, tmp_path / "out")
    expected = {}
    for d_z in grid["d_z"]:
        for d_h in grid["d_h"]:
            for depth in grid["depth"]:
                params = d_z * (128 + 2 * depth * d_h)
                for budget in (10_000, 40_000):
                    if abs(params - budget) <= 0.1 * budget:
                        expected[f"d_z={d_z} d_h={d_h} depth={depth}"] = budget
    kept = {c.shape_text: c.budget for c in plan.candidates if c.budget is not None}
    assert kept == expected and len(kept) == 6  # of the 12 shapes
    assert len(plan.runs) == len(kept) * 2 * 2  # x 2 learning rates x 2 seeds
    assert len({run["run_id"] for run in plan.runs}) == len(plan.runs)
    assert plan.metric == "val/psnr" and plan.mode == "max"  # the task's own monitor
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_fit_solves_the_width_for_each_budget(tmp_path):
    spec = load_sweep(
        write_sweep(
            tmp_path,
            families={
                "hourglass": {
                    "class_path": "HourglassMLP",
                    "grid": {"d_z": [64, 256], "depth": [1, 2]},  # d_z = 64 refuses the recipe's d_h = 128,
                    "fit": "d_h",  # where the search starts: it starts again from 1
                },
                # widths up to 64 are refused (d_h > d_z = 64): the search starts at the default 1024
                "conventional": {"class_path": "ConventionalMLP", "grid": {"depth": [1]}, "fit": "d_h"},
            },
            budgets=[16_000, 50_000, 100_000],
            tolerance=0.02,
        )
    )
    plan = plan_sweep(spec, tmp_path / "out")
    kept = {(c.family.name, c.shape_text): c.params_total for c in plan.candidates if c.budget}
    assert kept == {
        ("hourglass", "d_z=64 d_h=61 depth=1"): 16_000,
        ("hourglass", "d_z=64 d_h=30 depth=2"): 15_872,
        ("hourglass", "d_z=256 d_h=34 depth=1"): 50_176,
        ("hourglass", "d_z=256 d_h=17 depth=2"): 50_176,
        ("hourglass", "d_z=256 d_h=131 depth=1"): 99_840,
        ("hourglass", "d_z=256 d_h=66 depth=2"): 100_352,
        ("conventional", "d_h=327 depth=1"): 50_048,
        ("conventional", "d_h=717 depth=1"): 99_968,
    }


# ------------------------------------------------------------------------------- running and resuming
def test_sweep_writes_its_outputs_and_resumes_after_an_interruption(tmp_path, monkeypatch, cli, capsys):
    path = write_sweep(tmp_path)
    spec = load_sweep(path)
    real_train_and_test = sweep.train_and_test
    started: list[str] = []

    def interrupted_in_the_second_run(cli, run, row):
        started.append(run["run_id"])
        if len(started) == 2:
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # a partial run directory exists ...
            raise KeyboardInterrupt  # ... when Ctrl-C arrives
        real_train_and_test(cli, run, row)

    monkeypatch.setattr(sweep, "train_and_test", interrupted_in_the_second_run)
    assert cli("sweep", "--config", str(path), "--out", "out") == 130
    assert (
        capsys.readouterr().err.strip().splitlines()[-1].startswith("interrupted: finished runs are in out")
    )
    assert len(read_csv(tmp_path / "out" / "results.csv")) == 1  # what finished is already recorded
    first = tmp_path / "out" / "runs" / started[0] / "result.json"
    first_record = first.read_bytes()

    resumed: list[str] = []

    def recording(cli, run, row):
        resumed.append(run["run_id"])
        real_train_and_test(cli, run, row)

    monkeypatch.setattr(sweep, "train_and_test", recording)
    rows = run_sweep(spec, "out", log=quiet)
    assert started[0] not in resumed and started[1] in resumed and len(resumed) == 2
    assert first.read_bytes() == first_record  # read back, not repeated
    assert run_sweep(spec, "out", log=quiet) == rows and len(resumed) == 2  # nothing left to do

    table = read_csv(tmp_path / "out" / "results.csv")
    assert len(table) == 3 and {r["status"] for r in table} == {"ok"}
    assert {(r["family"], r["shape"], int(r["params_total"]), int(r["budget"])) for r in table} == {
        ("hourglass", "d_z=64 d_h=8 depth=1", 9216, 9216),
        ("hourglass", "d_z=128 d_h=8 depth=1", 18432, 18432),
        ("conventional", "d_h=72 depth=1", 17408, 18432),
    }
    for row in table:
        run_dir = Path(row["run_dir"])
        assert float(row["best_val"]) > 0 and float(row["test"]) > 0 and float(row["wall_time_s"]) > 0
        assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
        hparams = yaml.safe_load((run_dir / "hparams.yaml").read_text().replace("!!python/tuple", ""))
        assert hparams["params_total"] == int(row["params_total"])  # the meta count is the real one
    interrupted = next(r for r in table if r["run_id"] == started[1])
    assert interrupted["run_dir"].endswith("version_1")  # started again beside the partial version_0

    assert (tmp_path / "out" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = read_csv(tmp_path / "out" / "best.csv")
    assert {(r["budget"], r["family"]) for r in best} == {
        ("9216", "hourglass"), ("18432", "hourglass"), ("18432", "conventional")
    }  # fmt: skip
    events = EventAccumulator(str(tmp_path / "out" / "tensorboard"))
    events.Reload()
    assert "sweep/pareto" in events.Tags()["images"]


FLAKY_FAMILY = '''
from mlplab.models import HourglassMLP


class FlakyMLP(HourglassMLP):
    """An Hourglass MLP that breaks in training when d_h is 16."""

    def forward(self, x):
        if self.d_h == 16:
            raise RuntimeError("flaky: this shape breaks in training")
        return super().forward(x)
'''


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, cli, capsys):
    (tmp_path / "flaky.py").write_text(FLAKY_FAMILY)
    family = {"class_path": "flaky.FlakyMLP", "grid": {"d_z": [64], "d_h": [8, 16], "depth": [1]}}
    path = write_sweep(tmp_path, families={"flaky": family}, budgets=[9216, 10240])
    assert cli("sweep", "--config", str(path), "--out", "out") == 0
    rows = {r["shape"]: r for r in read_csv(tmp_path / "out" / "results.csv")}
    failed, fine = rows["d_z=64 d_h=16 depth=1"], rows["d_z=64 d_h=8 depth=1"]
    assert (
        failed["status"] == "failed"
        and failed["error"] == "RuntimeError: flaky: this shape breaks in training"
    )
    assert "Traceback" in (tmp_path / "out" / "runs" / failed["run_id"] / "error.txt").read_text()
    assert fine["status"] == "ok" and float(fine["best_val"]) > 0
    assert "1 failed" in capsys.readouterr().out

    record = tmp_path / "out" / "runs" / failed["run_id"] / "result.json"
    before = record.read_text()
    assert cli("sweep", "--config", str(path), "--out", "out") == 0
    assert record.read_text() == before  # a failed run is read back like a finished one ...
    assert cli("sweep", "--config", str(path), "--out", "out", "--retry-failed") == 0
    again = json.loads(record.read_text())
    assert again["status"] == "failed" and again["run_dir"].endswith("version_1")  # ... unless retried


# ------------------------------------------------------------------------------------------ errors
ERRORS = {
    "grid argument the family does not take": (
        {"families": {"hourglass": {"class_path": "HourglassMLP", "grid": {"dz": [64]}}}},
        "families.hourglass.grid: HourglassMLP takes no argument 'dz' (it takes d_z, d_h, depth",
    ),
    "budget no shape meets": (
        {"budgets": [9216, 1_000_000]},
        "budgets: no shape of any family has 900k to 1.1M total parameters (budget 1M ± 10%; closest: "
        "hourglass d_z=128 d_h=8 depth=1 with 18.4k); widen the grid or the tolerance, or drop the budget",
    ),
    "unknown key": ({"budget": [1]}, "sweep.yaml: unknown key 'budget' (a sweep file has base, families"),
    "missing recipe": ({"base": "nowhere.yaml"}, "sweep.yaml: base: recipe not found:"),
    "bad budget": ({"budgets": ["lots"]}, "budgets: expected a positive parameter count such as 2000000"),
    "unknown family class": (
        {"families": {"x": {"class_path": "NoSuchMLP", "grid": {"d": [1]}}}},
        "families.x.class_path: unknown class 'NoSuchMLP'",
    ),
    "every shape refused": (
        {"families": {"hourglass": {"class_path": "HourglassMLP", "grid": {"d_z": [64], "d_h": [64]}}}},
        "families.hourglass: HourglassMLP refuses every shape of the grid (HourglassMLP needs a narrow "
        "bottleneck, d_h < d_z; got d_h=64, d_z=64",
    ),
    "value of the wrong type": (
        {"families": {"hourglass": {"class_path": "HourglassMLP", "grid": {"depth": ["deep"]}}}},
        "families.hourglass: model.backbone: ",
    ),
    "fit argument the family does not take": (
        {"families": {"hourglass": {"class_path": "HourglassMLP", "grid": {"d_z": [64]}, "fit": "width"}}},
        "families.hourglass.fit: HourglassMLP takes no argument 'width'",
    ),
}


@pytest.mark.parametrize(("changes", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_mistakes_end_with_one_clear_line(tmp_path, cli, capsys, changes, message):
    path = write_sweep(tmp_path, **changes)
    assert cli("sweep", "--config", str(path), "--out", "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err[-1]
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "out").exists()


def test_help_says_what_sweep_does(cli, capsys):
    assert cli("--help") == 0
    assert "mlplab sweep --config SWEEP.yaml --out DIR" in " ".join(capsys.readouterr().out.split())
    assert cli("sweep", "--help") == 0
    text = capsys.readouterr().out
    assert "usage: mlplab sweep" in text and "Pareto" in text and "--engine {sequential,ray}" in text


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
    assert "conventional   d_h=72 depth=1" in result.stdout


def test_every_sweep_config_loads():
    files = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))
    assert {f.name for f in files} >= {"quickstart.yaml", "hourglass_mnist_denoise.yaml"}
    for file in files:
        spec = load_sweep(file)
        assert spec.families and spec.budgets


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in sorted((REPO / "configs" / "sweeps").glob("*.yaml"))])
def test_every_sweep_config_meets_its_budgets(name, tmp_path):
    plan = plan_sweep(load_sweep(REPO / "configs" / "sweeps" / name), tmp_path)
    assert {run["budget"] for run in plan.runs} == set(plan.spec.budgets)


@pytest.mark.slow
def test_quickstart_sweep_runs_in_minutes(tmp_path, cli):
    path = REPO / "configs" / "sweeps" / "quickstart.yaml"
    assert cli("sweep", "--config", str(path), "--out", "out") == 0
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert rows and all(r["status"] == "ok" for r in rows)


@pytest.mark.slow
def test_ray_engine_runs_the_same_sweep(tmp_path):
    pytest.importorskip("ray.tune")
    spec = load_sweep(write_sweep(tmp_path))
    rows = run_sweep(spec, tmp_path / "out", engine="ray", workers=2, log=quiet)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    assert len(read_csv(tmp_path / "out" / "results.csv")) == 3
    assert run_sweep(spec, tmp_path / "out", engine="ray", log=quiet) == rows  # resumed: nothing to run
