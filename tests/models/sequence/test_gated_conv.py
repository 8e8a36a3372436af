import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import GatedConv, count_parameters
from mlplab.models.sequence.gated_conv import ImplicitFilter, causal_direct_conv, causal_fft_conv


def test_fft_convolution_is_the_causal_sum():
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(2, 13, 3, generator=generator)
    kernel = torch.randn(13, 3, generator=generator)
    expected = torch.zeros(2, 13, 3)
    for t in range(13):
        for s in range(t + 1):
            expected[:, t] += kernel[t - s] * u[:, s]
    torch.testing.assert_close(causal_fft_conv(u, kernel), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(causal_direct_conv(u, kernel), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [1, 6, 257])
def test_the_export_convolution_equals_the_fft_to_float32_rounding(length):
    # the ONNX export sums the convolution directly; the FFT's rounding grows with the length
    generator = torch.Generator().manual_seed(0)
    u, kernel = torch.randn(2, length, 5, generator=generator), torch.randn(length, 5, generator=generator)
    fft = causal_fft_conv(u, kernel)
    scale = float(fft.abs().max())
    torch.testing.assert_close(causal_direct_conv(u, kernel), fft, atol=1e-5 * scale, rtol=0)


def test_implicit_filter_decays_and_is_shared_across_lengths():
    torch.manual_seed(0)
    implicit = ImplicitFilter(4, max_length=64, order=8)
    full = implicit(64)
    assert full.shape == (64, 4)
    torch.testing.assert_close(implicit(20), full[:20])  # a shorter sequence sees the same filter prefix
    decay = torch.exp(-implicit.t * implicit.deltas.abs())
    # the fastest channel decays to 1e-2 at 30% of the maximal length (Hyena's fast_decay_pct)
    assert decay[round(0.3 * 63), -1].item() == pytest.approx(1e-2, rel=0.05)


def test_parameter_count_from_the_operator_definition():
    # Hyena operator of order 2 (zoology/mixers/hyena.py): in_proj d -> 3d, short conv on 3d channels
    # (kernel 3, bias), filter MLP 3 -> 64 -> 64 -> 64 -> d with sine frequencies, per-channel bias,
    # out_proj d -> d; LayerNorm + 4x GELU MLP per block; final LayerNorm; tied head.
    d, order, layers, vocab = 384, 64, 6, 65
    mixer = (
        (d * 3 * d + 3 * d)
        + 3 * d * 4
        + (3 * order + order + 2 * (order * order + order) + 3 * order + order * d)
        + d
    )
    mixer += d * d + d
    block = mixer + 2 * 2 * d + (d * 4 * d + 4 * d + 4 * d * d + d)
    with torch.device("meta"):
        model = GatedConv(vocab, 256, embed_dim=d, depth=layers, filter_order=order)
    assert count_parameters(model)[0] == layers * block + vocab * d + 2 * d == 10_902_528


def test_bad_settings():
    with pytest.raises(ConfigError, match="filter must be implicit or explicit"):
        GatedConv(13, 30, embed_dim=16, filter="fourier")
    with pytest.raises(ConfigError, match="filter_emb_dim must be odd"):
        GatedConv(13, 30, embed_dim=16, filter_emb_dim=4)
