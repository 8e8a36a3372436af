"""The quickstart written by hand in plain PyTorch: the reference mlplab's small runs are timed against.

It trains what ``configs/quickstart.yaml`` trains, the way a careful researcher would write it without
a framework: the Hourglass MLP 1024/128/L3 (64 -> 1024 stream, bottlenecks of 128, BatchNorm without
affine parameters, ReLU, no biases, sigmoid output; 917,504 parameters) denoising scikit-learn's 8×8
digits (Gaussian noise σ = 0.2, clamped to [0, 1]) with AdamW (lr 1e-3, PyTorch's other defaults)
and a linear decay of the LR to zero over the run, stepped per batch; batch 64, last small batch
dropped, 80 epochs. The data is cut as mlplab's ``DigitsDataModule`` cuts it (a ``RandomState(42)``
permutation: 1,397 / 200 / 200 images). The validation schedule is mlplab's: after every epoch the
200 validation images, with noise drawn from ``eval_seed + batch index``, give the validation loss and
PSNR (the mean of per-image PSNR); the train loss is written to TensorBoard every 10 steps (the
recipe's ``log_every_n_steps``), the validation figures every epoch, and the model and optimiser
state are saved to ``best.pt`` whenever the validation PSNR improves and to ``last.pt`` at the end.

What it does not do that mlplab's run does: SSIM, the noisy input's PSNR, the image grid, the LR,
samples/s and FLOPs/s curves, the resolved config, divergence checks, atomic fsynced checkpoints and
the progress bar. The comparison (``benchmarks/small_runs.py``) charges mlplab for all of them.

    python benchmarks/handwritten_quickstart.py --out /tmp/hand    # about 20 s on one CPU thread
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NOISE_STD = 0.2
EVAL_SEED = 1234


class Block(nn.Module):
    """``z + W2 · ReLU(W1 · BN(z))`` with a narrow bottleneck."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(width, affine=False)
        self.fc1 = nn.Linear(width, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.fc2(F.relu(self.fc1(self.norm(z))))


class Hourglass(nn.Module):
    """The quickstart's Hourglass MLP on flattened 8×8 images."""

    def __init__(self, pixels: int = 64, width: int = 1024, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.lift = nn.Linear(pixels, width, bias=False)
        self.blocks = nn.Sequential(*(Block(width, hidden) for _ in range(depth)))
        self.out = nn.Linear(width, pixels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.blocks(self.lift(x.flatten(1))))).view_as(x)


def digits_splits() -> dict[str, torch.Tensor]:
    """The digits as float images in [0, 1], cut 1,397 / 200 / 200 like ``DigitsDataModule``."""
    from sklearn.datasets import load_digits

    images = np.rint(load_digits().images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    order = np.random.RandomState(42).permutation(len(images))
    images = torch.from_numpy(images).float() / 255
    return {"train": images[order[:1397]], "val": images[order[1397:1597]], "test": images[order[1597:]]}


def noisy(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator)
    return (images + NOISE_STD * noise).clamp_(0, 1)


def psnr_per_image(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    mse = (predictions - targets).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse)


def train(out: Path, epochs: int = 80, batch_size: int = 64, log_every: int = 10) -> float:
    """Train and validate as described above; return the best validation PSNR."""
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    splits = digits_splits()
    model = Hourglass()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train_images = splits["train"]
    steps_per_epoch = len(train_images) // batch_size
    total_steps = max(1, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - min(1.0, step / total_steps))
    out.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out))
    best, step = -math.inf, 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(42 + epoch))
        for batch in range(steps_per_epoch):
            images = train_images[order[batch * batch_size : (batch + 1) * batch_size]]
            loss = F.mse_loss(model(noisy(images)), images)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % log_every == 0:
                writer.add_scalar("train/loss", loss.item(), step)
        model.eval()
        losses, psnrs = [], []
        with torch.no_grad():
            for index, images in enumerate(splits["val"].split(batch_size)):
                inputs = noisy(images, torch.Generator().manual_seed(EVAL_SEED + index))
                predictions = model(inputs)
                losses.append(F.mse_loss(predictions, images) * len(images))
                psnrs.append(psnr_per_image(predictions, images))
        val_loss = float(torch.stack(losses).sum()) / len(splits["val"])
        val_psnr = float(torch.cat(psnrs).mean())
        writer.add_scalar("val/loss", val_loss, step)
        writer.add_scalar("val/psnr", val_psnr, step)
        if val_psnr > best:
            best = val_psnr
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
            torch.save(state, out / "best.pt")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, out / "last.pt")
    writer.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of the TensorBoard events and .pt files"
    )
    parser.add_argument("--epochs", type=int, default=80)
    options = parser.parse_args()
    start = time.perf_counter()
    best = train(options.out, options.epochs)
    print(f"best val/psnr {best:.2f} dB in {time.perf_counter() - start:.1f} s (after imports)")


if __name__ == "__main__":
    main()
