"""The outputs of a sweep: ``results.csv``, ``best.csv``, ``pareto.png`` and TensorBoard, with history.

A sweep's folder keeps every run it ever finished: the outputs are written from every
``OUT/runs/*/result.json``, not only from the runs of the sweep as it is now planned. Runs of the
current plan are marked ``current``; an earlier run whose settings differ from the current ones (an
override changed, a recipe was edited) carries ``settings``, a short text saying how
(``max_epochs=3``), and forms a curve of its own in the figure and rows of its own in ``best.csv``.
Runs judged by another metric than the current one stay in ``results.csv`` only.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mlplab.tools import pareto
from mlplab.tools.sweep.plan import Plan, settings_difference, settings_of, varying_keys
from mlplab.tools.sweep.record import RESULT_FIELDS, RESULT_FILE, RUN_CONFIG, RunRecord, read_result

#: Columns of best.csv.
BEST_FIELDS = [
    "budget", "family", "settings", "current", "shape", "options", "params_total", "params_trainable",
    "seeds", "best_val", "best_val_std", "best_val_min", "best_val_max", "test", "test_std", "test_min",
    "test_max",
]  # fmt: skip


def say(line: str) -> None:
    """Print a progress line at once (sweeps often write to a log file)."""
    print(line, flush=True)


def collect(plan: Plan) -> list[RunRecord]:
    """Every finished run in the sweep's folder, current ones marked, earlier settings described."""
    planned = {run.run_id: run for run in plan.runs}
    records = []
    for path in sorted((plan.out / "runs").glob(f"*/{RESULT_FILE}")):
        record = read_result(path.parent)
        if record is not None:
            record.root = str(path.parent)  # where it is now (a folder may have moved; old records lack it)
            run = planned.get(record.run_id)
            record.current = run is not None
            if run is not None:  # the budget it has now (budgets, tolerance or count may have changed)
                record.budget = run.budget
            records.append(record)
    _describe_settings(plan, records)
    return sorted(
        records,
        key=lambda r: (not r.current, r.family, r.settings, r.params_total, r.shape, r.options, r.seed),
    )


def _describe_settings(plan: Plan, records: list[RunRecord]) -> None:
    """Set ``settings`` of the earlier runs: how their config differs from the family's current one."""
    current_series = {run.series_key for run in plan.runs}
    families = {family.name: family for family in plan.spec.families}
    reference = {run.family: run.config for run in reversed(plan.runs)}  # one current config per family
    series: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        if record.series_key not in current_series:
            series.setdefault((record.family, record.series_key), []).append(record)
    any_reference = next(iter(reference.values()), None)
    texts: dict[tuple[str, str], str] = {}
    for (family, series_key), members in series.items():
        config = _read_config(members[0])
        if family in reference and config is not None:
            varying = varying_keys(families[family], plan.spec.options)
            text = settings_difference(settings_of(config, varying), settings_of(reference[family], varying))
        elif any_reference is not None and config is not None:  # a family no longer in the sweep
            varying = ["model.backbone", *plan.spec.options, "seed_everything"]
            text = settings_difference(settings_of(config, varying), settings_of(any_reference, varying))
        else:
            text = "earlier settings"
        texts[(family, series_key)] = "earlier settings" if text == "same settings" else text
    for (family, series_key), text in texts.items():
        if sum(1 for (other, _), same in texts.items() if other == family and same == text) > 1:
            text += f" #{series_key[:6]}"  # the text does not tell the series apart: they stay apart
        for record in series[(family, series_key)]:
            record.settings = text


