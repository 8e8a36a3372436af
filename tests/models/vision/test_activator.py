import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import Activator, registry
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.models.vision.checks import check_classifier_trains, check_size_errors, parameter_count


def official_cifar10_count(d: int = 256, hidden: int = 512, layers: int = 4, ffn: bool = True) -> int:
    patches, head = 3 * 4 * 4 * d + d, d * 10 + 10
    gating = 2 * (d * hidden + hidden) + hidden * d + d + 2 * hidden  # W1, W2, W3 and the shared LN_h
    feedforward = d * hidden + hidden + hidden * d + d if ffn else 0
    return patches + layers * (2 * d + gating + feedforward) + head


def test_parameter_count_of_the_paper_configuration():
    # The paper (arXiv 2405.15953) reports CIFAR results only, with no ImageNet model and no parameter
    # figure that could be pinned down; the count is checked against the official train.py configuration
    # (32×32, patch 4, d_model 256, d_ffn 512, 4 blocks), 2,650,890 parameters when built from the
    # official activator.py, and 1,599,242 for the variant without FFN (activator_only_GEGLU.py).
    assert parameter_count(Activator((3, 32, 32), (10,))) == official_cifar10_count() == 2_650_890
    assert (
        parameter_count(Activator((3, 32, 32), (10,), ffn=False))
        == official_cifar10_count(ffn=False)
        == 1_599_242
    )


def test_structure_follows_the_official_code():
    model = Activator((3, 32, 32), (10,))
    block = model.blocks[0]
    assert model.patch_embed.num_patches == 64 and len(model.blocks) == 4
    # one LayerNorm per block for both branches, one LayerNorm for both GLU halves
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in block.modules()) == 2
    assert block.ffn.drop1.p == 0.5


@pytest.mark.parametrize("option", [{"ffn": False}, {"activation": "silu"}])
def test_options_train(option):  # the tiny variant itself: tests/models/test_registry.py
    check_classifier_trains(Activator, **registry.variant_args("Activator", **option))


def test_hourglass_channel_mlp():
    model = Activator(
        (3, 16, 16), (10,), **registry.variant_args("Activator"), channel_mlp=ChannelMLP(kind="hourglass")
    )
    assert isinstance(model.blocks[0].ffn, HourglassChannelMLP)


def test_sizes():
    check_size_errors(Activator, embed_dim=16, mlp_dim=16, depth=1)
    with pytest.raises(ConfigError, match="embed_dim must be a positive integer"):
        Activator((3, 32, 32), (10,), embed_dim=0)
