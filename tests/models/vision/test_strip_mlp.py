import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import StripMLP, registry
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.models.vision.checks import check_size_errors

TINY = registry.variant_args("StripMLP")


def test_strip_groups_follow_the_official_rule():
    assert (
        StripMLP((3, 32, 32), (10,), embed_dim=80, depths=(1, 1, 1, 1)).stages[0][0].token_mixing.strips == 2
    )
    assert StripMLP((3, 32, 32), (10,), **TINY).stages[0][0].token_mixing.strips == 4


def test_hourglass_channel_mlp():
    model = StripMLP((3, 16, 16), (10,), channel_mlp=ChannelMLP(kind="hourglass"), **TINY)
    assert isinstance(model.stages[0][0].channel_mixing.mlp, HourglassChannelMLP)


def test_sizes():
    check_size_errors(StripMLP, built_for=(3, 16, 16), not_divisible=(3, 24, 24), **TINY)
    with pytest.raises(ConfigError, match="square images"):
        StripMLP((3, 32, 64), (10,), **TINY)
    with pytest.raises(ConfigError, match="block width of 12 cannot be cut into 4 strip groups"):
        StripMLP((3, 32, 32), (10,), embed_dim=12, depths=(1, 1, 1, 1))


def test_row_strip_layer_reads_only_adjacent_rows():
    mixer = StripMLP((3, 32, 32), (10,), **{**TINY, "patch_size": 4}).stages[0][0].token_mixing
    x = torch.zeros(1, mixer.group * mixer.strips, 8, 8)
    x[0, :, 0, 3] = 1.0  # one token in row 0
    rows = (
        x.view(1, mixer.strips, mixer.group, 8, 8)
        .permute(0, 2, 4, 1, 3)
        .reshape(1, mixer.group * 8, mixer.strips, 8)
    )
    out = mixer.proj_h(rows) - mixer.proj_h(torch.zeros_like(rows))
    reached_rows = out.abs().sum(dim=(0, 1, 2)).nonzero().flatten().tolist()
    assert reached_rows == [0, 1]  # the row itself and its neighbour (row -1 does not exist)
