"""Pareto frontiers: seed averages, the frontier in both directions, the best shape per budget, the figure."""

from __future__ import annotations

import math

import pytest

from mlplab.tools import pareto
from mlplab.tools.sweep.spec import parse_count


def row(family, shape, params, best_val, seed=0, budget=None, status="ok", test=None):
    return {
        "family": family, "shape": shape, "options": "", "params_total": params, "params_trainable": params,
        "budget": budget or params, "seed": seed, "best_val": best_val,
        "test": best_val - 0.1 if test is None else test, "status": status,
    }  # fmt: skip


def test_configurations_average_the_seeds_of_finished_runs():
    rows = [row("hg", "a", 100, 20.0, seed=0), row("hg", "a", 100, 22.0, seed=1),
            row("hg", "a", 100, math.nan, seed=2, status="failed")]  # fmt: skip
    (config,) = pareto.configurations(rows)
    assert config["seeds"] == 2 and config["best_val"] == 21.0 and config["test"] == pytest.approx(20.9)


def test_configurations_give_the_spread_over_seeds_and_none_for_one_seed():
    # only the seed mean was reported: two shapes with equal means looked equally sure
    rows = [
        row("hg", "a", 100, value, seed=seed, test=value + 1) for seed, value in enumerate((20.0, 22.0, 24.0))
    ]
    rows.append(row("hg", "b", 200, 30.0))
    a, b = pareto.configurations(rows)
    assert (a["best_val"], a["best_val_std"], a["best_val_min"], a["best_val_max"]) == (22.0, 2.0, 20.0, 24.0)
    assert (a["test"], a["test_std"], a["test_min"], a["test_max"]) == (23.0, 2.0, 21.0, 25.0)
    spread = [b[f"{key}_{part}"] for key in ("best_val", "test") for part in ("std", "min", "max")]
    assert b["seeds"] == 1 and all(math.isnan(value) for value in spread)  # one seed: no spread, not 0
    table = pareto.markdown_table([a, b], "val/psnr", "test/psnr")
    assert "| 100 | hg | a | - | 100 | 3 | 22.000 ± 2.000 | 23.000 ± 2.000 |" in table
    assert "| 200 | hg | b | - | 200 | 1 | 30.000 | 29.900 |" in table


@pytest.mark.parametrize("mode", ["max", "min"])
def test_frontier_keeps_what_nothing_smaller_beats(mode):
    sign = 1 if mode == "max" else -1
    values = {"a": (100, 10.0), "b": (150, 9.0), "c": (200, 12.0), "d": (200, 11.0), "e": (300, 12.0),
              "f": (400, 13.0)}  # fmt: skip
    configs = pareto.configurations([row("hg", k, p, sign * v) for k, (p, v) in values.items()])
    assert [c["shape"] for c in pareto.frontier(configs, mode)] == ["a", "c", "f"]


def test_best_per_budget_chooses_by_validation_and_reports_test():
    rows = [row("hg", "a", 100, 20.0, budget=100, test=25.0),
            row("hg", "b", 105, 21.0, budget=100, test=19.0),
            row("cv", "c", 98, 19.0, budget=100), row("hg", "d", 200, 23.0, budget=200)]  # fmt: skip
    best = pareto.best_per_budget(pareto.configurations(rows), "max")
    assert [(c["budget"], c["family"], c["shape"], c["test"]) for c in best] == [
        (100, "cv", "c", 18.9), (100, "hg", "b", 19.0), (200, "hg", "d", 22.9)
    ]  # fmt: skip
    table = pareto.markdown_table(best, "val/psnr", "test/psnr")
    assert "| 100 | hg | b | - | 105 | 1 | 21.000 | 19.000 |" in table


def test_the_figure_has_a_frontier_and_points_per_family(tmp_path):
    rows = [row("hg", "a", 1e6, 20.0), row("hg", "b", 2e6, 21.0), row("hg", "c", 2e6, 20.5),
            row("cv", "d", 2.5e6, 20.2), row("cv", "e", 4e6, 20.1)]  # fmt: skip
    figure = pareto.plot_frontiers(rows, "val/psnr", "max", budgets=[2_000_000], tolerance=0.1)
    axes = figure.axes[0]
    lines = {
        line.get_label(): list(line.get_xdata())
        for line in axes.get_lines()
        if "frontier" in line.get_label()
    }
    assert lines == {"cv (frontier)": [2.5e6], "hg (frontier)": [1e6, 2e6]}
    assert sum(len(c.get_offsets()) for c in axes.collections if hasattr(c, "get_offsets")) >= 5
    figure.savefig(tmp_path / "pareto.png")


@pytest.mark.parametrize(("value", "count"), [(2000000, 2_000_000), ("2e6", 2_000_000), ("2.5M", 2_500_000),
                                               ("500k", 500_000), (1.5e3, 1500)])  # fmt: skip
def test_parse_count(value, count):
    assert parse_count(value, "budgets") == count


@pytest.mark.parametrize("value", ["lots", -5, 0, True, "2X"])
def test_parse_count_refuses(value):
    with pytest.raises(ValueError, match="budgets: expected a positive parameter count"):
        parse_count(value, "budgets")


def test_format_count():
    assert [pareto.format_count(v) for v in (950, 98_304, 1_950_000, 10_000_000)] == [
        "950",
        "98.3k",
        "1.95M",
        "10M",
    ]
