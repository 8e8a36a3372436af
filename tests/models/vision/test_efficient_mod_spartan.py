"""EfficientMod and SpaRTAN beyond the registry tests: their own arguments, errors and building blocks.

The registry tests build, train and count every variant; the official-code comparison (outputs and
gradients, weight for weight) is benchmarks/vision_official_check.py, which needs the official checkouts.
"""

from __future__ import annotations

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import EfficientMod, SpaRTAN
from mlplab.models.vision.efficient_mod import Modulation
from mlplab.models.vision.spartan import CMixer
from mlplab.nn import ChannelMLP

CIFAR = ((3, 32, 32), (10,))


def test_modulation_without_expansion_has_no_activation_and_no_repeat():
    torch.manual_seed(0)
    layer = Modulation(8, ratio=1, context_size=3)
    x = torch.randn(2, 4, 4, 8)
    context = torch.nn.functional.gelu(layer.context(layer.f(x).permute(0, 3, 1, 2)))
    context = layer.g(context.permute(0, 2, 3, 1))
    torch.testing.assert_close(layer(x), layer.fc2(layer.fc1(x) * context))
    assert Modulation(8, ratio=6, context_size=3).fc1.out_features == 48


def test_efficientmod_attention_blocks_take_an_hourglass_mlp():
    model = EfficientMod(*CIFAR, patch_size=2, dims=(8, 16, 16, 32), depths=(1, 1, 1, 1),
                         attention_depths=(0, 0, 1, 1), mlp_ratios=(2,), num_heads=2,
                         channel_mlp=ChannelMLP(kind="hourglass"))  # fmt: skip
    assert type(model.stages[3][1].mlp).__name__ == "HourglassChannelMLP"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_cmixer_rotates_channel_pairs_in_float32_under_autocast():
    torch.manual_seed(0)
    mixer = CMixer(8, ratio=2, grouped=False).eval()
    x = torch.randn(2, 8, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = mixer(x)
    torch.testing.assert_close(low.float(), mixer(x), atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize(
    ("family", "args", "message"),
    [
        (EfficientMod, {"dims": (8, 16, 32)}, "dims needs 4 values"),
        (EfficientMod, {"mlp_ratios": (1.5,)}, "mlp_ratios must be positive integers"),
        (EfficientMod, {"context_size": 4}, "context_size must be odd"),
        (EfficientMod, {"patch_size": 8}, "not divisible by 64"),
        (SpaRTAN, {"mlp_ratios": (4, 4, 2)}, "SpaRTAN has 4 stages: mlp_ratios needs 4 values"),
        (SpaRTAN, {"patch_size": 3}, "must be 1, 2 or 4"),
        (SpaRTAN, {"dims": (12, 24, 48, 96)}, "multiple of 8"),
        (SpaRTAN, {"depths": (1, 0, 1, 1)}, "depths must be positive integers"),
    ],
)
def test_bad_arguments_are_one_line_errors(family, args, message):
    with pytest.raises(ConfigError, match=message):
        family(*CIFAR, **args)
