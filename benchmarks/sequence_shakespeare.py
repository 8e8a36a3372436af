"""Every sequence family on Tiny Shakespeare at nanoGPT's budget: loss, time, tokens/s, memory, FLOPs.

Runs ``configs/text/<family>_shakespeare.yaml`` through mlplab's CLI exactly as a user would (all
about 10.7M parameters, nanoGPT's recipe: 5000 steps of 64 x 256 characters), composed with a trainer
preset (``configs/trainer/gpu-bf16.yaml`` on a GPU). Each run records its parameter count, the best
and last validation loss, the step and wall time at which validation loss first reached 1.50 (the
bar for nanoGPT's Transformer, which reports 1.4697 after about 3 minutes on an A100), the whole fit's
wall time, the training tokens/s (validation excluded), the peak memory (CUDA: the most memory
allocated by tensors; CPU: the process's peak resident set, about 1 GiB of it the process itself), the
training FLOPs per token (forward and backward; matrix products, convolutions and attention only: the
scans' recurrences, norms and activations are elementwise and not counted; GatedConv's FFT is not
counted) and the sequence-mixer backend used (``--backend``: ``auto``, ``torch`` or a kernel library
for the families that have one, see ``mlplab.models.sequence.backends``). Results:
``<out>/shakespeare.csv`` (one row per family and backend; finished runs are skipped when the command
is repeated) and a markdown table. Arguments the script does not know go to every run's command line
(e.g. ``--trainer.limit_val_batches=1``).

    python benchmarks/sequence_shakespeare.py --out /work/runs/sequence/shakespeare        # all families
    python benchmarks/sequence_shakespeare.py --out runs/shakespeare --families transformer --compile
    python benchmarks/sequence_shakespeare.py --out runs/shakespeare --families mamba gla --backend torch
    python benchmarks/sequence_shakespeare.py --out /tmp/smoke --device cpu --corpus pydoc_topics \\
        --max-steps 4 --context 32 --families transformer \\
        --trainer.limit_val_batches=1 --model.init_args.sample_length=4          # smoke check
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

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

FAMILIES = ["transformer", "mamba", "gla", "hopfield", "gam", "gated_conv", "transformer_moepp"]
WITH_BACKEND = {"mamba", "gla"}  # families with a backend argument
BACKENDS = ["auto", "torch", "fla", "mamba_ssm"]
BAR = 1.50
FIELDS = ["family", "backend", "backend_used", "params", "steps", "best_val_loss", "last_val_loss",
          "best_val_bpc", "reached_1.50_step", "reached_1.50_seconds", "fit_seconds", "train_tokens_per_sec",
          "peak_memory_gib", "train_flops_per_token", "batch", "context", "compile", "device", "commit",
          "run_dir"]  # fmt: skip


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
    if family in WITH_BACKEND:
        args += [f"--model.backbone.init_args.backend={options.backend}"]
    cli, recorder, seconds = run_recipe(args + options.extra, "val/loss")
    losses = [entry["val/loss"] for entry in recorder.validations]
    reached = next((entry for entry in recorder.validations if entry["val/loss"] <= BAR), None)
    data = cli.datamodule
    steps = cli.trainer.global_step
    return {
        "family": family,
        "backend": options.backend if family in WITH_BACKEND else "-",
        "backend_used": backends(cli),
        "params": parameters(cli),
        "steps": steps,
        "best_val_loss": round(min(losses), 4) if losses else "",
        "last_val_loss": round(losses[-1], 4) if losses else "",
        "best_val_bpc": round(min(losses) / math.log(2), 4) if losses else "",
        "reached_1.50_step": reached["step"] if reached else "",
        "reached_1.50_seconds": round(reached["seconds"], 1) if reached else "",
        "fit_seconds": round(seconds, 1),
        "train_tokens_per_sec": round(steps * data.batch_size * data.context_length / recorder.train_seconds),
        "peak_memory_gib": recorder.peak_memory_gib,
        "train_flops_per_token": flops_per_token(cli, data.batch_size * data.context_length),
        "batch": data.batch_size,
        "context": data.context_length,
        "compile": options.compile,
        "device": device_name(cli),
        "commit": commit(),
        "run_dir": cli.trainer.log_dir,
    }


def table(rows: list[dict]) -> str:
    header = (
        "| family | backend | params | steps | best val loss | val loss <= 1.50 at | fit time | tokens/s "
        "| peak memory | training FLOPs/token | device |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        reached = (
            f"step {row['reached_1.50_step']}, {row['reached_1.50_seconds']} s"
            if row["reached_1.50_step"]
            else "no"
        )
        params = f"{int(row['params']) / 1e6:.2f}M"
        counted = row["train_flops_per_token"]
        flops = f"{int(counted) / 1e6:.1f}M" if counted else "not counted"
        backend = f"{row['backend']}: {row['backend_used']}"
        lines.append(
            f"| {row['family']} | {backend} | {params} | {row['steps']} | {row['best_val_loss']} "
            f"| {reached} | {row['fit_seconds']} s | {row['train_tokens_per_sec']} "
            f"| {row['peak_memory_gib']} GiB | {flops} | {row['device']} |"
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
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="of the families that have one")
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
    done = {(row["family"], row["backend"]) for row in read_rows(results)}
    for family in options.families:
        if (family, options.backend if family in WITH_BACKEND else "-") in done:
            continue
        append_row(results, FIELDS, run_one(family, options))
    markdown = table(read_rows(results))
    (options.out / "shakespeare.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
