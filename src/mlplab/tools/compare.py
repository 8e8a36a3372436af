"""``mlplab compare DIR...``: any set of runs side by side, as a table and as metric-against-cost figures.

Every run directory holds ``summary.json`` (written by :class:`mlplab.callbacks.RunSummary` at the end
of ``fit``, with the test value once its checkpoint is tested as its recipe evaluates: tests with other
evaluation options are kept apart, under ``other_tests``, and not shown). The command finds them under
the given folders (run folders, ``lightning_logs`` folders, sweep folders, or globs of them), prints one
markdown table (family, its arguments, parameters, FLOPs per sample, the task's metric, its best
validation and test values, wall time) and writes, in ``--out``:

* ``compare.csv`` and ``compare.md``: the table; its ``status`` is ``ok``, or ``diverged at step N`` for a
  run the divergence guard stopped (its summary says so), which the figures leave out;
* ``<metric>_vs_params.png`` and ``<metric>_vs_time.png`` for every metric among the runs: each run
  a point, each family a frontier (the runs no run of the family beats with fewer parameters, or in
  less time), as the sweep's ``pareto.png`` (:mod:`mlplab.tools.pareto`) draws for a sweep. On the
  parameters figure the runs that differ only by their seed (equal ``settings_key`` in their
  summaries) are averaged into one frontier point; runs of other data, tasks or settings never are,
  nor runs whose summary has no ``settings_key`` (a Trainer built in Python that was given none, or an
  older mlplab), which the printed line counts.

    mlplab compare runs/quickstart/lightning_logs runs/sweep --out runs/compare
    mlplab compare 'runs/*/lightning_logs/version_*'
"""

from __future__ import annotations

import csv
import glob
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlplab.callbacks.summary import SUMMARY_FILE, read_summary
from mlplab.errors import DEBUG_ENV_VAR, ConfigError, MLPLabError, OneLineParser, exit_with_error_line

#: Columns of the table, in order.
COLUMNS = (
    "run", "family", "arguments", "params_total", "params_trainable", "flops_per_sample", "metric",
    "best_val", "test", "time_s", "epochs", "status",
)  # fmt: skip


