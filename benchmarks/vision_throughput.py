"""Training throughput of the token-mixing families at CIFAR size (bf16, compiled), and the MLP-Mixer bar.

Mirrors ``benchmarks/throughput.py`` (and reuses its random-image DataModule and step timer) for the
vision families of issue 3:

* ``--mode families`` (default): every family's CIFAR-10 recipe (the backbone of
  ``configs/image/<family>_cifar10.yaml``, and MAXIM denoising) trained through mlplab's fit loop with
  ``configs/trainer/gpu-bf16.yaml`` and ``--compile.enabled true``, on GPU-resident random 32×32 images;
  samples/s timed after warm-up steps (compilation included in neither).
* ``--mode mixer``: timm's MLP-Mixer (img 32, patch 4, dim 256, 8 blocks) at batch 1024, mlplab's fit loop
  against a hand-written compiled bf16 loop on the same GPU (AdamW, the same data and precision). Bar
  (issue 3): mlplab >= 1.0x the hand-written loop (one H100 run of the hand-written loop: about 69k
  samples/s).

    python benchmarks/vision_throughput.py --mode mixer --out runs/vision_throughput.jsonl
    python benchmarks/vision_throughput.py --mode families --out runs/vision_throughput.jsonl
    python benchmarks/vision_throughput.py --mode families --small --device cpu --no-compile   # smoke check
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import IMAGE_SHAPE, NOISE_STD, StepTimer, random_images  # noqa: E402

from mlplab.cli import MLPLabCLI  # noqa: E402
from mlplab.models import MlpMixer, count_parameters  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs" / "image"
FAMILIES = [
    "mlp_mixer",
    "resmlp",
    "gmlp",
    "poolformer",
    "convit",
    "raft_mlp",
    "strip_mlp",
    "ms_mlp",
    "ninformer",
    "activator",
    "dynamic_spectrum_mixer",
    "maxim",
]
#: The MLP-Mixer of the throughput bar: img 32, patch 4, dim 256, 8 blocks.
MIXER_ARGS = {"patch_size": 4, "num_blocks": 8, "embed_dim": 256}
#: Smaller versions of the recipes' backbones for a CPU smoke run (``--small``).
SMALL = {
    "mlp_mixer": {"num_blocks": 1, "embed_dim": 32},
    "resmlp": {"num_blocks": 1, "embed_dim": 32},
    "gmlp": {"num_blocks": 1, "embed_dim": 32},
    "poolformer": {"depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8]},
    "convit": {"depth": 1, "num_heads": 2, "head_dim": 8, "local_up_to_layer": 1},
    "raft_mlp": {"dims": [8, 8, 8, 8], "depths": [1, 1, 1, 1]},
    "strip_mlp": {"embed_dim": 16, "layers": [1, 1, 1, 1]},
    "ms_mlp": {"embed_dim": 10, "depths": [1, 1, 1, 1]},
    "ninformer": {"d_model": 16, "d_ffn": 16, "num_layers": 1},
    "activator": {"d_model": 16, "d_ffn": 16, "num_layers": 1},
    "dynamic_spectrum_mixer": {"embed_dim": 8, "depths": [1, 1, 1, 1]},
    "maxim": {"features": 4, "num_groups": 1, "num_bottleneck_blocks": 1, "num_stages": 1},
}


def recipe_backbone(family: str) -> tuple[str, dict, str]:
    """(backbone class path, its arguments, task) of a family's CIFAR-10 recipe."""
    name = f"{family}_cifar10_denoise.yaml" if family == "maxim" else f"{family}_cifar10.yaml"
    model = yaml.safe_load((RECIPES / name).read_text())["model"]
    backbone = model["init_args"]["backbone"]
    return backbone["class_path"], dict(backbone.get("init_args", {})), model["class_path"]


def yaml_value(value: object) -> str:
    """``value`` as YAML the CLI parses back to the same value (``1.0e-05``, not ``1e-05``, a string)."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()


def mlplab_loop(options: argparse.Namespace, backbone: str, args: dict, task: str, batch_size: int) -> float:
    """Samples/s of mlplab's fit loop, configured as a user would (CLI, trainer preset, compile flag)."""
    cli_args = []
    if options.device == "cuda":
        cli_args += [f"--config={REPO / 'configs' / 'trainer' / 'gpu-bf16.yaml'}"]
    else:
        cli_args += ["--trainer.accelerator=cpu"]
    cli_args += [
        f"--compile.enabled={str(options.compile).lower()}",
        f"--model={task}",
        f"--model.backbone={backbone}",
        *[f"--model.backbone.{k}={yaml_value(v)}" for k, v in args.items()],
        "--model.optimizer=torch.optim.AdamW",
        "--model.optimizer.lr=0.0001",
        "--data=throughput.RandomImages",
        f"--data.count={options.images}",
        f"--data.batch_size={batch_size}",
        f"--data.normalize={str(task == 'ImageClassification').lower()}",
        f"--trainer.max_steps={options.warmup + options.steps}",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={options.scratch}",
        "--trainer.enable_model_summary=false",
        "--checkpoint.save_top_k=0",
        "--checkpoint.save_last=false",
    ]
    if task == "ImageRestoration":
        cli_args += ["--model.mode=denoise", f"--model.noise_std={NOISE_STD}", "--model.num_logged_images=0"]
    cli = MLPLabCLI(args=cli_args, run=False)
    timer = StepTimer(options.warmup)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer.steps * batch_size / (timer.end - timer.start)


