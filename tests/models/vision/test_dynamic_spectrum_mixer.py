import numpy as np
import pytest
import scipy.fft
import torch

from mlplab.errors import ConfigError
from mlplab.models import DynamicSpectrumMixer, registry
from mlplab.models.vision.dynamic_spectrum_mixer import SpectrumMixer, dct_matrix
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.models.vision.checks import check_size_errors, meta_count, parameter_count

TINY = registry.variant_args("DynamicSpectrumMixer")


def test_dct_matrix_is_scipys_orthonormal_dct2():
    matrix = dct_matrix(7)
    x = np.random.default_rng(0).normal(size=7)
    assert np.allclose(matrix.numpy() @ x, scipy.fft.dct(x, norm="ortho"), atol=1e-5)
    assert torch.allclose(matrix @ matrix.T, torch.eye(7), atol=1e-6)


def test_parameter_count_by_formula():
    # No official code or parameter table of the paper (arXiv 2309.06721) could be pinned down, so no
    # published figure is checked: the layout is mlplab's reading of the paper (see the module docstring),
    # and its count is checked against the closed formula of that layout.
    def block(c: int, h: int, w: int, k: int = 4, r: int = 4) -> int:
        mixer = 2 * (c * c + c) + k * h * w + (c * (c // r) + c // r + (c // r) * k * c + k * c)
        return 2 * 2 * c + mixer + (c * 4 * c + 4 * c + 4 * c * c + c)

    stem = 3 * 4 * 4 * 64 + 64 + 2 * 64
    downs = sum(c * 2 * c * 4 + 2 * c + 2 * 2 * c for c in (64, 128, 256))
    blocks = 2 * block(64, 56, 56) + 2 * block(128, 28, 28) + 6 * block(256, 14, 14) + 2 * block(512, 7, 7)
    head = 2 * 512 + 512 * 1000 + 1000
    assert meta_count(DynamicSpectrumMixer, (3, 224, 224), (1000,)) == stem + downs + blocks + head


def test_mixer_starts_close_to_the_identity_on_the_spectrum_and_depends_on_the_input():
    torch.manual_seed(0)
    mixer = SpectrumMixer(dim=4, height=6, width=5)
    with torch.no_grad():
        mixer.filters.fill_(1.0)
    x = torch.randn(2, 6, 5, 4)
    expected = mixer.proj_out(mixer.proj_in(x))  # all-ones filters: DCT then inverse DCT
    assert torch.allclose(mixer(x), expected, atol=1e-5)
    with torch.no_grad():
        mixer.filters[1].zero_()
    weights = mixer.spectrum_weights(x)
    assert not torch.allclose(weights[0], weights[1])  # per-sample frequency weights


def test_hourglass_channel_mlp():
    model = DynamicSpectrumMixer((3, 16, 16), (10,), channel_mlp=ChannelMLP(kind="hourglass"), **TINY)
    assert isinstance(model.stages[0][0].mlp, HourglassChannelMLP)


def test_sizes():
    check_size_errors(DynamicSpectrumMixer, built_for=(3, 16, 16), not_divisible=(3, 24, 24), **TINY)
    with pytest.raises(ConfigError, match="depths needs 4 block counts"):
        DynamicSpectrumMixer((3, 32, 32), (10,), depths=(1, 1))


def test_filters_are_sized_for_the_grid():
    model = DynamicSpectrumMixer((3, 64, 32), (10,), **TINY)
    assert model.stages[0][0].mixer.filters.shape == (4, 32, 16)
    assert parameter_count(model) > 0
