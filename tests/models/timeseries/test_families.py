"""Forecasting families beyond their registry tests: options, counts by formula, time features, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import DLinear, PatchTST, TimeMixer, TSMixer, TSMixerGoogle, count_parameters, registry
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient

#: Options that change a family's structure, each checked for shapes at several sizes on its tiny variant.
OPTIONS = [
    (DLinear, {}),
    (DLinear, {"individual": True}),
    (TimeMixer, {}),
    (TimeMixer, {"channel_independence": False}),
    (TimeMixer, {"down_sampling_method": "conv", "revin": False}),
    (TSMixerGoogle, {}),
    (TSMixerGoogle, {"norm": "layer", "revin": False}),
    (TSMixer, {}),
    (TSMixer, {"mode": "mixing"}),
    (TSMixer, {"mode": "hybrid"}),
    (TSMixer, {"norm": "batch", "gated_attention": False}),
    (PatchTST, {}),
    (PatchTST, {"revin_affine": True}),
]


def build(family, lookback, horizon, series, **extra):
    return registry.build(family, (lookback, series), (horizon, series), **extra)


@pytest.mark.parametrize(("family", "extra"), OPTIONS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize(("lookback", "horizon", "series"), [(32, 8, 1), (48, 24, 3), (96, 96, 7)])
def test_output_shapes(family, extra, lookback, horizon, series):
    model = build(family, lookback, horizon, series, **extra)
    assert model(torch.randn(2, lookback, series)).shape == (2, horizon, series)


@pytest.mark.parametrize(("family", "extra"), OPTIONS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_option_passes_a_gradient_to_every_trainable_parameter(family, extra):
    torch.manual_seed(0)
    kwargs = {"num_time_features": 4} if family is TimeMixer else {}
    model = build(family, 48, 16, 3, **extra, **kwargs)
    x, target = torch.randn(8, 48, 3), torch.randn(8, 16, 3)
    out = model(x, time_features=torch.rand(8, 48, 4) - 0.5) if family is TimeMixer else model(x)
    assert_every_trainable_parameter_gets_a_gradient(model, F.mse_loss(out, target))


def test_dlinear_parameters_match_the_paper():
    # Zeng et al. 2023 (LTSF-Linear), efficiency table at L=96, T=720: DLinear 139.7K parameters.
    model = DLinear((96, 321), (720, 321))
    assert count_parameters(model)[0] == 2 * (96 * 720 + 720) == 139_680
    assert count_parameters(DLinear((96, 7), (96, 7), individual=True))[0] == 7 * 2 * (96 * 96 + 96)
    assert torch.allclose(model.seasonal[0].weight, torch.full((720, 96), 1 / 96))  # official init


def test_timemixer_parameters_match_the_official_code():
    # kwuking/TimeMixer, ETTh1 recipe (d_model 16, d_ff 32, 2 layers, 3 down-samplings by 2, timeF features):
    # the official Model holds 75,497 parameters, of which 2 x 32 sit in PDM LayerNorms it never calls.
    model = TimeMixer((96, 7), (96, 7), num_time_features=4)
    assert count_parameters(model)[0] == 75_497 - 2 * 32


def test_tsmixer_google_parameters_follow_the_official_layers():
    lookback, horizon, n, ff, blocks = 512, 96, 7, 64, 2
    per_block = 2 * 2 * lookback * n + lookback * lookback + lookback + n * ff + ff + ff * n + n
    model = TSMixerGoogle((lookback, n), (horizon, n), depth=blocks, mlp_dim=ff)
    assert count_parameters(model)[0] == 2 * n + blocks * per_block + lookback * horizon + horizon == 605_180


def test_tsmixer_google_layer_norm_has_the_keras_epsilon():
    # The official res_block uses Keras' BatchNormalization / LayerNormalization with their defaults:
    # epsilon 1e-3 and (batch norm) momentum 0.99, i.e. running = 0.99 running + 0.01 batch.
    lookback, n = 4, 2
    plane = torch.tensor([[0.0, 0.02], [0.0, 0.02], [0.0, 0.02], [0.0, 0.02]])  # variance 1e-4 around 0.01
    layer = TSMixerGoogle((lookback, n), (3, n), depth=1, mlp_dim=4, norm="layer", dropout=0.0)
    out = layer.blocks[0].time_norm(plane[None])
    # ±0.3015; with PyTorch's eps 1e-5 it was ±0.953
    torch.testing.assert_close(out[0], (plane - 0.01) / (1e-4 + 1e-3) ** 0.5)


def test_tsmixer_google_batch_norm_has_the_keras_epsilon_and_momentum():
    lookback, n = 4, 2
    plane = torch.tensor([[0.0, 0.02], [0.0, 0.02], [0.0, 0.02], [0.0, 0.02]])
    batch = TSMixerGoogle((lookback, n), (3, n), depth=1, mlp_dim=4, norm="batch", dropout=0.0)
    norm = batch.blocks[0].time_norm.train()
    x = torch.stack([plane, plane + 1.0])  # per position: mean plane + 0.5, batch variance 0.25
    norm(x)
    torch.testing.assert_close(norm.norm.running_mean.view(lookback, n), 0.01 * (plane + 0.5))
    norm.eval()
    out = norm(torch.zeros(1, lookback, n))
    running_var = 0.99 + 0.01 * 0.5  # unbiased batch variance of two values 1 apart: 0.5
    expected = -norm.norm.running_mean.view(lookback, n) / (running_var + 1e-3) ** 0.5
    torch.testing.assert_close(out[0], expected)


def test_tsmixer_parameters_follow_hugging_faces_patchtsmixer():
    # The ETTh1 model card's configuration: 32 patches of 16, d_model 48, 2 layers, expansion 3.
    patches, d, e = 32, 48, 3

    def mlp(width):
        return width * width * e + width * e + width * e * width + width

    layer = (2 * d + mlp(patches) + patches * patches + patches) + (2 * d + mlp(d) + d * d + d)
    expected = (16 * d + d) + 2 * layer + patches * d * 96 + 96
    assert count_parameters(TSMixer((512, 7), (96, 7)))[0] == expected == 196_144
    channel_block = 2 * d + mlp(7) + 7 * 7 + 7
    assert count_parameters(TSMixer((512, 7), (96, 7), mode="mixing"))[0] == expected + 2 * channel_block
    reconciliation = 5 * 7 * 7 + 7 + 7 * 7 + 7
    assert count_parameters(TSMixer((512, 7), (96, 7), mode="hybrid"))[0] == expected + reconciliation


def test_patchtst_parameters_follow_the_official_backbone():
    # PatchTST/42 on ETTh1 (L=336): 42 patches; the official model also has one frozen attention scale
    # per layer (3 in all), which this one computes instead of storing.
    patches, d, ff = 42, 16, 128
    layer = 3 * (d * d + d) + (d * d + d) + 2 * 2 * d + (d * ff + ff + ff * d + d)
    expected = (16 * d + d) + patches * d + 3 * layer + patches * d * 96 + 96
    assert count_parameters(PatchTST((336, 7), (96, 7)))[0] == expected == 81_731 - 3


def test_timemixer_uses_the_time_features_of_each_window():
    torch.manual_seed(0)
    model = build(TimeMixer, 48, 16, 3, num_time_features=4).eval()
    x, marks = torch.randn(2, 48, 3), torch.rand(2, 48, 4) - 0.5
    with torch.no_grad():
        both = model(x, time_features=marks)
        swapped = model(x, time_features=marks.flip(0))
        alone = model(x[:1], time_features=marks[:1])
    assert not torch.allclose(both, swapped)
    torch.testing.assert_close(both[:1], alone)  # window 0 is paired with its own features
    assert build(TimeMixer, 48, 16, 3, num_time_features=4, use_time_features=False).time_embedding is None


def test_timemixer_official_pairing_tiles_the_batch_features_as_the_official_code():
    # The official code pairs series n of window b with the features of window (b * N + n) mod B.
    torch.manual_seed(0)
    official = build(TimeMixer, 48, 16, 3, num_time_features=4, time_feature_pairing="official").eval()
    own = build(TimeMixer, 48, 16, 3, num_time_features=4).eval()
    own.load_state_dict(official.state_dict())
    batch, series = 4, 3
    x, marks = torch.randn(batch, 48, series), torch.rand(batch, 48, 4) - 0.5
    with torch.no_grad():
        tiled = official(x, time_features=marks)
        for b in range(batch):
            for n in range(series):
                other = marks[(b * series + n) % batch]
                expected = own(x[b : b + 1], time_features=other[None])[0, :, n]
                torch.testing.assert_close(tiled[b, :, n], expected)
        shared = marks[:1].expand(batch, -1, -1)
        torch.testing.assert_close(official(x, time_features=shared), own(x, time_features=shared))
    with pytest.raises(ConfigError, match="time_feature_pairing must be window or official, got 'tiled'"):
        build(TimeMixer, 48, 16, 3, time_feature_pairing="tiled")


def test_wrong_inputs_and_arguments_are_one_clear_line():
    model = build(DLinear, 48, 16, 3)
    expected = r"built for histories of lookback 48 and 3 series .* got a batch of shape \(2, 96, 3\)"
    with pytest.raises(ConfigError, match=expected):
        model(torch.randn(2, 96, 3))
    with pytest.raises(ConfigError, match="lookback must be a positive integer, got 0"):
        DLinear((0, 3), (16, 3))
    with pytest.raises(ConfigError, match="output_shape has 2 series"):
        DLinear((48, 3), (16, 2))
    with pytest.raises(ConfigError, match="mode must be independent, mixing or hybrid"):
        TSMixer((48, 3), (16, 3), mode="mixed")
    with pytest.raises(ConfigError, match="too short for 4 down-samplings"):
        TimeMixer((8, 3), (16, 3), down_sampling_layers=4)
    with pytest.raises(ConfigError, match="embed_dim \\(16\\) must be divisible by num_heads \\(3\\)"):
        PatchTST((48, 3), (16, 3), num_heads=3)
