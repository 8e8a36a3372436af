"""TabM and the MLP baseline on the offline tables, with the TabM paper's protocol where it applies.

Every run trains one of the California-housing recipes of ``configs/tabular/`` (``tabm``, ``tabm_ple``,
``mlp``: the paper's tuned configuration and optimiser, noisy-quantile features, gradient clipping at 1,
constant LR, early stopping with patience 16 on the validation score, the best-validation checkpoint
tested) on a table that needs no network, with its dataset swapped in: ``diabetes`` (regression: RMSE),
``breast_cancer`` and ``wine`` (classification: accuracy), ``penguins`` (classification, with categorical
columns). The split is fixed (``split_seed`` 0, 64 / 16 / 20 %) and the model seed varies, as in the
paper. Departures, because these tables have 178 to 569 rows: batch 32 instead of 256 (256 would be
one step per epoch), and the California hyper-parameters are used without tuning on each table.

Each finished run appends a row to ``OUT/results.csv`` (re-running skips finished runs); the summary
(mean and standard deviation over seeds, per dataset and model) is printed as a Markdown table.

    python benchmarks/tabular_offline.py --out runs/tabular      # 4 tables x 3 models x 5 seeds
    python benchmarks/tabular_offline.py --out DIR --datasets wine --models tabm mlp --seeds 0 1
    python benchmarks/tabular_offline.py --out DIR --linear-baseline     # least squares / logistic regression
    python benchmarks/tabular_offline.py --out DIR --datasets adult --models tabm mlp --data-dir DATA

UCI Adult (``--datasets adult``) is not offline unless its two files are at hand (``DATA/adult/``;
downloaded and sha256-checked otherwise); it runs the paper's own tuned Adult recipes
(``configs/tabular/{tabm,mlp}_adult.yaml``: the paper's split and batch 256), not the California ones.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping

from mlplab.cli import MLPLabCLI
from mlplab.data import TabularDataModule
from mlplab.models import count_parameters
from mlplab.tools.provenance import append_row, code_version

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"tabm": "tabm_california", "tabm_ple": "tabm_ple_california", "mlp": "mlp_california"}
DATASETS = ("diabetes", "breast_cancer", "wine", "penguins")
FIELDS = [
    "dataset", "model", "seed", "params", "epochs_run", "best_epoch", "score_name", "test_score",
    "test_acc", "test_auroc", "test_logloss", "test_rmse", "test_r2", "seconds", "threads", "device",
    "commit", "date",
]  # fmt: skip


def run_one(dataset: str, model: str, seed: int, options: argparse.Namespace) -> dict:
    own = REPO / "configs" / "tabular" / f"{model}_{dataset}.yaml"  # a table with its own tuned recipe
    has_own = own.is_file()
    recipe = own if has_own else REPO / "configs" / "tabular" / f"{RECIPES[model]}.yaml"
    run_dir = options.out / f"{dataset}_{model}_{seed}"
    args = [f"--config={recipe}", f"--seed_everything={seed}", f"--trainer.default_root_dir={run_dir}",
            "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false"]  # fmt: skip
    if not has_own:
        args += [f"--data.init_args.dataset={dataset}", "--data.init_args.batch_size=32"]
    if options.data_dir is not None:
        args.append(f"--data.init_args.data_dir={options.data_dir}")
    if options.epochs:
        args.append(f"--trainer.max_epochs={options.epochs}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = MLPLabCLI(args=args, run=False)
    task = cli.model
    # the recipes stop on val/rmse; a classification table stops on its own score (val/acc)
    cli.trainer.callbacks[:] = [c for c in cli.trainer.callbacks if not isinstance(c, EarlyStopping)]
    stopper = EarlyStopping(monitor=task.monitor, mode=task.monitor_mode, patience=16)
    cli.trainer.callbacks.append(stopper)
    start = time.perf_counter()
    cli.trainer.fit(task, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    best = cli.trainer.checkpoint_callback
    best_epoch = torch.load(best.best_model_path, map_location="cpu", weights_only=False)["epoch"]
    results = cli.trainer.test(task, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    score = "test/acc" if task.classification else "test/rmse"
    row = {
        "dataset": dataset, "model": model, "seed": seed, "params": count_parameters(task.backbone)[0],
        "epochs_run": cli.trainer.current_epoch, "best_epoch": best_epoch, "score_name": score,
        "test_score": round(results[score], 4), "seconds": round(seconds, 1),
    }  # fmt: skip
    for key in ("acc", "auroc", "logloss", "rmse", "r2"):
        row[f"test_{key}"] = round(results[f"test/{key}"], 4) if f"test/{key}" in results else ""
    return row


def linear_baseline(dataset: str) -> tuple[str, float]:
    """Test score of a linear model (least squares, or logistic regression) on the same split and features.

    Numeric features as the DataModule transforms them, categorical ones one-hot: what the networks see.
    """
    from sklearn.linear_model import LinearRegression, LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = TabularDataModule(dataset=dataset)
    data.setup()

    def features(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x_num, x_cat, y = data.split_tensors(split)
        codes = [F.one_hot(x_cat[:, i], c).float() for i, c in enumerate(data.cardinalities)]
        return torch.cat([x_num, *codes], dim=1).numpy(), y.numpy()

    (x_train, y_train), (x_test, y_test) = features("train"), features("test")
    if data.objective == "regression":
        mean, std = data.target_scale
        predicted = LinearRegression().fit(x_train, y_train).predict(x_test) * std + mean
        return "rmse", float(((predicted - (y_test * std + mean)) ** 2).mean() ** 0.5)
    model = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    return "acc", float((model.predict(x_test) == y_test).mean())


def summary(rows: list[dict]) -> str:
    """Mean ± standard deviation of the test score per dataset and model, as Markdown."""
    lines = ["| dataset | score | model | test score (mean ± std) | seeds | params | epochs (mean) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["model"]), []).append(row)
    for (dataset, model), runs in sorted(groups.items()):
        scores = [float(r["test_score"]) for r in runs]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        epochs = statistics.mean(float(r["epochs_run"]) for r in runs)
        score, params = runs[0]["score_name"].split("/")[1], int(runs[0]["params"])
        lines.append(f"| {dataset} | {score} | {model} | {statistics.mean(scores):.4f} ± {spread:.4f} | "
                     f"{len(runs)} | {params:,} | {epochs:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs and results.csv")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=[*DATASETS, "adult"],
                        help="adult: not by default (a download, or --data-dir); own recipes")  # fmt: skip
    parser.add_argument("--data-dir", default=None, help="folder of downloaded tables ($MLPLAB_DATA)")
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=sorted(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' max_epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--linear-baseline", action="store_true",
                        help="print a linear model's test score on each table instead (seconds)")  # fmt: skip
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    if options.linear_baseline:
        for dataset in options.datasets:
            name, score = linear_baseline(dataset)
            print(f"{dataset}: linear model, test {name} {score:.4f}")
        return
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / "results.csv"
    rows = list(csv.DictReader(open(path))) if path.is_file() else []
    done = {(r["dataset"], r["model"], int(r["seed"])) for r in rows}
    common = {"threads": options.threads, "device": platform.processor() or platform.machine(),
              "commit": code_version(REPO), "date": datetime.date.today().isoformat()}  # fmt: skip
    for dataset in options.datasets:
        for model in options.models:
            for seed in options.seeds:
                if (dataset, model, seed) in done:
                    continue
                row = {**run_one(dataset, model, seed, options), **common}
                print(row, flush=True)
                append_row(path, FIELDS, row)
                rows.append(row)
    chosen = [r for r in rows if r["dataset"] in options.datasets and r["model"] in options.models]
    print(summary(chosen))


if __name__ == "__main__":
    main()