def handwritten_loop(options: argparse.Namespace, args: dict, batch_size: int) -> float:
    """Samples/s of the shortest fast PyTorch loop training the same MLP-Mixer (as throughput.py's)."""
    device = torch.device(options.device)
    model = MlpMixer(IMAGE_SHAPE, (10,), **args).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if options.compile else model
    images, labels = (t.to(device) for t in random_images(options.images))
    mean = images[:1024].float().div(255).mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
    std = images[:1024].float().div(255).std(dim=(0, 2, 3)).view(1, -1, 1, 1)
    autocast = functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
    batches_per_epoch = options.images // batch_size
    order = torch.randperm(options.images, device=device)

    def step(index: torch.Tensor) -> None:
        x = images[index].float().div_(255)
        with autocast(enabled=options.device == "cuda"):
            loss = F.cross_entropy(forward((x - mean) / std).float(), labels[index])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = 0.0
    for number in range(options.warmup + options.steps):
        position = number % batches_per_epoch
        if position == 0:
            order = torch.randperm(options.images, device=device)
        step(order[position * batch_size : (position + 1) * batch_size])
        if number == options.warmup - 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return options.steps * batch_size / (time.perf_counter() - start)


def environment(options: argparse.Namespace) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {
        "device": torch.cuda.get_device_name() if options.device == "cuda" else "cpu",
        "compile": options.compile,
        "steps": options.steps,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "commit": commit.stdout.strip(),
    }


def build_count(backbone: str, args: dict, task: str) -> int:
    """Parameters of the recipe's backbone at CIFAR size, built on the meta device."""
    import importlib

    module, name = backbone.rsplit(".", 1) if "." in backbone else ("mlplab.models", backbone)
    family = getattr(importlib.import_module(module), name)
    output_shape = IMAGE_SHAPE if task == "ImageRestoration" else (10,)
    with torch.device("meta"):
        return count_parameters(family(IMAGE_SHAPE, output_shape, **args))[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["families", "mixer"], default="families")
    parser.add_argument("--families", nargs="*", default=FAMILIES, choices=FAMILIES)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 1024 (mixer), 512 (families)")
    parser.add_argument("--restoration-batch-size", type=int, default=128, help="MAXIM's batch")
    parser.add_argument("--steps", type=int, default=200, help="timed steps")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (compilation, caches)")
    parser.add_argument("--images", type=int, default=65536, help="GPU-resident random images")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--small", action="store_true", help="tiny backbones, for a smoke check")
    parser.add_argument("--out", type=Path, default=None, help="append each result as a JSON line")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/mlplab-vision-throughput"))
    options = parser.parse_args()
    torch.set_float32_matmul_precision("high")

    results = []
    if options.mode == "mixer":
        batch_size = options.batch_size or 1024
        args = {"num_blocks": 1, "embed_dim": 32, "patch_size": 4} if options.small else MIXER_ARGS
        handwritten = handwritten_loop(options, args, batch_size)
        ours = mlplab_loop(options, "mlplab.models.MlpMixer", args, "ImageClassification", batch_size)
        results.append(
            {
                "mode": "mixer",
                "backbone": f"MlpMixer({', '.join(f'{k}={v}' for k, v in args.items())})",
                "params": build_count("mlplab.models.MlpMixer", args, "ImageClassification"),
                "batch_size": batch_size,
                "handwritten_samples_per_sec": round(handwritten),
                "mlplab_samples_per_sec": round(ours),
                "ratio": round(ours / handwritten, 3),
            }
        )
    else:
        for family in options.families:
            backbone, args, task = recipe_backbone(family)
            if options.small:
                args.update(SMALL[family])
            restoration = task == "ImageRestoration"
            batch_size = options.restoration_batch_size if restoration else (options.batch_size or 512)
            results.append(
                {
                    "mode": "families",
                    "family": family,
                    "backbone": backbone.rsplit(".", 1)[-1],
                    "task": task,
                    "params": build_count(backbone, args, task),
                    "batch_size": batch_size,
                    "mlplab_samples_per_sec": round(mlplab_loop(options, backbone, args, task, batch_size)),
                }
            )
    for result in results:
        result.update(environment(options))
        print(json.dumps(result))
        if options.out is not None:
            options.out.parent.mkdir(parents=True, exist_ok=True)
            with open(options.out, "a") as handle:
                handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
