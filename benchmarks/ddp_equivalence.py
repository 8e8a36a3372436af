"""One process against two (DDP, gloo on the CPU) with the same global batch: metric differences, wall time.

For every case a recipe is trained twice, each run a process of its own started by ``mlplab fit``:
one process with batch 2B, and two processes with batch B (``--trainer.devices 2 --trainer.strategy
ddp``: Lightning starts the second). Both runs' best checkpoints are then tested with one process, and
the 2-process checkpoint also with two, so the table shows what W changes in training (the
difference of the final weights and of the metrics) and what it does not change in evaluation.
Every process gets one thread (``OMP_NUM_THREADS=1``), so two processes use two cores.

    python benchmarks/ddp_equivalence.py --out runs/ddp                    # every case
    python benchmarks/ddp_equivalence.py --out runs/ddp --cases forecasting

Cases: ``forecasting`` (DLinear on ETTh1, lookback and horizon 96, the recipe's 10 epochs with early
stopping; 1 x 50 against 2 x 25, the split that deadlocked before it was cut equal: 8,449 windows),
``image`` (a small MLP-Mixer classifying scikit-learn's digits, 10 epochs; 1 x 64 against 2 x 32),
``text`` (a small Transformer on Tiny Shakespeare, context 64, one epoch of 600 steps of 32 windows;
1 x 32 against 2 x 16). Results go to ``OUT/results.jsonl`` (one line per case) and a Markdown table on
standard output. Needs ``$MLPLAB_DATA`` with ETTh1 and Tiny Shakespeare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
QUIET = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]  # fmt: skip
DUMP = "benchmarks.ddp_equivalence.DumpMetrics"

#: Arguments by case and number of processes: text epochs count batches of batch_size over all processes,
#: so 600 steps of 32 windows are 600 batches of 32 for one process, 1,200 batches of 16 for two.
PER_PROCESSES = {"text": {1: ["--data.batches_per_epoch", "600"], 2: ["--data.batches_per_epoch", "1200"]}}

#: name -> (recipe arguments, per-process batch of the 2-process run, the metric the table leads with)
CASES: dict[str, tuple[list[str], int, str]] = {
    "forecasting": (["--config", str(CONFIGS / "timeseries" / "dlinear_etth1_96.yaml"),
                     "--data.eval_batch_size", "256"], 25, "mse"),
    "image": (["--config", str(CONFIGS / "image" / "mlp_mixer_cifar10.yaml"), "--data", "DigitsDataModule",
               "--model.backbone.depth", "2", "--model.backbone.embed_dim", "64",
               "--model.backbone.proj_drop_rate", "0.0", "--trainer.max_epochs", "10"], 32, "acc"),
    "text": (["--config", str(CONFIGS / "text" / "transformer_shakespeare.yaml"),
              "--data.context_length", "64", "--data.eval_batch_size", "256",
              "--model.backbone.embed_dim", "64", "--model.backbone.depth", "2",
              "--model.backbone.num_heads", "4", "--model.backbone.dropout", "0.0",
              "--model.sample_length", "0", "--trainer.max_epochs", "1",
              "--model.lr_scheduler.warmup_steps", "20"], 16, "loss"),
}  # fmt: skip


class DumpMetrics(L.Callback):
    """Write the run's final metrics, step and training seconds to ``path`` (rank 0), for this script."""

    def __init__(self, path: str = "metrics.json"):
        self.path = path
        self._started = 0.0
        self._train_seconds = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._started = time.monotonic()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._train_seconds = time.monotonic() - self._started

    def _dump(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero:
            metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
            record = {"metrics": metrics, "global_step": trainer.global_step,
                      "world_size": trainer.world_size, "train_seconds": self._train_seconds}  # fmt: skip
            Path(self.path).write_text(json.dumps(record))

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._dump(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._dump(trainer)


def mlplab(args: list[str], dump: Path) -> tuple[dict, float]:
    """Run ``mlplab ARGS`` in a process of its own; what :class:`DumpMetrics` wrote, and the wall seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    command = [sys.executable, "-m", "mlplab", *args, f"--trainer.callbacks+={DUMP}",
               f"--trainer.callbacks.path={dump}"]  # fmt: skip
    began = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(dump.read_text()), seconds


def run_case(name: str, out: Path) -> dict[str, Any]:
    recipe, batch, lead = CASES[name]
    folder = out / name
    runs: dict[str, Any] = {}
    for processes in (1, 2):
        root = folder / f"w{processes}"
        two = ["--trainer.devices", "2", "--trainer.strategy", "ddp"] if processes == 2 else []
        fit = ["fit", *recipe, *QUIET, "--data.batch_size", str(batch * (3 - processes)),
               *PER_PROCESSES.get(name, {}).get(processes, []), "--trainer.default_root_dir", str(root),
               *two]  # fmt: skip
        record, seconds = mlplab(fit, folder / f"fit_w{processes}.json")
        checkpoints = root / "lightning_logs" / "version_0" / "checkpoints"
        runs[f"w{processes}"] = {**record, "wall_seconds": seconds, "checkpoints": checkpoints}
    tests = {}
    for label, trained, processes in (("w1", "w1", 1), ("w2", "w2", 1), ("w2_tested_w2", "w2", 2)):
        two = ["--trainer.devices", "2", "--trainer.strategy", "ddp"] if processes == 2 else []
        test = ["test", *recipe, *QUIET, "--ckpt_path", str(runs[trained]["checkpoints"] / "best.ckpt"),
                "--trainer.default_root_dir", str(folder / f"test_{label}"), *two]  # fmt: skip
        tests[label], _ = mlplab(test, folder / f"test_{label}.json")
    weights = [
        torch.load(runs[w]["checkpoints"] / "last.ckpt", weights_only=False)["state_dict"]
        for w in ("w1", "w2")
    ]
    largest = max(float((weights[0][k].double() - weights[1][k].double()).abs().max()) for k in weights[0])
    scale = max(float(weights[0][k].double().abs().max()) for k in weights[0])
    return {
        "case": name,
        "lead": lead,
        "batch": {"w1": 2 * batch, "w2": batch},
        "steps": {w: runs[w]["global_step"] for w in ("w1", "w2")},
        "wall_seconds": {w: round(runs[w]["wall_seconds"], 1) for w in ("w1", "w2")},
        "train_seconds": {w: round(runs[w]["train_seconds"], 1) for w in ("w1", "w2")},
        "val": {w: {k: v for k, v in runs[w]["metrics"].items() if k.startswith("val/")} for w in runs},
        "test": {label: {k: v for k, v in record["metrics"].items() if k.startswith("test/")}
                 for label, record in tests.items()},
        "max_weight_difference": largest,
        "largest_weight": scale,
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | batch 1 proc. / 2 proc. | steps | test metric: 1 proc. / 2 proc. (difference) | "
        "same checkpoint tested with 2 processes | largest weight difference | "
        "wall s (training s): 1 proc. / 2 proc. |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        key = f"test/{row['lead']}"
        one, two, again = (row["test"][label][key] for label in ("w1", "w2", "w2_tested_w2"))
        lines.append(
            f"| {row['case']} | {row['batch']['w1']} / 2 x {row['batch']['w2']} | {row['steps']['w1']} / "
            f"{row['steps']['w2']} | `{key}` {one:.6f} / {two:.6f} ({two - one:+.2e}) | {again:.6f} "
            f"({again - two:+.1e}) | {row['max_weight_difference']:.2e} (of {row['largest_weight']:.2f}) | "
            f"{row['wall_seconds']['w1']:.0f} ({row['train_seconds']['w1']:.0f}) / "
            f"{row['wall_seconds']['w2']:.0f} ({row['train_seconds']['w2']:.0f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    from mlplab.tools.provenance import code_version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in options.cases:
        row = run_case(name, options.out)
        row["commit"] = code_version(REPO)
        rows.append(row)
        with open(options.out / "results.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
