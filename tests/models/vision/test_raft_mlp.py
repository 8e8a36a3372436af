import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import RaftMLP, registry
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.models.vision.checks import check_size_errors

TINY = registry.variant_args("RaftMLP")


def test_token_mlps_mix_rafts_of_channels_along_one_axis():
    model = RaftMLP((3, 32, 48), (10,), **TINY)  # 8×12 tokens in the first level
    block = model.levels[0].blocks[0]
    assert block.mix_vertical.fc1.in_features == 2 * 8  # raft of 2 channels × 8 rows
    assert block.mix_horizontal.fc1.in_features == 2 * 12
    x = torch.zeros(1, 8, 12, 8)
    x[0, 3, 5, 2] = 1.0  # one value: row 3, column 5, channel 2 (raft member 0 of raft 2)
    spread = block.vertical(x) - block.vertical(torch.zeros_like(x))
    touched = spread.abs().sum(dim=0).nonzero()
    assert set(touched[:, 1].tolist()) == {5}  # vertical mixing stays in the column
    assert set(touched[:, 2].tolist()) == {2, 6}  # and in the raft (channels 2 and 2 + 8/2)


def test_hourglass_channel_mlp():
    model = RaftMLP((3, 16, 16), (10,), channel_mlp=ChannelMLP(kind="hourglass"), **TINY)
    assert isinstance(model.levels[1].blocks[0].mix_channels, HourglassChannelMLP)


def test_sizes():
    check_size_errors(RaftMLP, built_for=(3, 16, 16), not_divisible=(3, 20, 20), **TINY)
    with pytest.raises(
        ConfigError, match=r"the image size 20×20 is not divisible by 8 \(the product of the patch"
    ):
        RaftMLP((3, 20, 20), (10,), **TINY)
    with pytest.raises(ConfigError, match="must start with the patch size 4"):
        RaftMLP((3, 16, 16), (10,), **{**TINY, "embedding_kernels": ((8, 4), (2, 4))})
    with pytest.raises(ConfigError, match="divisible by raft_size 3"):
        RaftMLP((3, 16, 16), (10,), raft_size=3, **TINY)
