"""FreSh's spectrum and distance against the official code's construction, and its choice on real images."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import wasserstein_distance

from mlplab.data.fields import pixel_grid
from mlplab.models import SIREN, FreSh
from mlplab.models.fields.fresh import (
    image_spectrum,
    select_frequency_scale,
    spectrum_distance,
    spectrum_mask,
)


def official_mask(side: int) -> torch.Tensor:
    """The official ``get_2d_fft_mask``, written out as it is."""
    unique = side // 2
    mask = torch.triu(torch.ones(side, side), diagonal=0)
    mask += torch.diag(torch.cat([torch.ones(unique), torch.zeros(side - 1 - unique)]), diagonal=-1)
    mask = mask.flip(1)
    mask[1 + unique :, 0] = 0
    mask[0, 1 + unique :] = 0
    return mask


def official_spectrum(image: torch.Tensor) -> torch.Tensor:
    """The official ``get_spectrum`` of a square image: masked |DFT| summed along diagonals, DC dropped."""
    fft = torch.fft.fftn(image, dim=(1, 2)).abs().sum(0)
    y = torch.flip(fft * official_mask(fft.shape[0]), dims=[0])
    sums = [torch.diag(y, diagonal=k).sum() for k in range(-y.shape[0] + 1, y.shape[0])]
    return torch.stack(sums)[1:]


@pytest.mark.parametrize("side", [5, 8, 9, 16])
def test_spectrum_matches_the_official_construction(side):
    assert torch.equal(spectrum_mask(side), official_mask(side))
    image = torch.rand(3, side, side, generator=torch.Generator().manual_seed(side))
    torch.testing.assert_close(image_spectrum(image), official_spectrum(image), rtol=1e-5, atol=1e-4)
    assert image_spectrum(image, size=4).shape == (4,)


def test_spectrum_distance_is_scipys_wasserstein_on_the_indices():
    generator = torch.Generator().manual_seed(0)
    u, v = torch.rand(12, generator=generator), torch.rand(12, generator=generator)
    expected = wasserstein_distance(range(12), range(12), u_weights=u.numpy(), v_weights=v.numpy())
    assert spectrum_distance(u, v) == pytest.approx(expected, rel=1e-9)
    assert spectrum_distance(u, u) == 0.0


def test_fresh_picks_low_omega_for_a_smooth_image_and_high_for_a_detailed_one():
    side = 32
    coords = pixel_grid(side, side)
    rows, cols = coords[:, 0].view(side, side), coords[:, 1].view(side, side)
    smooth = (0.5 + 0.4 * torch.sin(1.5 * rows) * torch.cos(cols))[None]
    detailed = torch.rand(1, side, side, generator=torch.Generator().manual_seed(0))
    fresh = FreSh(candidates=[2.0, 10.0, 60.0, 200.0], spectrum_size=16, samples=2)

    def build():
        return SIREN((2,), (1,), embed_dim=32, depth=2)

    low, distances = select_frequency_scale(build, smooth, coords, fresh)
    high, _ = select_frequency_scale(build, detailed, coords, fresh)
    assert set(distances) == {2.0, 10.0, 60.0, 200.0}
    assert low < high and low <= 10.0 and high >= 60.0
