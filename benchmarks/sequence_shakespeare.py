"""Every sequence family on Tiny Shakespeare at nanoGPT's budget: validation loss, wall time, tokens/s.

Runs ``configs/text/<family>_shakespeare.yaml`` through mlplab's CLI exactly as a user would (all
about 10.7M parameters, nanoGPT's recipe: 5000 steps of 64 x 256 characters), composed with a trainer
preset (``configs/trainer/gpu-bf16.yaml`` on a GPU). Each run records its parameter count, the best
and last validation loss, the step and wall time at which validation loss first reached 1.50 (the
bar for nanoGPT's Transformer, which reports 1.4697 after about 3 minutes on an A100), the whole fit's
wall time and the training tokens/s (validation excluded). Results: ``<out>/shakespeare.csv`` (one
row per run; finished runs are skipped when the command is repeated) and a markdown table. Arguments the
script does not know go to every run's command line (e.g. ``--trainer.limit_val_batches=1``).

    python benchmarks/sequence_shakespeare.py --out /work/runs/sequence/shakespeare        # all families
    python benchmarks/sequence_shakespeare.py --out runs/shakespeare --families transformer --compile
    python benchmarks/sequence_shakespeare.py --out /tmp/smoke --device cpu --corpus pydoc_topics \\
        --max-steps 4 --context 32 --families transformer \\
        --trainer.limit_val_batches=1 --model.init_args.sample_length=4          # smoke check
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from sequence_runs import REPO, append_row, commit, device_name, finished_rows, parameters, run_recipe

FAMILIES = ["transformer", "mamba", "gla", "hopfield", "gam", "gated_conv", "transformer_moepp"]
BAR = 1.50
FIELDS = ["family", "params", "steps", "best_val_loss", "last_val_loss", "best_val_bpc", "reached_1.50_step",
          "reached_1.50_seconds", "fit_seconds", "train_tokens_per_sec", "batch", "context", "compile",
          "device", "commit", "run_dir"]  # fmt: skip


def run_one(family: str, options: argparse.Namespace) -> dict:
    recipe = REPO / "configs" / "text" / f"{family}_shakespeare.yaml"
    run_dir = options.out / family
    args = [f"--config={preset}" for preset in options.preset] + [f"--config={recipe}"]
    args += [f"--trainer.default_root_dir={run_dir}", "--trainer.enable_progress_bar=false"]
    args += [f"--compile.enabled={str(options.compile).lower()}"]
    if options.device == "cpu":
        args += ["--trainer.accelerator=cpu"]
    if options.max_steps:
        args += [
            f"--trainer.max_steps={options.max_steps}",
            f"--data.init_args.batches_per_epoch={options.max_steps}",
        ]
    if options.corpus:
        args += [f"--data.init_args.corpus={options.corpus}"]
    if options.context:
        args += [f"--data.init_args.context_length={options.context}"]
    cli, recorder, seconds = run_recipe(args + options.extra, "val/loss")
    losses = [entry["val/loss"] for entry in recorder.validations]
    reached = next((entry for entry in recorder.validations if entry["val/loss"] <= BAR), None)
    data = cli.datamodule
    steps = cli.trainer.global_step
    return {
        "family": family,
        "params": parameters(cli),
        "steps": steps,
        "best_val_loss": round(min(losses), 4) if losses else "",
        "last_val_loss": round(losses[-1], 4) if losses else "",
        "best_val_bpc": round(min(losses) / math.log(2), 4) if losses else "",
        "reached_1.50_step": reached["step"] if reached else "",
        "reached_1.50_seconds": round(reached["seconds"], 1) if reached else "",
        "fit_seconds": round(seconds, 1),
        "train_tokens_per_sec": round(steps * data.batch_size * data.context_length / recorder.train_seconds),
        "batch": data.batch_size,
        "context": data.context_length,
        "compile": options.compile,
        "device": device_name(cli),
        "commit": commit(),
        "run_dir": cli.trainer.log_dir,
    }


def table(rows: list[dict]) -> str:
    header = (
        "| family | params | steps | best val loss | val loss <= 1.50 at | fit time | tokens/s | device |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        reached = (
            f"step {row['reached_1.50_step']}, {row['reached_1.50_seconds']} s"
            if row["reached_1.50_step"]
            else "no"
        )
        params = f"{int(row['params']) / 1e6:.2f}M"
        lines.append(
            f"| {row['family']} | {params} | {row['steps']} | {row['best_val_loss']} | {reached} "
            f"| {row['fit_seconds']} s | {row['train_tokens_per_sec']} | {row['device']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--preset", nargs="*", default=None, help="trainer presets (default: gpu-bf16 on GPUs)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--max-steps", type=int, default=None, help="shorter runs (smoke checks)")
    parser.add_argument(
        "--corpus", default=None, help="another built-in corpus (pydoc_topics for smoke checks)"
    )
    parser.add_argument("--context", type=int, default=None, help="another context length")
    options, extra = parser.parse_known_args()
    options.extra = extra  # any other arguments go to every run's CLI
    if options.preset is None:
        options.preset = [REPO / "configs" / "trainer" / "gpu-bf16.yaml"] if options.device == "cuda" else []
    torch.set_float32_matmul_precision("high")
    results = options.out / "shakespeare.csv"
    done = {row["family"] for row in finished_rows(results)}
    for family in options.families:
        if family in done:
            continue
        append_row(results, FIELDS, run_one(family, options))
    markdown = table(finished_rows(results))
    (options.out / "shakespeare.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
