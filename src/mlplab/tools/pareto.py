"""Pareto frontiers of a sweep: the best metric a family reaches for its parameter count.

A sweep's finished runs are grouped into *configurations* (one family, settings, shape and set of
options; the seeds of a configuration are averaged). Runs of earlier versions of a sweep (e.g. before
an override changed) carry ``settings``, a short text saying how they differ (``max_epochs=3``); they
form curves of their own, labelled ``family [settings]`` and drawn dashed. A configuration is on its
curve's frontier when no configuration of the same curve with as many or fewer parameters scores
better. The frontier
figure (metric against parameters, one line per family, a point per run) is the main figure of the
Hourglass paper (Chen et al., 2025, arXiv 2510.01796).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files and TensorBoard only; never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean (``nan`` for no values)."""
    return sum(values) / len(values) if values else math.nan


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """``(standard deviation, min, max)`` of ``values``: the sample deviation (n - 1), ``nan`` each below two.

    One value has no spread: every part is ``nan`` (an empty cell in a CSV file), not 0.
    """
    if len(values) < 2:
        return math.nan, math.nan, math.nan
    return statistics.stdev(values), min(values), max(values)


def better(a: float, b: float, mode: str) -> bool:
    """Whether metric value ``a`` beats ``b`` (``mode``: ``max`` or ``min``); ``nan`` never wins."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if mode == "max" else a < b


def configurations(rows: Iterable[dict[str, Any]], count: str = "params_total") -> list[dict[str, Any]]:
    """Average the finished runs (``status == "ok"``) of each (family, shape, options) over their seeds.

    Args:
        rows: Rows of ``results.csv`` (dicts with ``family``, ``shape``, ``options``, ``budget``,
            ``params_total``, ``params_trainable``, ``best_val``, ``test``, ``status``, and optionally
            ``settings``, ``current`` and ``group``: rows of different groups are never averaged,
            as ``mlplab compare`` keeps apart runs whose settings other than the seed differ).
        count: Which parameter count is the x axis: ``params_total`` or ``params_trainable``.

    Returns:
        One dict per configuration: the identifying fields, ``curve`` (the family and its settings),
        ``params`` (by ``count``), ``seeds`` (number of runs), ``best_val`` and ``test`` (means over
        the seeds), their spread over the seeds ``best_val_std``, ``best_val_min``, ``best_val_max``,
        ``test_std``, ``test_min``, ``test_max`` (see :func:`spread`: ``nan`` for a single seed),
        ``current`` (whether a run of it belongs to the current sweep).
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("status") == "ok":
            key = (row["family"], row.get("settings") or "", row["shape"], row.get("options", ""),
                   row.get("group") or "")  # fmt: skip
            groups[key].append(row)
    result = []
    for (family, settings, shape, options, _), runs in groups.items():
        first = runs[0]
        values = {
            "best_val": [float(r["best_val"]) for r in runs],
            "test": [float(r["test"]) for r in runs if r.get("test") not in (None, "")],
        }
        spreads = {}
        for key, numbers in values.items():
            spreads[f"{key}_std"], spreads[f"{key}_min"], spreads[f"{key}_max"] = spread(numbers)
        result.append(
            {
                "family": family,
                "settings": settings,
                "curve": curve_name(family, settings),
                "current": any(r.get("current", "yes") in ("yes", True) for r in runs),
                "shape": shape,
                "options": options,
                "budget": int(first["budget"]),
                "params": int(first[count]),
                "params_total": int(first["params_total"]),
                "params_trainable": int(first["params_trainable"]),
                "seeds": len(runs),
                "best_val": mean(values["best_val"]),
                "test": mean(values["test"]),
                **spreads,
            }
        )
    return sorted(result, key=lambda c: (c["family"], c["settings"], c["params"], c["shape"], c["options"]))


def curve_name(family: str, settings: str = "") -> str:
    """The legend entry of a curve: ``hourglass``, or ``hourglass [max_epochs=3]`` (earlier settings)."""
    return f"{family} [{settings}]" if settings else family


def frontier(configs: Sequence[dict[str, Any]], mode: str, key: str = "best_val") -> list[dict[str, Any]]:
    """The configurations no other one beats with as many or fewer parameters, by ``params``.

    Args:
        configs: Configurations of one family (see :func:`configurations`).
        mode: ``max`` or ``min``: which direction of ``key`` is better.
        key: The metric field to compare.
    """
    by_count: dict[int, dict[str, Any]] = {}
    for config in configs:  # of configurations with equal counts only the best can be on the frontier
        seen = by_count.get(config["params"])
        if seen is None or better(config[key], seen[key], mode):
            by_count[config["params"]] = config
    points: list[dict[str, Any]] = []
    best = math.nan
    for params in sorted(by_count):
        if better(by_count[params][key], best, mode):
            points.append(by_count[params])
            best = by_count[params][key]
    return points


