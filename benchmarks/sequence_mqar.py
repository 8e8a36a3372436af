"""MQAR at Zoology's sizes for every sequence family: best test accuracy per width, beside Zoology's figures.

Each run also records its training tokens/s, peak memory, training FLOPs per token and the
sequence-mixer backend used (as ``sequence_shakespeare.py`` describes them; ``--backend`` for the
families that have one).

Runs ``configs/text/<family>_mqar.yaml`` through mlplab's CLI (Zoology's setting: 2 layers, no channel
MLP, vocabulary 8192, 100k training / 3k test examples, AdamW with a cosine schedule over 64 epochs,
stopping at accuracy 0.99) for every family x width x learning rate, at sequence length 256 with 16
key-value pairs by default (``--preset``). As Zoology, a (family, width) scores its best learning rate
(Zoology sweeps ``logspace(-4, -2, 4)``). Results: ``<out>/mqar.csv`` (one row per run; finished runs
are skipped when repeated) and ``<out>/mqar.md`` (best accuracy per family and width, Zoology's
beside). Arguments the script does not know go to every run's command line.

    python benchmarks/sequence_mqar.py --out /work/runs/sequence/mqar    # 6 families x 3 widths x 4 lrs
    python benchmarks/sequence_mqar.py --out runs/mqar --families transformer mamba --widths 64 128 256
    python benchmarks/sequence_mqar.py --out /tmp/smoke --device cpu --preset 64x4 --widths 16 \\
        --lrs 0.001 --epochs 1 --train-examples 64 --test-examples 16 --families transformer   # smoke
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from sequence_runs import (
    REPO,
    backends,
    commit,
    device_name,
    flops_per_token,
    parameters,
    run_recipe,
)

from mlplab.tools.provenance import append_row, read_rows

FAMILIES = ["transformer", "mamba", "gla", "hopfield", "gam", "gated_conv"]
ZOOLOGY_LRS = [float(f"{lr:.4g}") for lr in np.logspace(-4, -2, 4)]  # 1e-4, 4.642e-4, 2.154e-3, 1e-2
# Zoology (Arora et al. 2024) at sequence length 256 with 16 pairs, from docs/families.md: attention is
# about 1.0 at every width; H3, a gated convolution, scores .08 / .63 / .61 at widths 64 / 128 / 256.
ZOOLOGY = {
    "transformer": {64: "~1.0", 128: "~1.0", 256: "~1.0"},
    "gated_conv": {64: ".08 (H3)", 128: ".63 (H3)", 256: ".61 (H3)"},
}
WITH_BACKEND = {"mamba", "gla"}  # families with a backend argument
BACKENDS = ["auto", "torch", "fla", "mamba_ssm"]
FIELDS = ["family", "backend", "backend_used", "width", "lr", "params", "best_val_acc", "epochs",
          "fit_seconds", "train_tokens_per_sec", "peak_memory_gib", "train_flops_per_token", "preset",
          "device", "commit", "run_dir"]  # fmt: skip


def run_one(family: str, width: int, lr: float, options: argparse.Namespace) -> dict:
    recipe = REPO / "configs" / "text" / f"{family}_mqar.yaml"
    args = [f"--config={preset}" for preset in options.preset_config] + [f"--config={recipe}"]
    args += [
        f"--trainer.default_root_dir={options.out / family / f'd{width}_lr{lr:g}'}",
        "--trainer.enable_progress_bar=false",
        f"--model.backbone.embed_dim={width}",
        f"--model.optimizer.lr={lr}",
        f"--data.init_args.preset={options.preset}",
        f"--compile.enabled={str(options.compile).lower()}",
    ]
    if options.device == "cpu":
        args += ["--trainer.accelerator=cpu"]
    if options.epochs:
        args += [
            f"--trainer.max_epochs={options.epochs}",
            f"--model.lr_scheduler.init_args.T_max={options.epochs}",
        ]
    if options.train_examples:
        args += [f"--data.init_args.num_train_examples={options.train_examples}"]
    if options.test_examples:
        args += [f"--data.init_args.num_test_examples={options.test_examples}"]
    if family in WITH_BACKEND:
        args += [f"--model.backbone.init_args.backend={options.backend}"]
    cli, recorder, seconds = run_recipe(args + options.extra, "val/acc")
    accuracies = [entry["val/acc"] for entry in recorder.validations]
    data = cli.datamodule
    tokens_per_batch = data.batch_size * data.context_length
    return {
        "family": family,
        "backend": options.backend if family in WITH_BACKEND else "-",
        "backend_used": backends(cli),
        "width": width,
        "lr": lr,
        "params": parameters(cli),
        "best_val_acc": round(max(accuracies), 4) if accuracies else "",
        "epochs": cli.trainer.current_epoch,
        "fit_seconds": round(seconds, 1),
        "train_tokens_per_sec": round(cli.trainer.global_step * tokens_per_batch / recorder.train_seconds),
        "peak_memory_gib": recorder.peak_memory_gib,
        "train_flops_per_token": flops_per_token(cli, tokens_per_batch),
        "preset": options.preset,
        "device": device_name(cli),
        "commit": commit(),
        "run_dir": cli.trainer.log_dir,
    }


def label(row: dict) -> str:
    """A family, with its backend when it has one (``mamba (auto: torch)``)."""
    backend = row.get("backend", "-") or "-"
    return row["family"] if backend == "-" else f"{row['family']} ({backend}: {row['backend_used']})"


def table(rows: list[dict], widths: list[int]) -> str:
    best: dict[tuple[str, int], tuple[float, str]] = defaultdict(lambda: (-1.0, ""))
    cost: dict[tuple[str, int], dict] = {}
    for row in rows:
        key = (label(row), int(row["width"]))
        if row["best_val_acc"] != "" and float(row["best_val_acc"]) > best[key][0]:
            best[key] = (float(row["best_val_acc"]), row["lr"])
            cost[key] = row
    header = "| family | " + " | ".join(f"d={w} (lr)" for w in widths) + " | Zoology (same widths) |"
    lines = [header, "|---|" + "---|" * (len(widths) + 1)]
    families = list(dict.fromkeys(label(row) for row in rows))
    for family in families:
        cells = []
        for width in widths:
            accuracy, lr = best.get((family, width), (-1.0, ""))
            cells.append(f"{accuracy:.3f} ({lr})" if accuracy >= 0 else "-")
        zoology = " / ".join(ZOOLOGY.get(family.split(" ")[0], {}).get(w, "-") for w in widths)
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {zoology} |")
    lines += ["", "| family | width | params | tokens/s | peak memory | training FLOPs/token | device |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for (family, width), row in cost.items():
        flops = f"{int(row['train_flops_per_token']) / 1e6:.2f}M" if row.get("train_flops_per_token") else "-"
        lines.append(
            f"| {family} | {width} | {row['params']} | {row.get('train_tokens_per_sec', '')} "
            f"| {row.get('peak_memory_gib', '')} GiB | {flops} | {row['device']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    parser.add_argument("--widths", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--lrs", nargs="+", type=float, default=ZOOLOGY_LRS)
    parser.add_argument("--preset", default="256x16", choices=["64x4", "128x8", "256x16", "512x64"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--preset-config", nargs="*", default=None, help="trainer presets (default: gpu-bf16 on GPUs)"
    )
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="of the families that have one")
    parser.add_argument("--epochs", type=int, default=None, help="fewer epochs than Zoology's 64")
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--test-examples", type=int, default=None)
    options, extra = parser.parse_known_args()
    options.extra = extra  # any other arguments go to every run's CLI
    if options.preset_config is None:
        options.preset_config = (
            [REPO / "configs" / "trainer" / "gpu-bf16.yaml"] if options.device == "cuda" else []
        )
    torch.set_float32_matmul_precision("high")
    results = options.out / "mqar.csv"
    done = {
        (row["family"], row.get("backend", "-"), int(row["width"]), float(row["lr"]))
        for row in read_rows(results)
    }
    for family in options.families:
        backend = options.backend if family in WITH_BACKEND else "-"
        for width in options.widths:
            for lr in options.lrs:
                if (family, backend, width, lr) not in done:
                    append_row(results, FIELDS, run_one(family, width, lr, options))
    markdown = table(read_rows(results), options.widths)
    (options.out / "mqar.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
