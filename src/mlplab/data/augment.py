"""Batched image augmentations that run wherever the batch is (CPU or accelerator).

Each function takes a float batch ``(B, C, H, W)`` and draws an independent transformation per
sample from torch's generator on the batch's device (seeded by ``seed_everything``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_horizontal_flip(images: torch.Tensor, probability: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with ``probability``."""
    flip = torch.rand(images.shape[0], device=images.device) < probability
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` pixels on every side, then crop back to the input size at a random offset."""
    if padding <= 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (batch, 1, 1), device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (batch, 1, 1), device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) + dy
    cols = torch.arange(width, device=images.device).view(1, 1, width) + dx
    samples = torch.arange(batch, device=images.device).view(batch, 1, 1)
    # advanced indexing on (batch, rows, cols) puts the channel axis last
    return padded.permute(0, 2, 3, 1)[samples, rows, cols].permute(0, 3, 1, 2)


def random_resized_crop(
    images: torch.Tensor,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Crop a random box of area fraction in ``scale`` and aspect ratio in ``ratio``; resize it back.

    The same distribution as torchvision's ``RandomResizedCrop`` (area uniform, log-ratio uniform),
    with boxes clipped to the image instead of re-drawn; bilinear resampling via ``grid_sample``.
    """
    batch = images.shape[0]
    device = images.device
    area = torch.empty(batch, device=device).uniform_(*scale)
    log_ratio = torch.empty(batch, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio)
    box_w = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image width / height
    box_h = torch.sqrt(area / aspect).clamp(max=1.0)
    center_x = (torch.rand(batch, device=device) * 2 - 1) * (1 - box_w)  # keep the box inside [-1, 1]
    center_y = (torch.rand(batch, device=device) * 2 - 1) * (1 - box_h)
    theta = torch.zeros(batch, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0] = box_w
    theta[:, 0, 2] = center_x
    theta[:, 1, 1] = box_h
    theta[:, 1, 2] = center_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def flip_copies(images: torch.Tensor, labels: torch.Tensor, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The Hourglass paper's deterministic flip augmentation: append flipped copies of the data.

    ``copies=2`` appends the images flipped both horizontally and vertically; ``copies=4`` appends
    the horizontal, the vertical and the double flip (the official code's ``aug_num``).
    """
    if copies == 1:
        return images, labels
    if copies == 2:
        flips = [images.flip(-1).flip(-2)]
    elif copies == 4:
        flips = [images.flip(-1), images.flip(-2), images.flip(-1).flip(-2)]
    else:
        raise ValueError(f"flip copies must be 1, 2 or 4, got {copies}")
    return torch.cat([images, *flips]), labels.repeat(copies)
