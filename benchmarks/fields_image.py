"""The neural-field families fit one offline image: PSNR, and training time to reach PSNR levels.

Every family trains from its recipe in configs/fields/ on the same image (scikit-image's cameraman by
default, resized), with every pixel in every step (full batch) and the recipe's optimiser, made
smaller for a CPU by the overrides below (the same width for the MLP-based families). A validation every
``--val-every`` steps renders the whole image; the table gives the final and best PSNR and the training
seconds (time inside training steps, validation and FreSh's selection excluded, the selection timed on
its own) at which each PSNR level was first reached.

    python benchmarks/fields_image.py --out runs/fields_image                  # CPU protocol, ~15 min
    python benchmarks/fields_image.py --out runs/fields_image --families siren siren_fresh --steps 200

Finished families (a row in the CSV) are skipped when the command is run again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters
from mlplab.tools.provenance import append_row, code_version, device_label, read_rows

REPO = Path(__file__).resolve().parents[1]

#: family -> (recipe, overrides of the CPU protocol)
FAMILIES = {
    "ffn": ("ffn_astronaut", ["--model.backbone.embed_dim=128", "--model.backbone.num_frequencies=128"]),
    "cam": ("cam_astronaut", ["--model.backbone.embed_dim=128", "--model.backbone.num_frequencies=128"]),
    "siren": ("siren_camera", ["--model.backbone.embed_dim=128"]),
    "siren_fresh": ("siren_fresh_camera", ["--model.backbone.embed_dim=128"]),
    "rbfnet": (
        "rbfnet_astronaut",
        [
            "--model.backbone.num_levels=6",
            "--model.backbone.base_resolution=8",
            "--model.backbone.max_resolution=128",
        ],
    ),  # fmt: skip
}
FIELDS = ["family", "params", "steps", "final_psnr", "best_psnr", "seconds_to", "train_seconds",
          "fresh_seconds", "fresh_scale", "image", "device", "threads", "commit"]  # fmt: skip


class TrainingClock(L.Callback):
    """Seconds spent in training steps, and the PSNR of every validation against them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.curve: list[tuple[int, float, float]] = []
        self._started = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._started

    def on_validation_end(self, trainer, pl_module) -> None:
        psnr = trainer.callback_metrics.get("val/psnr")
        if psnr is not None and not trainer.sanity_checking:
            self.curve.append((trainer.global_step, self.seconds, float(psnr)))


def run_one(family: str, options: argparse.Namespace) -> dict:
    recipe, overrides = FAMILIES[family]
    args = [f"--config={REPO / 'configs' / 'fields' / f'{recipe}.yaml'}", *overrides]
    args += [f"--data.image={options.image}", f"--data.size={options.size}", "--data.train_stride=1",
             f"--data.batch_size={options.size**2 * 2}", f"--trainer.max_steps={options.steps}",
             f"--trainer.check_val_every_n_epoch={options.val_every}", "--trainer.num_sanity_val_steps=0",
             f"--trainer.default_root_dir={options.out / family}", "--trainer.enable_progress_bar=false",
             "--trainer.enable_model_summary=false", "--model.log_images=false", "--trainer.accelerator=cpu",
             f"--seed_everything={options.seed}"]  # fmt: skip
    cli = MLPLabCLI(args=args, run=False)
    clock = TrainingClock()
    cli.trainer.callbacks.append(clock)
    started = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    print(f"{family}: fit took {time.perf_counter() - started:.0f} s", flush=True)
    reached = {}
    for level in options.levels:
        hit = next((seconds for _, seconds, psnr in clock.curve if psnr >= level), None)
        reached[f"{level:g}"] = None if hit is None else round(hit, 1)
    scale = getattr(cli.model.backbone, "frequency_scale", None)
    return {
        "family": family,
        "params": count_parameters(cli.model.backbone)[0],
        "steps": cli.trainer.global_step,
        "final_psnr": round(clock.curve[-1][2], 2),
        "best_psnr": round(max(p for _, _, p in clock.curve), 2),
        "seconds_to": json.dumps(reached),
        "train_seconds": round(clock.seconds, 1),
        "fresh_seconds": round(cli.model.fresh_seconds, 1),
        "fresh_scale": "" if scale is None or family != "siren_fresh" else f"{float(scale):g}",
        "image": f"{options.image} {tuple(cli.model.image_shape)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of the runs, results.csv and results.md"
    )
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--image", default="camera", help="a bundled image's name or a file")
    parser.add_argument("--size", type=int, default=128, help="shorter side of the fitted image")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--val-every", type=int, default=20, help="steps between validations")
    parser.add_argument(
        "--levels", type=float, nargs="+", default=[25.0, 30.0, 35.0], help="PSNR levels (dB)"
    )
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    table = options.out / "results.csv"
    done = {row["family"] for row in read_rows(table)}
    device = device_label()
    for family in options.families:
        if family in done:
            continue
        row = run_one(family, options) | {"device": device, "threads": torch.get_num_threads(),
                                           "commit": code_version(REPO)}  # fmt: skip
        append_row(table, FIELDS, row)
        print(row, flush=True)
    rows = read_rows(table)
    lines = ["| family | params | steps | final PSNR | best PSNR | training s to " + " / ".join(
        f"{level:g}" for level in options.levels) + " dB | training s | FreSh s (scale) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        reached = json.loads(r["seconds_to"])
        to = " / ".join("—" if v is None else f"{v}" for v in reached.values())
        fresh = f"{r['fresh_seconds']} ({r['fresh_scale']})" if r["fresh_scale"] else "—"
        lines.append(f"| {r['family']} | {int(r['params']):,} | {r['steps']} | {r['final_psnr']} "
                     f"| {r['best_psnr']} | {to} | {r['train_seconds']} | {fresh} |")  # fmt: skip
    (options.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
