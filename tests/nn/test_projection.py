import math

import torch

from mlplab.nn import RandomProjection


def test_same_seed_same_matrix_and_pytorch_linear_range():
    a = RandomProjection(100, 30, trainable=False, seed=7)
    b = RandomProjection(100, 30, trainable=False, seed=7)
    c = RandomProjection(100, 30, trainable=False, seed=8)
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, c.weight)
    assert a.weight.abs().max() <= 1 / math.sqrt(100)
    assert torch.equal(a.regenerate(), a.weight)


def test_fixed_projection_is_a_frozen_parameter():
    fixed = RandomProjection(8, 4, trainable=False, seed=0)
    trainable = RandomProjection(8, 4, trainable=True, seed=0)
    assert [p.requires_grad for p in fixed.parameters()] == [False]
    assert [p.requires_grad for p in trainable.parameters()] == [True]
    assert torch.equal(fixed.weight, trainable.weight)


def test_seed_drawn_from_global_generator_is_recorded():
    torch.manual_seed(3)
    first = RandomProjection(5, 5)
    torch.manual_seed(3)
    second = RandomProjection(5, 5)
    assert first.seed == second.seed
    assert torch.equal(first.weight, second.weight)


def test_builds_on_meta_device():
    with torch.device("meta"):
        projection = RandomProjection(3072, 3546, trainable=False)
    assert projection.weight.is_meta
    assert projection.weight.numel() == 3072 * 3546


def test_forward_is_a_bias_free_linear_map():
    projection = RandomProjection(6, 3, seed=1)
    x = torch.randn(4, 6)
    torch.testing.assert_close(projection(x), x @ projection.weight.T)
