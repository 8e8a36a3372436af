import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import BottleneckMLP, StandardMLP, count_parameters
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient, assert_steps_lower_the_loss


@pytest.mark.parametrize(
    ("depth", "width", "published_millions"),
    # Bachmann et al. 2023, 32x32x3 input, 10 classes: B-6/Wi-512 14.2M, B-6/Wi-1024 53.5M,
    # B-12/Wi-1024 103.9M
    [(6, 512, 14.2), (6, 1024, 53.5), (12, 1024, 103.9)],
)
def test_published_parameter_counts(depth, width, published_millions):
    with torch.device("meta"):
        model = BottleneckMLP((3, 32, 32), (10,), width=width, depth=depth)
    total, trainable = count_parameters(model)
    assert total == trainable
    assert round(total / 1e5) / 10 == published_millions


def test_bmlp_exact_count_b6_wi512():
    model = BottleneckMLP((3, 32, 32), (10,), width=512, depth=6)
    embed = 3072 * 512 + 512
    block = 2 * 512 + (512 * 2048 + 2048) + (2048 * 512 + 512)  # LayerNorm, We, Wc
    head = 512 * 10 + 10
    assert count_parameters(model)[0] == embed + 6 * block + head == 14_182_922


def test_smlp_structure():
    model = StandardMLP((3, 8, 8), (10,), width=64, depth=3)
    assert len(model.layers) == 2  # depth - 1 hidden layers, no skip connections
    assert count_parameters(model)[0] == (192 * 64 + 64) + 2 * (2 * 64 + 64 * 64 + 64) + (64 * 10 + 10)


@pytest.mark.parametrize("family", [BottleneckMLP, StandardMLP])
def test_shapes_gradients_training(family):
    torch.manual_seed(0)
    model = family((3, 8, 8), (10,), width=64, depth=2)
    x = torch.randn(64, 3, 8, 8)
    labels = torch.randint(0, 10, (64,))
    logits = model(x)
    assert logits.shape == (64, 10)
    assert_every_trainable_parameter_gets_a_gradient(model, F.cross_entropy(logits, labels))
    assert_steps_lower_the_loss(model, lambda: F.cross_entropy(model(x), labels), steps=20, lr=3e-3)


def test_bad_sizes():
    with pytest.raises(ConfigError, match="width must be a positive integer"):
        BottleneckMLP((3, 32, 32), (10,), width=0)
    with pytest.raises(ConfigError, match="built for inputs of shape"):
        BottleneckMLP((3, 32, 32), (10,), width=8, depth=1)(torch.randn(2, 3, 28, 28))
