"""CPU cost of a training step of every ETTh1 recipe, measured in process CPU time (one thread).

Wall-clock time on a shared machine measures the other jobs as much as the model; the CPU time a
process spends is what the model costs on this CPU. For each recipe ``configs/timeseries/<family>_
etth1_<H>.yaml`` this builds the task exactly as the CLI does, takes one training batch of the recipe's
size, runs a few warm-up steps, then ``--steps`` optimiser steps (forward, backward, Adam update) and
reports CPU seconds per step, training samples per CPU second and the CPU time of one epoch (steps per
epoch × CPU seconds per step; validation excluded).

    python benchmarks/timeseries_step_cost.py --out /work/runs/timeseries/step_cost.csv
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters

REPO = Path(__file__).resolve().parents[1]


def measure(family: str, horizon: int, steps: int, warmup: int) -> dict:
    recipe = REPO / "configs" / "timeseries" / f"{family}_etth1_{horizon}.yaml"
    cli = MLPLabCLI(args=["--config", str(recipe), "--trainer.logger=false"], run=False)
    model, data = cli.model.train(), cli.datamodule
    data.setup("fit")
    loader = data.train_dataloader()
    batch = data.on_after_batch_transfer(next(iter(loader)), 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        history, future, marks, _ = batch
        model.loss(model(history, marks), future).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        step()
    cpu, wall = (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps
    size = len(batch[0])
    return {
        "family": family,
        "horizon": horizon,
        "lookback": data.lookback,
        "batch_size": size,
        "params": count_parameters(model.backbone)[0],
        "cpu_s_per_step": round(cpu, 4),
        "wall_s_per_step": round(wall, 4),
        "samples_per_cpu_s": round(size / cpu, 1),
        "steps_per_epoch": len(loader),
        "cpu_s_per_epoch": round(cpu * len(loader), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument(
        "--families", nargs="+", default=["dlinear", "timemixer", "tsmixer", "tsmixer_google", "patchtst"]
    )
    parser.add_argument("--horizons", nargs="+", type=int, default=[96])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    options = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = [measure(f, h, options.steps, options.warmup) for f in options.families for h in options.horizons]
    options.out.parent.mkdir(parents=True, exist_ok=True)
    with open(options.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(row, flush=True)


if __name__ == "__main__":
    main()
