import pytest
import torch

from mlplab.models import NiNformer, registry
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.models.vision.checks import check_size_errors, parameter_count


def official_cifar10_count(d: int = 256, hidden: int = 512, tokens: int = 64, layers: int = 4) -> int:
    def mlp(width: int) -> int:
        return width * hidden + hidden + hidden * width + width

    inner_mixer = 2 * 2 * d + mlp(tokens) + mlp(d)
    block = 2 * d + (d * d + d) + inner_mixer + mlp(d)  # shared LN, value W, gate (Mixer block), FFN
    return 3 * 4 * 4 * d + d + layers * block + d * 10 + 10


def test_parameter_count_of_the_paper_configuration():
    # The paper (arXiv 2403.02411) reports MNIST/CIFAR results only, with no ImageNet model and no
    # parameter figure that could be pinned down; the count is checked against the official train.py
    # configuration (32×32, patch 4, d_model 256, d_ffn 512, 4 blocks): 2,652,170 parameters when built
    # from the official ninformer.py.
    assert parameter_count(NiNformer((3, 32, 32), (10,))) == official_cifar10_count() == 2_652_170


def test_gate_is_a_mixer_block_over_the_tokens():
    model = NiNformer((3, 32, 32), (10,))
    gate = model.blocks[0].gate
    assert gate.token_mlp.fc1.in_features == 64 and gate.token_mlp.fc1.out_features == 512
    assert gate.channel_mlp.fc1.in_features == 256
    assert (
        sum(isinstance(m, torch.nn.LayerNorm) for m in model.blocks[0].modules()) == 3
    )  # shared + Mixer's two


def test_hourglass_channel_mlps():
    model = NiNformer(
        (3, 16, 16), (10,), **registry.variant_args("NiNformer"), channel_mlp=ChannelMLP(kind="hourglass")
    )
    assert isinstance(model.blocks[0].ffn, HourglassChannelMLP)
    assert isinstance(model.blocks[0].gate.channel_mlp, HourglassChannelMLP)


def test_sizes():
    check_size_errors(NiNformer, embed_dim=16, mlp_dim=16, depth=1)


@pytest.mark.parametrize("patch_size", [2, 8])
def test_token_count_follows_the_patch_size(patch_size):
    model = NiNformer((3, 32, 32), (10,), patch_size=patch_size, embed_dim=16, mlp_dim=16, depth=1)
    assert model.blocks[0].gate.token_mlp.fc1.in_features == (32 // patch_size) ** 2
