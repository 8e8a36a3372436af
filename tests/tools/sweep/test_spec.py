"""The sweep file: typed keys parsed by jsonargparse, checked in one line, overridable on the command line."""

from __future__ import annotations

import pytest

from mlplab.errors import ConfigError
from mlplab.tools.sweep.command import build_parser, split_arguments
from mlplab.tools.sweep.spec import load_sweep, parse_count
from tests.conftest import REPO
from tests.tools.sweep.conftest import QUICKSTART, write_sweep


def test_every_shipped_sweep_file_loads():
    files = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))
    assert {f.name for f in files} >= {"quickstart.yaml", "hourglass_mnist_denoise.yaml"}
    for file in files:
        spec = load_sweep(file)
        assert spec.families and spec.budgets and all(f.base for f in spec.families)


def test_a_sweep_file_reads_into_a_checked_spec(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mine.yaml").write_text(QUICKSTART.read_text())
    path = write_sweep(
        tmp_path,
        base="recipes/mine.yaml",  # relative to the sweep file
        families={"hourglass": {"class_path": "HourglassMLP", "grid": {"embed_dim": 64, "depth": [1, 2]},
                                "fit": "mlp_dim", "init_args": {"output_activation": "none"}}},
        budgets=["10k", 2e4, 30000],
        repeats=2,
        seeds=None,
        options={"model.init_args.optimizer.init_args.lr": [0.001, 0.01]},
    )  # fmt: skip
    spec = load_sweep(path, ["--trainer.max_epochs=2"])
    (family,) = spec.families
    assert family.grid == {"embed_dim": [64], "depth": [1, 2]} and family.fit == "mlp_dim"
    assert family.base == [(tmp_path / "recipes" / "mine.yaml").resolve()]
    assert spec.budgets == [10_000, 20_000, 30_000] and spec.seeds == [0, 1] and spec.count == "total"
    assert spec.overrides[-1] == "--trainer.max_epochs=2"  # the command line after the file's overrides
    assert "budgets:" in spec.resolved and "repeats: 2" in spec.resolved


@pytest.mark.parametrize(
    ("value", "count"), [(2_000_000, 2_000_000), ("2M", 2_000_000), ("500k", 500_000), (2e6, 2_000_000)]
)
def test_parse_count(value, count):
    assert parse_count(value, "budgets") == count


SPEC_ERRORS = {
    "unknown key": ({"budget": [1]}, "sweep.yaml: unknown key 'budget' (a sweep file has families, base,"),
    "unknown family key": (
        {"families": {"hg": {"class_path": "HourglassMLP", "grid": {"embed_dim": [64]}, "fits": "mlp_dim"}}},
        "sweep.yaml: families.hg: unknown key 'fits' (a family has class_path, grid, fit, init_args, base)",
    ),
    "family without a grid": (
        {"families": {"hg": {"class_path": "HourglassMLP"}}},
        "families.hg: expected a mapping with class_path and grid",
    ),
    "tolerance of the wrong type": (
        {"tolerance": "lots"},
        "sweep.yaml: tolerance: expected float, got 'lots'",
    ),
    "tolerance out of range": ({"tolerance": 2}, "tolerance: expected a fraction between 0 and 1"),
    "count": ({"count": "all"}, "sweep.yaml: count: expected 'total' or 'trainable', got 'all'"),
    "seeds and repeats": ({"repeats": 2}, "sweep.yaml: give seeds or repeats, not both"),
    "negative seed": (
        {"seeds": [0, -1]},
        "sweep.yaml: seeds: expected integers from 0 to 4294967295, got -1",
    ),
    "missing recipe": ({"base": "nowhere.yaml"}, "sweep.yaml: base: recipe not found:"),
    "bad budget": ({"budgets": ["lots"]}, "budgets: expected a positive parameter count such as 2000000"),
    "unknown family class": (
        {"families": {"x": {"class_path": "NoSuchMLP", "grid": {"d": [1]}}}},
        "families.x.class_path: unknown class 'NoSuchMLP'",
    ),
    "grid argument the family does not take": (
        {"families": {"hourglass": {"class_path": "HourglassMLP", "grid": {"dz": [64]}}}},
        "families.hourglass.grid: HourglassMLP takes no argument 'dz' (it takes embed_dim, mlp_dim, depth",
    ),
    "metric whose direction is unknown": (
        {"metric": "val/widget"},
        "sweep.yaml: mode: give mode: max or mode: min for metric val/widget",
    ),
    "fit argument the family does not take": (
        {
            "families": {
                "hourglass": {"class_path": "HourglassMLP", "grid": {"embed_dim": [64]}, "fit": "width"}
            }
        },
        "families.hourglass.fit: HourglassMLP takes no argument 'width'",
    ),
}


def _hourglass(grid=None, **entry):
    return {"families": {"hg": {"class_path": "HourglassMLP", "grid": grid or {"embed_dim": [64]}, **entry}}}


# a value of the wrong type used to end, after counting, in jsonargparse's message about the whole
# backbone ("model.backbone: Expected a <class 'int'>. Got value: two. Got value: Namespace(...)")
SPEC_ERRORS.update(
    {
        "grid value of the wrong type": (
            _hourglass({"embed_dim": [64], "depth": [1, "two"]}),
            "sweep.yaml: families.hg.grid: depth: expected int, got 'two' (HourglassMLP's depth)",
        ),
        "grid value with a fraction": (
            _hourglass({"embed_dim": [1.5]}),
            "sweep.yaml: families.hg.grid: embed_dim: expected int, got 1.5 (HourglassMLP's embed_dim)",
        ),
        "init_args value of the wrong type": (
            _hourglass(init_args={"fixed_input_projection": "maybe"}),
            "sweep.yaml: families.hg.init_args: fixed_input_projection: expected bool, got 'maybe' "
            "(HourglassMLP's fixed_input_projection)",
        ),
        "init_args value outside the choices": (
            _hourglass(init_args={"output_activation": "identity"}),
            "sweep.yaml: families.hg.init_args: output_activation: expected one of 'sigmoid', 'none', got "
            "'identity' (HourglassMLP's output_activation)",
        ),
    }
)


def test_grid_values_the_runs_take_are_not_refused(tmp_path):
    # numbers as strings, ints for floats, null for an optional int: the run's parser takes them
    grid = {"embed_dim": ["64"], "projection_seed": [None, 3]}
    spec = load_sweep(write_sweep(tmp_path, **_hourglass(grid)))
    assert spec.families[0].grid == grid


@pytest.mark.parametrize(("changes", "message"), SPEC_ERRORS.values(), ids=SPEC_ERRORS.keys())
def test_mistakes_in_the_file_raise_one_line(tmp_path, changes, message):
    with pytest.raises(ConfigError) as raised:
        load_sweep(write_sweep(tmp_path, **changes))
    assert message in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


def test_the_command_line_splits_into_the_sweeps_own_arguments_and_the_runs():
    own, runs = split_arguments(
        build_parser(),
        ["--config", "s.yaml", "--out=o", "--trainer.max_epochs", "3", "--budgets=[1M]", "--dry-run",
         "--data.source_split=test", "--slurm.partition", "gpu", "--trainer.devices", "2"],
    )  # fmt: skip
    assert own == ["--config", "s.yaml", "--out=o", "--budgets=[1M]", "--dry-run", "--slurm.partition", "gpu"]
    assert runs == ["--trainer.max_epochs", "3", "--data.source_split=test", "--trainer.devices", "2"]


@pytest.mark.parametrize(
    ("metric", "mode"),
    [("val/bpc", "min"), ("val/ppl", "min"), ("val/mae", "min"), ("val/rmse", "min"), ("val/aux_loss", "min"),
     ("val/acc", "max"), ("val/ssim", "max"), ("val/psnr_input", "max")],
)  # fmt: skip
def test_a_metric_without_mode_is_judged_in_its_direction(tmp_path, metric, mode):
    # only "loss" in the name meant min: a sweep by val/bpc, val/ppl or val/mae kept each run's worst
    # epoch as its best checkpoint and chose the worst shape per budget
    assert load_sweep(write_sweep(tmp_path, metric=metric)).mode == mode
    assert load_sweep(write_sweep(tmp_path, metric=metric, mode="max")).mode == "max"  # given: used
