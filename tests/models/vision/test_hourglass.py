import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import ConventionalMLP, HourglassMLP, count_parameters
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient, assert_steps_lower_the_loss


def paper_formula(d_x: int, d_z: int, d_h: int, depth: int, d_y: int) -> int:
    return d_x * d_z + depth * 2 * d_z * d_h + d_z * d_y


def test_paper_parameter_count_14_184_000():
    # Chen et al. 2025: d_x=768 (16x16x3 input of super-resolution), d_z=3546, d_h=16, L=5, d_y=3072.
    with torch.device("meta"):
        model = HourglassMLP((3, 16, 16), (3, 32, 32), embed_dim=3546, mlp_dim=16, depth=5)
    assert paper_formula(768, 3546, 16, 5, 3072) == 14_184_000
    assert count_parameters(model) == (14_184_000, 14_184_000)


def test_fixed_input_projection_counts_in_total_only():
    model = HourglassMLP(
        (1, 28, 28), (1, 28, 28), embed_dim=800, mlp_dim=32, depth=2, fixed_input_projection=True
    )
    total, trainable = count_parameters(model)
    assert total == paper_formula(784, 800, 32, 2, 784)
    assert trainable == total - 784 * 800


def test_shapes_and_sigmoid_output():
    model = HourglassMLP((1, 14, 14), (1, 28, 28), embed_dim=300, mlp_dim=20, depth=2)
    y = model(torch.randn(5, 1, 14, 14))
    assert y.shape == (5, 1, 28, 28)
    assert (y > 0).all() and (y < 1).all()
    logits = HourglassMLP((3, 8, 8), (10,), embed_dim=256, mlp_dim=32, depth=1, output_activation="none")
    assert logits(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_block_structure_matches_the_official_code():
    model = HourglassMLP((1, 8, 8), (1, 8, 8), embed_dim=128, mlp_dim=16, depth=3)
    assert len(model.blocks) == 3
    block = model.blocks[0]
    assert not block.norm.affine
    assert block.mlp.fc1.bias is None and block.mlp.fc2.bias is None
    assert block.mlp.fc1.weight.shape == (16, 128) and block.mlp.fc2.weight.shape == (128, 16)
    assert model.output_projection.bias is None


@pytest.mark.parametrize("family", [HourglassMLP, ConventionalMLP])
@pytest.mark.parametrize("fixed", [True])  # trainable: the tiny variants in tests/models/test_registry.py
def test_gradients_and_training(family, fixed):
    torch.manual_seed(0)
    kwargs = {"embed_dim": 96, "mlp_dim": 24} if family is HourglassMLP else {"mlp_dim": 96}
    model = family((1, 8, 8), (1, 8, 8), depth=2, fixed_input_projection=fixed, **kwargs)
    x = torch.rand(32, 1, 8, 8)
    target = x.flip(-1)
    assert_every_trainable_parameter_gets_a_gradient(model, F.mse_loss(model(x), target))
    assert model.input_projection.weight.requires_grad is not fixed
    assert_steps_lower_the_loss(model, lambda: F.mse_loss(model(x), target), steps=30, lr=3e-3)


def test_fixed_input_projection_stays_bit_identical():
    model = HourglassMLP(
        (1, 8, 8), (1, 8, 8), embed_dim=64, mlp_dim=8, depth=1, fixed_input_projection=True, projection_seed=5
    )
    before = model.input_projection.weight.clone()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=0.1, weight_decay=0.5
    )
    for _ in range(5):
        optimizer.zero_grad()
        model(torch.rand(8, 1, 8, 8)).sum().backward()
        optimizer.step()
    assert torch.equal(model.input_projection.weight, before)
    assert torch.equal(model.input_projection.weight, model.input_projection.regenerate())


@pytest.mark.parametrize(
    ("family", "kwargs", "message"),
    [
        (
            HourglassMLP,
            {"embed_dim": 64, "mlp_dim": 64},
            "narrow bottleneck, mlp_dim < embed_dim \\(d_h < d_z\\); got mlp_dim=64, embed_dim=64",
        ),
        (HourglassMLP, {"embed_dim": 64, "mlp_dim": 100}, "use ConventionalMLP"),
        (
            ConventionalMLP,
            {"mlp_dim": 32},
            "mlp_dim > embed_dim \\(d_h > d_z\\); got mlp_dim=32, embed_dim=64",
        ),
        (ConventionalMLP, {"mlp_dim": 900, "embed_dim": 800}, "embed_dim = d_x \\(64\\) or d_y \\(64\\)"),
        (HourglassMLP, {"embed_dim": 0, "mlp_dim": 4}, "embed_dim must be a positive integer, got 0"),
        (HourglassMLP, {"embed_dim": 64, "mlp_dim": -3}, "mlp_dim must be a positive integer, got -3"),
        (HourglassMLP, {"embed_dim": 64, "mlp_dim": 8, "depth": 0}, "depth must be a positive integer"),
    ],
)
def test_width_rules(family, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        family((1, 8, 8), (1, 8, 8), **kwargs)


def test_zero_sized_shape_is_refused():
    with pytest.raises(ConfigError, match="positive integer"):
        HourglassMLP((1, 0, 8), (1, 8, 8), embed_dim=64, mlp_dim=8)


def test_input_of_the_wrong_size_is_refused_with_both_shapes():
    model = HourglassMLP((1, 28, 28), (1, 28, 28), embed_dim=800, mlp_dim=16, depth=1)
    with pytest.raises(
        ConfigError, match=r"built for inputs of shape \(1, 28, 28\), got a batch of shape \(2, 3, 32, 32\)"
    ):
        model(torch.rand(2, 3, 32, 32))