def _read_config(record: RunRecord) -> dict[str, Any] | None:
    try:
        config = yaml.safe_load((record.folder / RUN_CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def write_results(out: Path, records: list[RunRecord]) -> None:
    """Write ``results.csv``: one row per finished run (through a temporary file and a rename)."""
    if not records and not (out / "results.csv").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / "results.csv.tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, RESULT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({key: _cell(value) for key, value in record.row().items()})
    os.replace(temporary, out / "results.csv")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 5)
    return "" if value is None else value


def write_outputs(plan: Plan, records: list[RunRecord], log: Callable[[str], None] = say) -> None:
    """Write ``best.csv``, ``pareto.png`` and the TensorBoard figure and table; log the table."""
    spec = plan.spec
    count = "params_total" if spec.count == "total" else "params_trainable"
    comparable = [r for r in records if r.metric == plan.metric and (r.mode or plan.mode) == plan.mode]
    rows = [record.row() for record in comparable]
    configs = pareto.configurations(rows, count)
    best = pareto.best_per_budget(configs, plan.mode)
    with open(plan.out / "best.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, BEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for config in best:
            config = {**config, "current": "yes" if config["current"] else "no"}
            writer.writerow({key: _cell(config.get(key)) for key in BEST_FIELDS})
    figure = pareto.plot_frontiers(
        rows, plan.metric, plan.mode, spec.budgets, spec.tolerance, count,
        title=f"{spec.name}: {plan.metric} against parameters",
    )  # fmt: skip
    figure.savefig(plan.out / "pareto.png")
    table = pareto.markdown_table(best, plan.metric, plan.test_metric)
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlplab.loggers import log_figure, log_text

    loggers = [TensorBoardLogger(str(plan.out), name="tensorboard", version="", default_hp_metric=False)]
    finished = sum(1 for record in records if record.status == "ok")
    log_figure(loggers, "sweep/pareto", figure, finished)
    log_text(loggers, "sweep/best", table, finished, markdown=True)
    for logger in loggers:
        logger.finalize("success")
    import matplotlib.pyplot as plt

    plt.close(figure)

    mine = [r for r in records if r.current]
    failed = [r for r in mine if r.status != "ok"]
    diverged = sum(1 for r in failed if r.error.startswith("training diverged"))  # the guard's line
    earlier = len(records) - len(mine)
    other_metric = len(records) - len(comparable)
    log(
        f"{len(mine)} of {len(plan.runs)} runs finished ({len(failed)} failed"
        + (f", {diverged} of them diverged" if diverged else "")
        + ")"
        + (f"; {earlier} earlier runs kept" if earlier else "")
        + (f" ({other_metric} judged by another metric: in results.csv only)" if other_metric else "")
        + "; best shape per family and budget:"
    )
    log(table)
    log(f"wrote {plan.out / 'results.csv'}, {plan.out / 'best.csv'}, {plan.out / 'pareto.png'} and "
        f"{plan.out / 'tensorboard'}")  # fmt: skip


def describe(record: RunRecord) -> str:
    """One line about a finished run."""
    if record.status != "ok":
        return f"failed after {record.wall_time_s} s: {record.error}"
    test = f", {record.test_metric} {record.test:.4g}" if record.test is not None else ""
    return f"{record.metric} {record.best_val:.4g}{test} ({record.epochs} epochs, {record.wall_time_s} s)"


def log_plan(plan: Plan, finished: int, log: Callable[[str], None], listing: bool) -> None:
    """Say what the sweep counted, kept and will run (with ``listing``: every kept shape)."""
    spec = plan.spec
    counted = [c for c in plan.candidates if not c.refused]
    kept = [c for c in counted if c.budget is not None]
    log(
        f"sweep {spec.name}: {len(plan.candidates)} shapes of {len(spec.families)} families counted on "
        f"the meta device in {plan.counting_seconds:.1f} s ({len(plan.candidates) - len(counted)} refused "
        f"by their family); {len(kept)} within ±{spec.tolerance:.0%} of the budgets "
        f"{', '.join(pareto.format_count(b) for b in spec.budgets)}"
    )
    log(
        f"{len(plan.runs)} runs ({len(spec.seeds)} seed(s) each), {finished} finished, "
        f"{len(plan.runs) - finished} to run; best by {plan.metric} ({plan.mode})"
    )
    for note in plan.notes:
        log(f"note: {note}")
    if listing:
        for candidate in sorted(kept, key=lambda c: (c.budget, c.family.name, c.params_total)):
            log(
                f"  budget {pareto.format_count(candidate.budget):>6}  {candidate.family.name:<14} "
                f"{candidate.shape_text:<32} {candidate.params_total:>12,} total "
                f"{candidate.params_trainable:>12,} trainable"
            )
