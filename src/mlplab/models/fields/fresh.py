"""FreSh (frequency shifting): choose an embedding's frequency scale before training, from spectra.

Kania, Mihajlovic, Prokudin, Tabor and Spurek, "FreSh: Frequency Shifting for Accelerated Neural
Representation Learning" (ICLR 2025; official code: the authors' ``FreSh`` repository,
``scripts/find_optimal_config.py`` and ``src/spectum_utils.py``). A neural field learns low frequencies
first; FreSh starts it with an output spectrum like the target's. For each candidate value of the
embedding's frequency scale (SIREN's first omega, the sigma of random Fourier features), the untrained
model's output image is computed for a few random initialisations, and the candidate whose spectrum is
closest to the target's, in the 1-Wasserstein distance, is kept. The cost is a few forward passes
instead of a grid search of trainings.

The spectrum, as the official code computes it: the image (``(C, H, W)``) is resized to a square
(the shorter side, at most 1024, antialiased), the magnitudes of its 2-D DFT are summed over the
channels, the non-redundant half of the frequencies is kept (a mask that drops the conjugate-symmetric
duplicates), and the magnitudes are summed along anti-diagonals of the DFT index, i.e. by ``row +
column`` frequency index; the first entry (the mean, DC) is dropped and the next ``spectrum_size``
kept. The authors recommend 64 for SIREN and 128 for the other embeddings.

The spectrum and the distance equal the official script's (``get_spectrum(resize_to_square(image))``
and ``get_wasserstein``) to float32 rounding: ``benchmarks/fields_official_check.py --fresh``
(docs/results.md).

Deviation: the official scripts evaluate 10 outputs per candidate; ``samples`` sets the number here
(3 by default, to keep the selection within seconds on a CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError

#: The official code's largest side for the spectrum.
MAX_SIDE = 1024


@dataclass
class FreSh:
    """FreSh settings of a neural field (a config section of the Fourier-feature and SIREN families).

    Args:
        candidates: The values of the family's ``frequency_scale`` to choose among.
        spectrum_size: Spectrum entries compared (64 for SIREN, 128 otherwise, as the authors advise).
        samples: Random initialisations of the untrained model per candidate (their distances averaged).
        seed: Seed of those initialisations (the trained model keeps its own initialisation).
    """

    candidates: list[float] = field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 80.0])
    spectrum_size: int = 128
    samples: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.candidates or any(not c > 0 for c in self.candidates):
            raise ConfigError(f"fresh.candidates must be positive frequency scales, got {self.candidates}")
        if self.spectrum_size < 2 or self.samples < 1:
            raise ConfigError(
                "fresh.spectrum_size must be at least 2 and fresh.samples at least 1, "
                f"got {self.spectrum_size} and {self.samples}"
            )


def spectrum_mask(side: int) -> torch.Tensor:
    """The non-redundant frequencies of a ``side × side`` DFT (1 = kept), as the official code's mask."""
    unique = side // 2
    rows = torch.arange(side)[:, None]
    cols = torch.arange(side)[None, :]
    mask = (rows + cols <= side - 1) | ((rows + cols == side) & (rows >= 1) & (rows <= unique))
    mask[1 + unique :, 0] = False
    mask[0, 1 + unique :] = False
    return mask.float()


def image_spectrum(image: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """FreSh's spectrum of an image ``(C, H, W)`` (or ``(H, W)``): see the module docstring.

    Args:
        image: The image.
        size: Entries kept after the DC one; ``None``: all of them.

    Returns:
        Non-negative magnitudes ``(size,)``, by increasing ``row + column`` frequency index.
    """
    if image.ndim == 2:
        image = image[None]
    image = image.float()
    height, width = image.shape[-2:]
    side = min(height, width, MAX_SIDE)
    if (height, width) != (side, side):
        image = F.interpolate(image[None], size=(side, side), mode="bilinear", antialias=True,
                              align_corners=False)[0]  # fmt: skip
    magnitude = torch.fft.fft2(image).abs().sum(0) * spectrum_mask(side).to(image.device)
    index = (
        torch.arange(side, device=image.device)[:, None] + torch.arange(side, device=image.device)
    ).flatten()
    spectrum = torch.zeros(2 * side - 1, device=image.device).index_add_(0, index, magnitude.flatten())
    spectrum = spectrum[1:]
    return spectrum if size is None else spectrum[:size]


def spectrum_distance(u: torch.Tensor, v: torch.Tensor) -> float:
    """1-Wasserstein distance between two spectra seen as distributions over their indices 0, 1, ..."""
    if u.shape != v.shape:
        raise ValueError(f"spectra of different lengths: {tuple(u.shape)} and {tuple(v.shape)}")
    u, v = u.double(), v.double()
    cdf_u = torch.cumsum(u / u.sum(), 0)
    cdf_v = torch.cumsum(v / v.sum(), 0)
    return float((cdf_u - cdf_v)[:-1].abs().sum())


@torch.no_grad()
def render(
    model: nn.Module, coords: torch.Tensor, shape: tuple[int, int, int], chunk: int = 65536
) -> torch.Tensor:
    """The model's image ``(C, H, W)`` at the row-major pixel ``coords`` ``(H W, 2)``."""
    channels, height, width = shape
    outputs = torch.cat([model(coords[i : i + chunk]).float() for i in range(0, len(coords), chunk)])
    return outputs.view(height, width, channels).permute(2, 0, 1)


def select_frequency_scale(
    build: Callable[[], nn.Module], target: torch.Tensor, coords: torch.Tensor, fresh: FreSh
) -> tuple[float, dict[float, float]]:
    """FreSh: the candidate frequency scale whose untrained outputs have the spectrum nearest the target's.

    Args:
        build: Builds a freshly initialised copy of the family (with a ``set_frequency_scale`` method).
        target: The target image ``(C, H, W)``.
        coords: The coordinates of its pixels, row-major, ``(H W, 2)``, on the models' device.
        fresh: The candidates and settings.

    Returns:
        The chosen scale, and the mean distance of every candidate.
    """
    target_spectrum = image_spectrum(target, fresh.spectrum_size)
    distances: dict[float, float] = {}
    with torch.random.fork_rng(devices=[]):
        for candidate in fresh.candidates:
            total = 0.0
            for sample in range(fresh.samples):
                torch.manual_seed(fresh.seed + sample)
                model = build().to(coords.device).eval()
                model.set_frequency_scale(candidate)
                output = render(model, coords, tuple(target.shape))
                total += spectrum_distance(image_spectrum(output, fresh.spectrum_size), target_spectrum)
            distances[float(candidate)] = total / fresh.samples
    best = min(distances, key=distances.get)
    return best, distances


__all__ = [
    "FreSh",
    "image_spectrum",
    "render",
    "select_frequency_scale",
    "spectrum_distance",
    "spectrum_mask",
]
