"""Collect what ``benchmarks/analysis_cpu.sh`` measured into the markdown tables of docs/results.md.

    python benchmarks/analysis_table.py runs/analysis

Reads each run's ``analysis/`` folder (``similarity.md``, ``density.csv``, the ``report.json`` of
``drop-layers`` and ``prune``) and the best validation metric from its TensorBoard events.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

RUNS = {"qs": "quickstart (HourglassMLP, digits)", "tf": "Transformer, Tiny Shakespeare",
        "ts": "TSMixerGoogle, ETTh1"}  # fmt: skip
DENSITY_RUNS = ("qs", "qs-deft", "qs-deft-eps", "tf", "tf-deft", "ts", "ts-deft")


def run_dir(out: Path, name: str) -> Path:
    return out / name / "lightning_logs" / "version_0"


def best_validation(run: Path) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    tags = events.Tags()["scalars"]
    for tag, best in (("val/psnr", max), ("val/loss", min), ("val/mse", min)):
        if tag in tags:
            return f"{tag} {best(e.value for e in events.Scalars(tag)):.4f}"
    return ""


def report(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main(out: Path) -> None:
    print("### Similarity profiles\n")
    for name, title in RUNS.items():
        table = run_dir(out, name) / "analysis" / "similarity" / "similarity.md"
        if table.is_file():
            print(f"{title}:\n\n{table.read_text()}")
    print("### Dropping\n")
    print("| run | part | dropped (similarity) | test metric | before | after | parameters |")
    print("|---|---|---|---|---|---|---|")
    for name, title in RUNS.items():
        folder = run_dir(out, name) / "analysis"
        for found in sorted(folder.glob("drop-*/report.json")):
            r = report(found)
            metric = r["metric"]
            dropped = ", ".join(f"{d['sublayer']} ({d['similarity']:.3f})" for d in r["dropped"])
            print(f"| {title} | {r['part']} | {dropped} | {metric} | {r['before'][metric]:.4f} | "
                  f"{r['after'][metric]:.4f} | {r['params_before']:,} → {r['params_after']:,} |")  # fmt: skip
    print("\n### Activation density\n")
    print("| run | validation (best) | density, threshold 0 | 0.01 | 0.1 |")
    print("|---|---|---|---|---|")
    for name in DENSITY_RUNS:
        run = run_dir(out, name)
        table = run / "analysis" / "density" / "density.csv"
        if not table.is_file():
            continue
        rows = {(r["threshold"], r["group"]): float(r["density"]) for r in csv.DictReader(table.open())}
        cells = [f"{rows.get((t, 'all'), float('nan')):.4f}" for t in ("0.0", "0.01", "0.1")]
        print(f"| {name} | {best_validation(run)} | " + " | ".join(cells) + " |")
    print("\n### Global magnitude pruning (one-shot)\n")
    print("| run | test metric | dense | 50 % | 80 % | 90 % | 80 %, MT 1000 | 80 % + 200 steps |")
    print("|---|---|---|---|---|---|---|---|")
    for name, title in RUNS.items():
        folder = run_dir(out, name) / "analysis"
        keys = ("prune-0.5", "prune-0.8", "prune-0.9", "prune-0.8-mt1000", "prune-0.8-ft200")
        reports = {key: report(folder / key / "report.json") for key in keys}
        if not reports["prune-0.5"]:
            continue
        metric = reports["prune-0.5"]["metric"]
        cells = [f"{reports['prune-0.5']['before'][metric]:.4f}"]
        for key in ("prune-0.5", "prune-0.8", "prune-0.9", "prune-0.8-mt1000"):
            cells.append(f"{reports[key]['after_pruning'][metric]:.4f}" if reports[key] else "")
        tuned = reports["prune-0.8-ft200"]
        cells.append(f"{tuned['after_finetune'][metric]:.4f}" if tuned else "")
        print(f"| {title} | {metric} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/analysis"))
