import pytest
import torch
from timm.layers import Mlp
from timm.models.mlp_mixer import MixerBlock

from mlplab.errors import ConfigError
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient


def test_conventional_is_timms_mlp():
    mlp = ChannelMLP().build(16, 64)
    assert isinstance(mlp, Mlp) and mlp.fc1.out_features == 64


def test_hourglass_shape_parameters_and_gradients():
    spec = ChannelMLP(kind="hourglass", stream_ratio=4, bottleneck_ratio=0.5, depth=2)
    mlp = spec.build(16, 64)
    assert isinstance(mlp, HourglassChannelMLP)
    x = torch.randn(3, 5, 16)  # token tensors (B, N, d)
    assert mlp(x).shape == (3, 5, 16)
    lift, blocks, project = 16 * 64, 2 * (2 * 64 + 64 * 8 + 8 + 8 * 64 + 64), 64 * 16
    assert sum(p.numel() for p in mlp.parameters()) == lift + blocks + project
    assert_every_trainable_parameter_gets_a_gradient(mlp, mlp(x).square().mean())


def test_fixed_lift_is_frozen():
    mlp = ChannelMLP(kind="hourglass", fixed_lift=True).build(8, 32)
    assert not mlp.lift.weight.requires_grad


def test_plugs_into_timm_blocks():
    block = MixerBlock(32, 16, mlp_layer=ChannelMLP(kind="hourglass").as_timm_mlp_layer())
    assert isinstance(block.mlp_channels, HourglassChannelMLP)
    assert block(torch.randn(2, 16, 32)).shape == (2, 16, 32)


def test_bad_shapes():
    with pytest.raises(ConfigError, match="bottleneck width < stream width"):
        ChannelMLP(kind="hourglass", stream_ratio=1.0, bottleneck_ratio=2.0).build(8, 32)
