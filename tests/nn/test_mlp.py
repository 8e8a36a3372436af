import pytest
import torch
from torch import nn

from mlplab.nn import ResidualMLPBlock, make_norm


def test_hourglass_block_structure_and_parameters():
    block = ResidualMLPBlock(16, 4)  # the Hourglass paper's block: BN without affine, no biases
    assert isinstance(block.norm, nn.BatchNorm1d) and not block.norm.affine
    assert sum(p.numel() for p in block.parameters()) == 2 * 16 * 4
    x = torch.randn(8, 16)
    assert block(x).shape == (8, 16)


def test_block_is_residual():
    block = ResidualMLPBlock(10, 20, norm="layernorm", norm_affine=True, activation="gelu", bias=True)
    nn.init.zeros_(block.mlp.fc2.weight)
    nn.init.zeros_(block.mlp.fc2.bias)
    x = torch.randn(3, 10)
    torch.testing.assert_close(block(x), x)


def test_unknown_norm():
    with pytest.raises(ValueError, match="unknown norm"):
        make_norm("groupnorm", 4, True)
