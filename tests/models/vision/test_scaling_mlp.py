import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import BottleneckMLP, StandardMLP, count_parameters


def test_bmlp_exact_count_b6_wi512():
    model = BottleneckMLP((3, 32, 32), (10,), embed_dim=512, depth=6)
    embed = 3072 * 512 + 512
    block = 2 * 512 + (512 * 2048 + 2048) + (2048 * 512 + 512)  # LayerNorm, We, Wc
    head = 512 * 10 + 10
    assert count_parameters(model)[0] == embed + 6 * block + head == 14_182_922


def test_smlp_structure():
    model = StandardMLP((3, 8, 8), (10,), embed_dim=64, depth=3)
    assert len(model.blocks) == 2  # depth - 1 hidden layers, no skip connections
    assert count_parameters(model)[0] == (192 * 64 + 64) + 2 * (2 * 64 + 64 * 64 + 64) + (64 * 10 + 10)


def test_bad_sizes():
    with pytest.raises(ConfigError, match="embed_dim must be a positive integer"):
        BottleneckMLP((3, 32, 32), (10,), embed_dim=0)
    with pytest.raises(ConfigError, match="built for inputs of shape"):
        BottleneckMLP((3, 32, 32), (10,), embed_dim=8, depth=1)(torch.randn(2, 3, 28, 28))
