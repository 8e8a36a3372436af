import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import MSMLP, registry
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.models.vision.checks import check_size_errors

TINY = registry.variant_args("MSMLP")


def test_channel_groups_follow_torch_chunk():
    block = MSMLP((3, 32, 32), (10,), embed_dim=96, depths=(1, 1, 1, 1)).stages[0][0]
    assert [conv.in_channels for conv in block.dwconv_lr] == [20, 20, 20, 20, 16]
    assert [conv.kernel_size[0] for conv in block.dwconv_td] == [1, 1, 3, 5, 7]


def test_shift_is_circular_and_mixing_is_local():
    block = MSMLP((3, 32, 32), (10,), **TINY).stages[0][0].eval()
    x = torch.zeros(1, 10, 8, 8)
    x[0, :, 0, 0] = 1.0
    y = block(x) - x - block(torch.zeros_like(x))  # what the one token changed (biases cancel)
    assert y[0, :, 0, 7].abs().sum() > 0  # rolled by -1/-2 along the width: wraps to the last column
    assert y[0, :, 4, 4].abs().sum() == 0  # beyond the reach of any shift and kernel


def test_hourglass_channel_mlp():
    model = MSMLP((3, 16, 16), (10,), channel_mlp=ChannelMLP(kind="hourglass"), **TINY)
    assert isinstance(model.stages[0][0].mlp, HourglassChannelMLP)


def test_sizes():
    check_size_errors(MSMLP, built_for=(3, 16, 16), not_divisible=(3, 24, 24), **TINY)
    with pytest.raises(ConfigError, match=r"cannot be cut into 5 groups by torch.chunk \(it makes 3\)"):
        MSMLP((3, 32, 32), (10,), embed_dim=6, depths=(1, 1, 1, 1))
    with pytest.raises(ConfigError, match="one odd kernel per shift"):
        MSMLP((3, 32, 32), (10,), mix_size=((1, 2, 3, 5, 7),) * 4)
