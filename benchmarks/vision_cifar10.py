"""CIFAR-10 accuracy of the token-mixing families: parameters, test accuracy and training time in one table.

Two protocols, each a set of recipes under ``configs/image/``:

* ``ninformer``: the NiNformer / Activator papers' protocol (32×32, patch 4, width 256, 4 blocks, Adam at
  1e-3, batch 128, 100 epochs, no augmentation) for Activator, NiNformer and MLP-Mixer. The Activator
  paper reports 73.2% for Activator.
* ``shared``: mlplab's shared recipe (AdamW, warm-up and linear decay, label smoothing, crops and flips,
  batch 128, 100 epochs) for every other family.

Every recipe trains through the CLI as a user would (``configs/trainer/gpu-bf16.yaml`` composed with the
recipe), then its best validation checkpoint is tested. The JPEG copy of CIFAR-10 is used when it is found
(``--jpeg``, by default ``$MLPLAB_DATA/cifar10-jpg.tar.gz``), else torchvision's CIFAR-10 files.

    python benchmarks/vision_cifar10.py --protocol all --out runs/vision_cifar10.jsonl
    python benchmarks/vision_cifar10.py --recipes activator_cifar10 --epochs 10        # a shorter run
    python benchmarks/vision_cifar10.py --recipes activator_cifar10 --smoke            # CPU smoke check

Each result is a JSON line (recipe, family, parameters, test accuracy, training seconds, epochs, device,
commit); the markdown table of all results is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import yaml

from mlplab.cli import MLPLabCLI
from mlplab.models import count_parameters
from mlplab.tools.provenance import code_version

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs" / "image"
PROTOCOLS = {
    "ninformer": ["activator_cifar10", "ninformer_cifar10", "mlp_mixer_cifar10"],
    "shared": [
        "resmlp_cifar10",
        "gmlp_cifar10",
        "poolformer_cifar10",
        "convit_cifar10",
        "raft_mlp_cifar10",
        "strip_mlp_cifar10",
        "ms_mlp_cifar10",
        "dynamic_spectrum_mixer_cifar10",
        "efficient_mod_cifar10",
        "spartan_cifar10",
    ],
}


def default_jpeg() -> Path | None:
    folder = os.environ.get("MLPLAB_DATA")
    archive = Path(folder) / "cifar10-jpg.tar.gz" if folder else None
    return archive if archive is not None and archive.is_file() else None


def run_recipe(recipe: str, options: argparse.Namespace) -> dict:
    """Train one recipe, test its best checkpoint; return the table row."""
    config = RECIPES / f"{recipe}.yaml"
    args = []
    if options.device == "cuda":
        args += ["--config", str(REPO / "configs" / "trainer" / "gpu-bf16.yaml")]
    args += ["--config", str(config)]
    if options.device != "cuda":
        args += ["--trainer.accelerator=cpu"]
    if options.jpeg is not None:
        args += ["--data=ImageFolderDataModule", f"--data.root={options.jpeg}"]
    if options.epochs is not None:
        args += [f"--trainer.max_epochs={options.epochs}"]
    if options.compile:
        args += ["--compile.enabled=true"]
    args += [f"--trainer.default_root_dir={options.root / recipe}", "--trainer.enable_progress_bar=false"]
    if options.smoke:
        args += [
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--trainer.limit_test_batches=1",
            "--data.batch_size=8",
        ]
        if options.jpeg is not None:
            args += ["--data.max_images_per_class=10", "--data.num_val=20"]
    args += options.extra
    cli = MLPLabCLI(args=args, run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    tested = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    family = yaml.safe_load(config.read_text())["model"]["init_args"]["backbone"]["class_path"]
    return {
        "recipe": recipe,
        "family": family.rsplit(".", 1)[-1],
        "params": count_parameters(cli.model.backbone)[0],
        "test_acc": round(100 * float(tested[0]["test/acc"]), 2),
        "train_seconds": round(seconds, 1),
        "epochs": cli.trainer.current_epoch,
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| recipe | family | parameters | test accuracy (%) | training time (s) | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['recipe']} | {row['family']} | {row['params']:,} | {row['test_acc']:.2f} | "
            f"{row['train_seconds']:.0f} | {row['epochs']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", choices=["ninformer", "shared", "all"], default="all")
    parser.add_argument("--recipes", nargs="*", default=None, help="recipe names instead of a protocol")
    parser.add_argument(
        "--jpeg", type=Path, default=default_jpeg(), help="the CIFAR-10 JPEG archive or folder"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' epochs")
    parser.add_argument("--compile", action="store_true", help="compile the backbones (torch.compile)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="2 steps of 8 images per recipe, for a check")
    parser.add_argument("--root", type=Path, default=Path("runs/vision_cifar10"), help="run directories")
    parser.add_argument("--out", type=Path, default=None, help="append each result as a JSON line")
    parser.add_argument("extra", nargs="*", help="more CLI arguments for every recipe (after --)")
    options = parser.parse_args()
    torch.set_float32_matmul_precision("high")

    if options.recipes:
        recipes = options.recipes
    elif options.protocol == "all":
        recipes = PROTOCOLS["ninformer"] + PROTOCOLS["shared"]
    else:
        recipes = PROTOCOLS[options.protocol]
    commit = code_version(REPO)
    device = torch.cuda.get_device_name() if options.device == "cuda" else "cpu"
    rows = []
    for recipe in recipes:
        row = run_recipe(recipe, options)
        row.update(device=device, commit=commit, data=str(options.jpeg or "CIFAR10DataModule"))
        rows.append(row)
        print(json.dumps(row), flush=True)
        if options.out is not None:
            options.out.parent.mkdir(parents=True, exist_ok=True)
            with open(options.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