def best_per_budget(configs: Sequence[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """For each (budget, family, settings): the configuration with the best mean validation metric."""
    chosen: dict[tuple[int, str, str], dict[str, Any]] = {}
    for config in configs:
        key = (config["budget"], config["family"], config.get("settings", ""))
        if key not in chosen or better(config["best_val"], chosen[key]["best_val"], mode):
            chosen[key] = config
    return [chosen[key] for key in sorted(chosen)]


def plot_frontiers(
    rows: Sequence[dict[str, Any]],
    metric: str,
    mode: str,
    budgets: Sequence[int] = (),
    tolerance: float = 0.0,
    count: str = "params_total",
    title: str | None = None,
) -> Figure:
    """Metric against parameters: every finished run as a point, one frontier line per curve.

    A curve is a family with its settings (see :func:`curve_name`); curves of earlier settings are
    dashed. The frontier is computed on the seed-averaged validation metric (the quantity the sweep
    selects by). Budgets are drawn as shaded bands of ± ``tolerance``.

    Args:
        rows: Rows of ``results.csv``.
        metric: Name of the validation metric, for the axis label.
        mode: ``max`` or ``min``.
        budgets: Parameter budgets to mark.
        tolerance: Relative half-width of each budget band.
        count: ``params_total`` or ``params_trainable`` on the x axis.
        title: Figure title.
    """
    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for budget in budgets:
        axes.axvspan(budget * (1 - tolerance), budget * (1 + tolerance), color="0.92", zorder=0)
        axes.axvline(budget, color="0.7", lw=0.8, ls=":", zorder=1)
    configs = configurations(rows, count)
    finished = [r for r in rows if r.get("status") == "ok"]
    families = sorted({r["family"] for r in finished})
    curves = sorted({(r["family"], r.get("settings") or "") for r in finished})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for family, settings in curves:
        colour = colours[families.index(family) % len(colours)]
        runs = [r for r in finished if r["family"] == family and (r.get("settings") or "") == settings]
        axes.scatter(
            [int(r[count]) for r in runs],
            [float(r["best_val"]) for r in runs],
            s=14,
            alpha=0.35,
            color=colour,
            zorder=2,
        )
        line = frontier([c for c in configs if c["curve"] == curve_name(family, settings)], mode)
        axes.plot(
            [c["params"] for c in line],
            [c["best_val"] for c in line],
            "o--" if settings else "o-",
            color=colour,
            lw=1.2 if settings else 1.8,
            ms=4 if settings else 5,
            alpha=0.6 if settings else 1.0,
            label=f"{curve_name(family, settings)} (frontier)",
            zorder=3,
        )
    if curves:
        axes.set_xscale("log")
        if budgets:
            axes.set_xticks(list(budgets))  # label the budgets, not the decades
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_count(value)))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.legend(loc="lower right" if mode == "max" else "upper right", fontsize=9)
    axes.set_xlabel("parameters" + (" (trainable)" if count == "params_trainable" else ""))
    axes.set_ylabel(f"best {metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    axes.grid(True, which="both", alpha=0.25)
    axes.set_title(title or f"{metric} against parameters", fontsize=10)
    figure.tight_layout()
    return figure


def with_spread(value: float, std: float | None) -> str:
    """``21.000 ± 1.414``: a seed mean and its standard deviation (the mean alone when there is none)."""
    return f"{value:.3f}" if std is None or math.isnan(std) else f"{value:.3f} ± {std:.3f}"


def markdown_table(configs: Sequence[dict[str, Any]], metric: str, test_metric: str | None) -> str:
    """The per-budget best configurations as a markdown table (budget, family, shape, params, metrics).

    The metrics are seed means ± their standard deviation over the seeds (the mean alone for one seed).
    """
    test_header = test_metric or "test"
    lines = [
        f"| budget | family | shape | options | params | seeds | {metric} | {test_header} |",
        "|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for c in configs:
        lines.append(
            f"| {format_count(c['budget'])} | {c.get('curve', c['family'])} | {c['shape']} | "
            f"{c['options'] or '-'} | "
            f"{format_count(c['params'])} | {c['seeds']} | "
            f"{with_spread(c['best_val'], c.get('best_val_std'))} | "
            f"{with_spread(c['test'], c.get('test_std'))} |"
        )
    return "\n".join(lines)


def format_count(value: float) -> str:
    """A parameter count in short form: ``1.95M``, ``98.3k``."""
    for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return str(int(value))