def find_runs(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The summaries of the runs under ``paths`` (folders or glob patterns), each run once.

    Raises:
        ConfigError: When a path matches nothing, or no run is found under any of them.
    """
    folders: list[Path] = []
    for given in paths:
        matched = sorted(glob.glob(os.path.expanduser(given))) if glob.has_magic(given) else [given]
        if not matched or not all(Path(m).exists() for m in matched):
            raise ConfigError(f"compare: {given} does not exist")
        folders += [Path(m) for m in matched]
    summaries: dict[Path, dict[str, Any]] = {}
    for folder in folders:
        here = folder / SUMMARY_FILE
        files = [here] if here.is_file() else sorted(folder.rglob(SUMMARY_FILE))
        for file in files:
            summary = read_summary(file.parent)
            if summary is not None:
                summaries.setdefault(file.parent.resolve(), {**summary, "run": str(file.parent)})
    if not summaries:
        where = ", ".join(paths)
        raise ConfigError(
            f"compare: no runs in {where}: a run folder holds {SUMMARY_FILE}, which `mlplab fit` writes when "
            "training ends (with a logger)"
        )
    return list(summaries.values())


def arguments_text(arguments: dict[str, Any]) -> str:
    """A family's arguments as ``embed_dim=1024 mlp_dim=128 depth=3`` (unset ones left out)."""
    return " ".join(f"{key}={value}" for key, value in arguments.items() if value is not None)


def table_rows(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row of :data:`COLUMNS` per run, sorted by metric, family and parameters."""
    rows = []
    for summary in summaries:
        row = {column: summary.get(column) for column in COLUMNS}
        row["arguments"] = arguments_text(summary.get("arguments") or {})
        row["status"] = status_text(summary)
        row["mode"] = summary.get("mode", "min")
        row["settings_key"] = summary.get("settings_key")
        rows.append(row)
    return sorted(
        rows, key=lambda r: (r["metric"] or "", r["family"] or "", r["params_total"] or 0, r["run"])
    )


def status_text(summary: dict[str, Any]) -> str:
    """``ok``, or ``diverged at step N`` for a run the divergence guard stopped (its ``status`` says so)."""
    status = summary.get("status") or "ok"  # summaries of older versions: fits that ended
    if status == "diverged":
        step = (summary.get("diverged") or {}).get("step")
        return "diverged" if step is None else f"diverged at step {step}"
    return str(status)


def format_cell(value: Any) -> str:
    """A table cell: numbers to 4 significant digits, counts with thousands separators, ``—`` for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(format_cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The rows as CSV, empty cells for missing values."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row[c] is None else row[c] for c in COLUMNS})


def plot_against_time(rows: Sequence[dict[str, Any]], metric: str, mode: str) -> Any:
    """Best validation metric against wall time: a point per run, a frontier per family."""
    from mlplab.tools import pareto

    plt = pareto.plt
    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    families = sorted({row["family"] for row in rows})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, family in enumerate(families):
        points = [{"params": r["time_s"], "best_val": r["best_val"]} for r in rows if r["family"] == family]
        colour = colours[index % len(colours)]
        axes.scatter([p["params"] for p in points], [p["best_val"] for p in points], s=14, alpha=0.35,
                     color=colour)  # fmt: skip
        line = pareto.frontier(points, mode)
        axes.plot([p["params"] for p in line], [p["best_val"] for p in line], "o-", color=colour,
                  lw=1.8, ms=5, label=f"{family} (frontier)")  # fmt: skip
    if families:
        axes.set_xscale("log")
        axes.legend(loc="lower right" if mode == "max" else "upper right", fontsize=9)
    axes.set_xlabel("wall time of the fit (s)")
    axes.set_ylabel(f"best {metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    axes.grid(True, which="both", alpha=0.25)
    axes.set_title(f"{metric} against training time", fontsize=10)
    figure.tight_layout()
    return figure


def frontier_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs as rows of :func:`mlplab.tools.pareto.configurations`, which averages each group's runs.

    A group is the runs of one ``settings_key`` (their configs differ by the seed alone, see
    :func:`mlplab.callbacks.summary.settings_digest`); a run whose summary has none (written by an
    older mlplab) is a group of its own: runs of other data, tasks or training settings are never
    averaged into one point.
    """
    return [
        {"family": r["family"], "shape": r["arguments"], "options": "", "budget": 0, "status": "ok",
         "params_total": r["params_total"], "params_trainable": r["params_trainable"],
         "best_val": r["best_val"], "test": r["test"],
         "group": f"settings:{r['settings_key']}" if r.get("settings_key") else f"run:{r['run']}"}
        for r in rows
    ]  # fmt: skip


def write_figures(rows: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """``<metric>_vs_params.png`` and ``<metric>_vs_time.png`` for every metric of the runs."""
    from mlplab.tools import pareto

    written = []
    for metric in sorted({row["metric"] for row in rows if row["metric"]}):
        chosen = [
            r for r in rows if r["metric"] == metric and r["best_val"] is not None and r["status"] == "ok"
        ]
        if not chosen:
            continue
        mode = chosen[0]["mode"]
        name = metric.replace("/", "_")
        figure = pareto.plot_frontiers(
            frontier_rows(chosen), metric, mode, title=f"{metric} against parameters"
        )
        figure.savefig(out / f"{name}_vs_params.png")
        pareto.plt.close(figure)
        timed = [r for r in chosen if r["time_s"]]
        written.append(out / f"{name}_vs_params.png")
        if timed:
            figure = plot_against_time(timed, metric, mode)
            figure.savefig(out / f"{name}_vs_time.png")
            pareto.plt.close(figure)
            written.append(out / f"{name}_vs_time.png")
    return written


def compare(paths: Sequence[str], out: Path) -> str:
    """Find the runs, write the table and the figures into ``out``; return the markdown table."""
    rows = table_rows(find_runs(paths))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, no permission
        raise ConfigError(
            f"compare: cannot create the folder --out {out} ({error.strerror or error})"
        ) from error
    table = markdown_table(rows)
    (out / "compare.md").write_text(table + "\n")
    write_csv(rows, out / "compare.csv")
    figures = write_figures(rows, out)
    written = ", ".join(str(path) for path in [out / "compare.csv", out / "compare.md", *figures])
    diverged = sum(1 for row in rows if row["status"].startswith("diverged"))
    keyless = sum(1 for row in rows if not row.get("settings_key"))
    note = (
        f"\n{keyless} of them without a settings_key (a Trainer built in Python without "
        "RunSummary(settings_key=...), or an older mlplab): each is a point of its own, averaged with no "
        "other seed"
        if keyless
        else ""
    )
    stopped = f" ({diverged} diverged: in the table, not in the figures)" if diverged else ""
    return f"{table}\n\n{len(rows)} runs{stopped}; wrote {written}{note}"


def main(argv: Sequence[str] | None = None) -> None:
    """``mlplab compare``: the command line."""
    parser = OneLineParser(
        prog="mlplab compare",
        description="Compare runs: a table of family, arguments, parameters, FLOPs per sample, metric "
        "(best validation, test) and time, and metric-against-parameters and -time figures. Runs are "
        f"the folders holding {SUMMARY_FILE} (mlplab fit writes it) under the given folders or globs.",
    )
    parser.add_argument("paths", nargs="+", metavar="DIR", help="run folders, folders of runs, or globs")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("compare"),
        help="where the table and figures go (default: ./compare)",
    )
    options = parser.parse_args(list(argv) if argv is not None else None)
    try:
        print(compare(options.paths, options.out))
    except MLPLabError as error:
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        exit_with_error_line(error)
