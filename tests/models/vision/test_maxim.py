import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import MAXIM, registry
from mlplab.models.vision.maxim import GatedMlpLayer, block_images, unblock_images
from mlplab.nn import ChannelMLP, HourglassChannelMLP
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient, assert_steps_lower_the_loss

#: The tiny variant with two supervision scales, so forward_all has coarser outputs to check.
TINY = registry.variant_args("MAXIM", num_supervision_scales=2)


def test_denoising_shapes_gradients_training():
    torch.manual_seed(0)
    model = MAXIM((3, 16, 16), (3, 16, 16), **TINY)
    clean = torch.rand(4, 3, 16, 16)
    noisy = (clean + 0.2 * torch.randn_like(clean)).clamp(0, 1)
    assert model(noisy).shape == (4, 3, 16, 16)
    outputs = model.forward_all(noisy.permute(0, 2, 3, 1))
    assert [[tuple(o.shape) for o in stage] for stage in outputs] == [[(4, 16, 16, 3), (4, 8, 8, 3)]] * 2
    assert_steps_lower_the_loss(model, lambda: F.mse_loss(model(noisy), clean), steps=8, lr=1e-3)
    # the paper's loss supervises every stage at every scale; so supervised, every parameter learns
    # (mlplab's restoration task supervises the final output only, which leaves the last stage's
    # coarser output convolutions unused when num_supervision_scales > 1)
    targets = [clean.permute(0, 2, 3, 1), F.avg_pool2d(clean, 2).permute(0, 2, 3, 1)]
    every_output = sum(
        F.mse_loss(o, t)
        for stage in model.forward_all(noisy.permute(0, 2, 3, 1))
        for o, t in zip(stage, targets)
    )
    assert_every_trainable_parameter_gets_a_gradient(model, every_output)


def test_super_resolution_upsamples_the_input_first_and_clamps_in_evaluation():
    model = MAXIM((3, 8, 8), (3, 16, 16), **{**TINY, "num_stages": 1, "num_supervision_scales": 1})
    x = torch.rand(2, 3, 8, 8)
    assert model(x).shape == (2, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        y = model(4 * x - 2)
    assert y.min() >= 0 and y.max() <= 1


def test_hourglass_channel_mlp_in_the_bottleneck():
    model = MAXIM(
        (3, 16, 16),
        (3, 16, 16),
        **{**TINY, "num_supervision_scales": 1},
        channel_mlp=ChannelMLP(kind="hourglass"),
    )
    rdcab = model.stages[0].bottleneck[0].layers[1]
    assert isinstance(rdcab.mlp, HourglassChannelMLP)
    x = torch.rand(2, 3, 16, 16)
    assert_every_trainable_parameter_gets_a_gradient(model, F.mse_loss(model(x), x))
    # its linear layers are Dense layers as the conventional MLP's: N(0, 0.02), zero biases
    layers = [layer for layer in rdcab.mlp.modules() if isinstance(layer, torch.nn.Linear)]
    weights = torch.cat([layer.weight.flatten() for layer in layers])
    assert len(layers) >= 2 and abs(weights.std().item() - 0.02) < 0.004
    assert all(layer.bias is None or not layer.bias.any() for layer in layers)


def test_block_gmlp_mixes_within_blocks_and_grid_gmlp_across_cells():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 4)
    probe = x.clone()
    probe[0, 1, 2] += torch.tensor([1.0, -1.0, 2.0, 0.5])  # change one token: row 1, column 2
    for mode, reached in (("block", {(r, c) for r in range(4) for c in range(4)}),
                          ("grid", {(r, c) for r in (1, 5) for c in (2, 6)})):  # fmt: skip
        layer = GatedMlpLayer(4, (2, 2) if mode == "grid" else (4, 4), mode)
        with torch.no_grad():
            layer.gate.linear.weight.normal_()
            changed = ((layer(probe) - probe) - (layer(x) - x)).abs().sum(-1)[0].gt(1e-6).nonzero().tolist()
        assert {tuple(p) for p in changed} == reached
    grid = block_images(torch.arange(64.0).view(1, 8, 8, 1), (4, 4))
    assert torch.equal(unblock_images(grid, (2, 2), (4, 4)), torch.arange(64.0).view(1, 8, 8, 1))


def test_image_sizes_the_network_cannot_take():
    with pytest.raises(
        ConfigError, match=r"at the bottleneck the feature map is 4×4, not divisible by the block size 8×8"
    ):
        MAXIM((3, 32, 32), (3, 32, 32))
    with pytest.raises(
        ConfigError, match=r"at level 0 the feature map is 18×18, not divisible by the block size 4×4"
    ):
        MAXIM((3, 18, 18), (3, 18, 18), **TINY)
    with pytest.raises(ConfigError, match=r"an integer multiple of its size \(3, 16, 16\)"):
        MAXIM((3, 16, 16), (3, 24, 24), **TINY)
    model = MAXIM((3, 16, 16), (3, 16, 16), **TINY)
    with pytest.raises(ConfigError, match="MAXIM was built for 16×16 images, got 32×32"):
        model(torch.rand(1, 3, 32, 32))
