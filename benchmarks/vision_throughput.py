"""Training throughput of the token-mixing families at CIFAR size (bf16, compiled), and the MLP-Mixer bar.

Mirrors ``benchmarks/throughput.py`` (and reuses its random-image data and both timed loops) for the
vision families of issue 3:

* ``--mode families`` (default): the CIFAR-10 recipes (``configs/image/*_cifar10*.yaml``) of every
  registered family (``mlplab models``), their backbones trained through mlplab's fit loop with
  ``configs/trainer/gpu-bf16.yaml`` and ``--compile.enabled true``, on GPU-resident random 32×32 images;
  samples/s timed after warm-up steps (compilation included in neither).
* ``--mode mixer``: timm's MLP-Mixer (img 32, patch 4, dim 256, 8 blocks) at batch 1024, mlplab's fit loop
  against a hand-written compiled bf16 loop on the same GPU (AdamW, the same data and precision). Bar
  (issue 3): mlplab >= 1.0x the hand-written loop (one H100 run of the hand-written loop: about 69k
  samples/s).

    python benchmarks/vision_throughput.py --mode mixer --out runs/vision_throughput.jsonl
    python benchmarks/vision_throughput.py --mode families --out runs/vision_throughput.jsonl
    python benchmarks/vision_throughput.py --mode families --small --device cpu --no-compile   # tiny variants
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import lightning as L
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import IMAGE_SHAPE, handwritten_samples_per_sec, mlplab_samples_per_sec  # noqa: E402

from mlplab.models import MlpMixer, count_parameters, registry  # noqa: E402
from mlplab.tools.provenance import code_version  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs" / "image"
#: The MLP-Mixer of the throughput bar: img 32, patch 4, dim 256, 8 blocks.
MIXER_ARGS = {"patch_size": 4, "depth": 8, "embed_dim": 256}


def cifar10_recipes() -> dict[str, list[Path]]:
    """The CIFAR-10 recipes of every registered vision family, by family name (from the registry)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(RECIPES.glob("*_cifar10*.yaml")):
        backbone = yaml.safe_load(path.read_text())["model"]["init_args"]["backbone"]
        spec = registry.find(backbone["class_path"])
        if spec is not None:
            found.setdefault(spec.name, []).append(path)
    return found


FAMILIES = list(cifar10_recipes())


def recipe_backbone(path: Path) -> tuple[str, dict, str]:
    """(backbone class path, its arguments, task) of a recipe."""
    model = yaml.safe_load(path.read_text())["model"]
    backbone = model["init_args"]["backbone"]
    return backbone["class_path"], dict(backbone.get("init_args", {})), model["class_path"]


def environment(options: argparse.Namespace) -> dict:
    return {
        "device": torch.cuda.get_device_name() if options.device == "cuda" else "cpu",
        "compile": options.compile,
        "steps": options.steps,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "commit": code_version(REPO),
    }


def build_count(backbone: str, args: dict, task: str) -> int:
    """Parameters of the recipe's backbone at CIFAR size, built on the meta device."""
    family = registry.get(backbone).cls
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
    parser.add_argument("--small", action="store_true", help="the families' tiny variants, for a smoke check")
    parser.add_argument("--out", type=Path, default=None, help="append each result as a JSON line")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/mlplab-vision-throughput"))
    options = parser.parse_args()
    torch.set_float32_matmul_precision("high")

    results = []
    if options.mode == "mixer":
        batch_size = options.batch_size or 1024
        args = {"depth": 1, "embed_dim": 32, "patch_size": 4} if options.small else MIXER_ARGS
        mixer = MlpMixer(IMAGE_SHAPE, (10,), **args)
        handwritten = handwritten_samples_per_sec(options, mixer, "ImageClassification", batch_size)
        backbone = "mlplab.models.MlpMixer"
        ours = mlplab_samples_per_sec(options, backbone, args, "ImageClassification", batch_size)
        results.append(
            {
                "mode": "mixer",
                "backbone": f"MlpMixer({', '.join(f'{k}={v}' for k, v in args.items())})",
                "params": build_count("mlplab.models.MlpMixer", args, "ImageClassification"),
                "batch_size": batch_size,
                "handwritten_samples_per_sec": round(handwritten, 1),
                "mlplab_samples_per_sec": round(ours, 1),
                "ratio": round(ours / handwritten, 3),
            }
        )
    else:
        recipes = cifar10_recipes()
        for family, path in [(name, path) for name in options.families for path in recipes[name]]:
            backbone, args, task = recipe_backbone(path)
            if options.small:  # the registry's tiny variant instead of the recipe's backbone
                args = registry.variant_args(family, "tiny")
            restoration = task == "ImageRestoration"
            batch_size = options.restoration_batch_size if restoration else (options.batch_size or 512)
            results.append(
                {
                    "mode": "families",
                    "family": family,
                    "recipe": path.stem,
                    "task": task,
                    "params": build_count(backbone, args, task),
                    "batch_size": batch_size,
                    "mlplab_samples_per_sec": round(
                        mlplab_samples_per_sec(options, backbone, args, task, batch_size), 1
                    ),
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
