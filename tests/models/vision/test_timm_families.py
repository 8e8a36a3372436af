"""The timm wrappers beyond their registry tests: counts by formula, channel MLPs, sizes, CLI help."""

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import GMLP, ConViT, MlpMixer, PoolFormer, ResMLP, registry
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.models.vision.checks import check_classifier_trains, check_size_errors


def test_mixer_s16_and_gmlp_ti_by_formula():
    # Mixer-S/16: 8 blocks of width 512 on 196 tokens, token MLP 256, channel MLP 2048.
    block = 2 * 2 * 512 + (196 * 256 + 256 + 256 * 196 + 196) + (512 * 2048 + 2048 + 2048 * 512 + 512)
    stem, head = 16 * 16 * 3 * 512 + 512, 2 * 512 + 512 * 1000 + 1000
    assert registry.count("MlpMixer", "S/16") == stem + 8 * block + head
    assert registry.count("GMLP", "Ti") == 5_867_328  # the paper's "6M"


@pytest.mark.parametrize("family", [MlpMixer, ResMLP, GMLP, PoolFormer, ConViT])
def test_image_sizes_the_family_cannot_take(family):
    tiny = registry.variant_args(family, patch_size=4)
    check_size_errors(family, built_for=(3, 16, 16), not_divisible=(3, 18, 18), **tiny)


def test_non_square_images():
    with pytest.raises(ConfigError, match="square images, got 16×32"):
        ConViT((3, 16, 32), (10,))
    for family in (MlpMixer, ResMLP, GMLP):
        model = family((3, 16, 32), (10,), depth=1, embed_dim=16)
        assert model(torch.randn(2, 3, 16, 32)).shape == (2, 10)
    assert PoolFormer((3, 32, 64), (10,), depths=(1, 1, 1, 1), dims=(8, 8, 8, 8))(
        torch.randn(1, 3, 32, 64)
    ).shape == (1, 10)


def test_hourglass_channel_mlp_replaces_only_the_channel_mlp():
    hourglass = ChannelMLP(kind="hourglass", stream_ratio=2.0, bottleneck_ratio=0.25)
    mixer = MlpMixer((3, 16, 16), (10,), depth=2, embed_dim=32, channel_mlp=hourglass)
    block = mixer.model.blocks[0]
    assert isinstance(block.mlp_channels, HourglassChannelMLP)
    assert block.mlp_tokens.fc1.in_features == 16  # the token MLP stays timm's Mlp over the 16 patches
    resmlp = ResMLP((3, 16, 16), (10,), depth=2, embed_dim=32, channel_mlp=hourglass)
    assert isinstance(resmlp.model.blocks[1].mlp_channels, HourglassChannelMLP)
    for model in (mixer, resmlp):
        check_classifier_trains(lambda *shapes, m=model: m, (3, 16, 16), num_classes=10)


def test_poolformer_patch_size_changes_the_stem():
    model = PoolFormer((3, 32, 32), (10,), patch_size=2, depths=(1, 1, 1, 1), dims=(8, 8, 8, 8))
    assert model.model.stem.conv.stride == (2, 2)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="patch_size must be at least 2"):
        PoolFormer((3, 32, 32), (10,), patch_size=1)


def test_backbone_help_shows_the_typed_arguments(cli, capsys):
    assert cli("fit", "--model=ImageClassification", "--model.backbone.help", "mlplab.models.MlpMixer") == 0
    shown = capsys.readouterr().out
    for argument in (
        "--backbone.patch_size",
        "--backbone.depth",
        "--backbone.channel_mlp.kind",
        "hourglass",
    ):
        assert argument in shown


def test_a_size_the_family_cannot_take_ends_the_cli_with_one_line(cli, capsys):
    args = [
        "fit",
        "--model=ImageClassification",
        "--model.backbone=mlplab.models.MlpMixer",
        "--model.backbone.patch_size=3",
    ]
    assert cli(*args, "--data=DigitsDataModule", "--trainer.fast_dev_run=1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: MlpMixer: the image size 8×8 is not divisible by 3 (patch size 3); "
        "choose a patch size that divides it or resize the images"
    )
