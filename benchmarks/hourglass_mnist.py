"""The Hourglass paper's MNIST comparison at matched parameter budgets, through mlplab's CLI.

Three tasks (denoising sigma=0.25, super-resolution x2, generative classification) x two designs
(hourglass, conventional) x three parameter budgets. Every run trains with the configs in
configs/image/ (AdamW, linear decay to zero, batch 128), keeps the best-validation checkpoint and
reports its test PSNR. Results go to a CSV and a markdown table.

    python benchmarks/hourglass_mnist.py --out runs/hourglass_mnist --source-split test   # 8k/1k/1k
    python benchmarks/hourglass_mnist.py --out runs/hourglass_mnist --preset configs/trainer/gpu-bf16.yaml

Finished runs (a row in the CSV) are skipped when the command is run again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters
from mlplab.tools.provenance import append_row, code_version, device_label, read_rows

REPO = Path(__file__).resolve().parents[1]

# (design, budget label, backbone arguments) per input width: same-size tasks (784 -> 784) and
# super-resolution (196 -> 784). Shapes from the paper's grids (d_z in 785/1150, d_h in 115..1048).
SAME_SIZE = [
    ("hourglass", "B1", {"embed_dim": 785, "mlp_dim": 160, "depth": 5}),  # 2.49M
    ("conventional", "B1", {"mlp_dim": 785, "depth": 1}),  # 2.46M (the smallest conventional MLP)
    ("hourglass", "B2", {"embed_dim": 785, "mlp_dim": 350, "depth": 6}),  # 4.53M (paper: genclass 32.83 dB)
    ("conventional", "B2", {"mlp_dim": 1048, "depth": 2}),  # 4.52M
    ("hourglass", "B3", {"embed_dim": 1150, "mlp_dim": 270, "depth": 7}),  # 6.15M
    ("conventional", "B3", {"mlp_dim": 785, "depth": 4}),  # 6.15M (paper: genclass 32.64 dB)
]
SUPER_RESOLUTION = [
    ("hourglass", "B1", {"embed_dim": 785, "mlp_dim": 115, "depth": 7}),  # 2.03M
    ("conventional", "B1", {"embed_dim": 784, "mlp_dim": 785, "depth": 1}),  # 2.00M
    ("hourglass", "B2", {"embed_dim": 785, "mlp_dim": 350, "depth": 6}),  # 4.07M
    ("conventional", "B2", {"embed_dim": 784, "mlp_dim": 1048, "depth": 2}),  # 4.05M
    ("hourglass", "B3", {"embed_dim": 1150, "mlp_dim": 290, "depth": 7}),  # 5.80M
    ("conventional", "B3", {"embed_dim": 784, "mlp_dim": 785, "depth": 4}),  # 5.69M
]
TASKS = {"denoise": SAME_SIZE, "sr": SUPER_RESOLUTION, "genclass": SAME_SIZE}
FIELDS = ["task", "design", "budget", "shape", "params", "epochs", "best_val_psnr", "test_psnr", "test_ssim",
          "test_psnr_input", "seconds", "device", "commit", "run_dir"]  # fmt: skip


def shape_label(args: dict) -> str:
    return f"{args.get('embed_dim', 784)}/{args['mlp_dim']}/L{args['depth']}"


def run_one(task: str, design: str, args: dict, options: argparse.Namespace, run_dir: Path) -> dict:
    recipe = REPO / "configs" / "image" / f"{design}_mnist_{task}.yaml"
    cli_args = [f"--config={preset}" for preset in options.preset] + [f"--config={recipe}"]
    cli_args += [f"--model.backbone.{key}={value}" for key, value in args.items()]
    cli_args += [
        f"--data.source_split={options.source_split}",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--seed_everything={options.seed}",
    ]
    if options.source_split == "test":
        cli_args += ["--data.num_val=1000", "--data.num_test=1000"]
    if options.epochs:
        cli_args.append(f"--trainer.max_epochs={options.epochs}")
    cli = MLPLabCLI(args=cli_args, run=False)
    start = time.monotonic()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.monotonic() - start
    best = cli.trainer.checkpoint_callback
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    return {
        "params": count_parameters(cli.model.backbone)[0],
        "epochs": cli.trainer.max_epochs,
        "best_val_psnr": round(float(best.best_model_score), 3),
        "test_psnr": round(results["test/psnr"], 3),
        "test_ssim": round(results["test/ssim"], 4),
        "test_psnr_input": round(results.get("test/psnr_input", float("nan")), 3),
        "seconds": round(seconds, 1),
        "run_dir": str(Path(cli.trainer.log_dir).relative_to(options.out)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of the runs, results.csv and results.md"
    )
    parser.add_argument("--source-split", default="train", choices=["train", "test"])
    parser.add_argument("--preset", action="append", default=[], help="trainer preset config(s) to compose")
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's max_epochs")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    table = options.out / "results.csv"
    done = {(r["task"], r["design"], r["budget"]) for r in read_rows(table)}
    commit = code_version(REPO)
    device = device_label()
    for task in options.tasks:
        for design, budget, args in TASKS[task]:
            if (task, design, budget) in done:
                continue
            print(f"== {task} {design} {budget} {shape_label(args)}", flush=True)
            row = {"task": task, "design": design, "budget": budget, "shape": shape_label(args)}
            row |= run_one(task, design, args, options, options.out / f"{task}_{design}_{budget}")
            row |= {"device": device, "commit": commit}
            append_row(table, FIELDS, row)
            print(row, flush=True)
    rows = read_rows(table)
    columns = "task|budget|design|shape d_z/d_h/L|params|epochs|best val PSNR|test PSNR|test SSIM".split("|")
    lines = ["| " + " | ".join(columns) + " |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["task"], r["budget"], r["design"])):
        lines.append(
            f"| {r['task']} | {r['budget']} | {r['design']} | {r['shape']} | {int(r['params']) / 1e6:.2f}M | "
            f"{r['epochs']} | {r['best_val_psnr']} | {r['test_psnr']} | {r['test_ssim']} |"
        )
    (options.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
