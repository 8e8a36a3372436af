"""S-KAN against KAN on the KAN paper's formulas: test RMSE through mlplab's CLI and recipes.

Every run trains configs/kan/{kan,skan}_exp_sin.yaml with the formula replaced (1,000 training,
validation and test samples drawn uniformly from [-1, 1]^d, Adam at 1e-2, batch 128; S-KAN selects one
activation space per node halfway), keeps the best-validation checkpoint and reports its test RMSE.

    python benchmarks/kan_formulas.py --out runs/kan_formulas                 # CPU, a few minutes
    python benchmarks/kan_formulas.py --out runs/kan_formulas --formulas bessel --seeds 0 1 2 --epochs 400

Finished runs (a row in the CSV) are skipped when the command is run again.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters
from mlplab.tools.provenance import append_row, code_version, device_label, read_rows

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("kan", "skan")
FORMULAS = ("exp_sin", "product", "bessel", "exp_sin_4d")
FIELDS = ["formula", "family", "seed", "params", "epochs", "best_val_rmse", "test_rmse", "seconds", "device",
          "commit"]  # fmt: skip


def run_one(formula: str, family: str, seed: int, options: argparse.Namespace) -> dict:
    args = [f"--config={REPO / 'configs' / 'kan' / f'{family}_exp_sin.yaml'}", f"--data.formula={formula}",
            f"--trainer.max_epochs={options.epochs}", f"--seed_everything={seed}", f"--data.seed={seed}",
            f"--trainer.default_root_dir={options.out / f'{formula}_{family}_{seed}'}",
            "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false"]  # fmt: skip
    if family == "skan":
        args.append(f"--trainer.callbacks.init_args.at_epoch={options.epochs // 2}")
    cli = MLPLabCLI(args=args, run=False)
    start = time.monotonic()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.monotonic() - start
    best = cli.trainer.checkpoint_callback
    chosen = "best" if best.best_model_path else None  # no validation yet: the last weights
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=chosen, verbose=False)[0]
    return {
        "params": count_parameters(cli.model.backbone)[0],
        "epochs": options.epochs,
        "best_val_rmse": f"{float(best.best_model_score):.4g}" if chosen else "",
        "test_rmse": f"{results['test/rmse']:.4g}",
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of the runs, results.csv and results.md"
    )
    parser.add_argument("--formulas", nargs="+", default=list(FORMULAS))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=200)
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    table = options.out / "results.csv"
    done = {(r["formula"], r["family"], int(r["seed"])) for r in read_rows(table)}
    device = device_label()
    for formula in options.formulas:
        for family in options.families:
            for seed in options.seeds:
                if (formula, family, seed) in done:
                    continue
                row = {"formula": formula, "family": family, "seed": seed}
                row |= run_one(formula, family, seed, options) | {
                    "device": device,
                    "commit": code_version(REPO),
                }
                append_row(table, FIELDS, row)
                print(row, flush=True)
    rows = read_rows(table)
    lines = [
        "| formula | family | params | seeds | test RMSE (mean) | test RMSE per seed |",
        "|---|---|---:|---:|---:|---|",
    ]
    for formula in dict.fromkeys(r["formula"] for r in rows):
        for family in FAMILIES:
            mine = [r for r in rows if r["formula"] == formula and r["family"] == family]
            if mine:
                values = [float(r["test_rmse"]) for r in mine]
                per_seed = ", ".join(r["test_rmse"] for r in mine)
                lines.append(f"| {formula} | {family} | {int(mine[0]['params']):,} | {len(mine)} | "
                             f"{statistics.mean(values):.4g} | {per_seed} |")  # fmt: skip
    (options.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
