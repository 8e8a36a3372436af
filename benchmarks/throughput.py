"""Training throughput: mlplab's fit loop against a hand-written compiled bf16 PyTorch loop.

Both loops train the same model on the same GPU-resident uint8 images with the same batch, optimiser
(AdamW, fused: ``mlplab.optim.build_optimizer``'s default) and precision (bf16 autocast, fp32
weights), each compiled with ``torch.compile``. mlplab runs through ``MLPLabCLI`` with the
``configs/trainer/gpu-bf16.yaml`` preset and ``--compile.enabled true``, exactly as a user would;
the hand-written loop is the shortest fast loop (index a random batch, convert, degrade, forward,
backward, step). Samples/s are timed after warm-up steps (compilation
included in neither), between two device synchronisations.

    python benchmarks/throughput.py --model hourglass --batch-size 4096    # Hourglass 3546/270/L5, 3072-d
    python benchmarks/throughput.py --model bmlp --batch-size 4096         # B-MLP B-6/Wi-1024
    python benchmarks/throughput.py --model hourglass --small --device cpu --no-compile   # smoke check

Bar (issue 2): mlplab >= 0.9x the hand-written loop for both models at batch 4096 on an H100.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from mlplab.cli import MLPLabCLI
from mlplab.data import ImageDataModule
from mlplab.models import BottleneckMLP, HourglassMLP, count_parameters
from mlplab.tools.provenance import code_version

REPO = Path(__file__).resolve().parents[1]
IMAGE_SHAPE = (3, 32, 32)
NOISE_STD = 0.25


def backbone_spec(model: str, small: bool) -> tuple[type, dict, str]:
    """(family, its arguments, task) of a benchmarked model."""
    if model == "hourglass":
        args = (
            {"embed_dim": 256, "mlp_dim": 32, "depth": 2}
            if small
            else {"embed_dim": 3546, "mlp_dim": 270, "depth": 5}
        )
        return HourglassMLP, args, "ImageRestoration"
    args = {"embed_dim": 64, "depth": 2} if small else {"embed_dim": 1024, "depth": 6}
    return BottleneckMLP, args, "ImageClassification"


@functools.lru_cache(maxsize=1)  # both loops of a comparison train on the same images
def random_images(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, *IMAGE_SHAPE), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, 10, (count,), generator=generator)


class RandomImages(ImageDataModule):
    """The benchmark's data as an mlplab DataModule: random uint8 images, 10 classes."""

    image_shape = IMAGE_SHAPE
    num_classes = 10
    has_test_split = False

    def __init__(self, count: int = 65536, **kwargs):
        super().__init__(num_val=16, num_test=16, **kwargs)
        self.count = count

    def prepare_data(self) -> None:
        """Nothing to download."""

    def load_split(self, split):
        return random_images(self.count)


class StepTimer(L.Callback):
    """Wall time between the end of warm-up step ``warmup`` and the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = self.end = 0.0
        self.steps = 0

    def _sync(self, trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self._sync(trainer)
            self.start = time.perf_counter()
        elif trainer.global_step > self.warmup:
            self.steps += 1

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.end = time.perf_counter()


def yaml_value(value: object) -> str:
    """``value`` as YAML the CLI parses back to the same value (``1.0e-05``, not ``1e-05``, a string)."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()


def mlplab_samples_per_sec(
    options: argparse.Namespace, backbone: str, args: dict, task: str, batch_size: int
) -> float:
    """Samples/s of mlplab's fit loop, configured as a user would (CLI, trainer preset, compile flag).

    Args:
        options: The command line (``device``, ``compile``, ``images``, ``warmup``, ``steps``, ``scratch``).
        backbone: Class path of the family (a name exported by ``mlplab.models``, or a dotted path).
        args: The family's arguments.
        task: ``ImageClassification`` or ``ImageRestoration`` (denoising).
        batch_size: Images per step.
    """
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
        f"--data={RandomImages.__module__}.RandomImages",
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


def handwritten_samples_per_sec(
    options: argparse.Namespace, model: nn.Module, task: str, batch_size: int
) -> float:
    """Samples/s of the shortest fast PyTorch loop training ``model`` on the same data and precision.

    Args:
        options: The command line (``device``, ``compile``, ``images``, ``warmup``, ``steps``).
        model: The network, built for ``IMAGE_SHAPE``.
        task: ``ImageClassification`` (cross-entropy on normalised images) or ``ImageRestoration``
            (MSE denoising at ``NOISE_STD``).
        batch_size: Images per step.
    """
    device = torch.device(options.device)
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # as mlplab builds it
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
            if task == "ImageRestoration":
                noisy = (x + NOISE_STD * torch.randn_like(x)).clamp_(0, 1)
                loss = F.mse_loss(forward(noisy).float(), x)
            else:
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["hourglass", "bmlp"], default="hourglass")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=300, help="timed steps")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps first (compilation, caches)")
    parser.add_argument("--images", type=int, default=262144, help="GPU-resident random images")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--small", action="store_true", help="a tiny model, for a smoke check")
    parser.add_argument("--out", type=Path, default=None, help="append the result as a JSON line")
    parser.add_argument(
        "--scratch", type=Path, default=Path("/tmp/mlplab-throughput"), help="trainer root dir"
    )
    options = parser.parse_args()
    torch.set_float32_matmul_precision("high")

    family, args, _ = backbone_spec(options.model, options.small)
    with torch.device("meta"):
        params = count_parameters(
            family(IMAGE_SHAPE, IMAGE_SHAPE if options.model == "hourglass" else (10,), **args)
        )[0]
    family, args, task = backbone_spec(options.model, options.small)
    model = family(IMAGE_SHAPE, IMAGE_SHAPE if task == "ImageRestoration" else (10,), **args)
    handwritten = handwritten_samples_per_sec(options, model, task, options.batch_size)
    ours = mlplab_samples_per_sec(options, family.__name__, args, task, options.batch_size)
    result = {
        "model": options.model,
        "backbone": f"{family.__name__}({', '.join(f'{k}={v}' for k, v in args.items())})",
        "params": params,
        "batch_size": options.batch_size,
        "compile": options.compile,
        "steps": options.steps,
        "handwritten_samples_per_sec": round(handwritten, 1),
        "mlplab_samples_per_sec": round(ours, 1),
        "ratio": round(ours / handwritten, 3),
        "device": torch.cuda.get_device_name() if options.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "lightning": L.__version__,
        "commit": code_version(REPO),
    }
    print(json.dumps(result))
    if options.out is not None:
        with open(options.out, "a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
