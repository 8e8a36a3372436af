import pytest
import torch
from torch import nn

from mlplab.models.counting import count_training_flops


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_training_flops_of_grouped_convolutions(groups):
    batch, channels, length, kernel = 2, 16, 10, 3
    conv = nn.Conv1d(channels, channels, kernel, groups=groups, bias=False)
    x = torch.randn(batch, channels, length + kernel - 1, requires_grad=True)
    forward = 2 * batch * length * channels * (channels // groups) * kernel
    # backward: the input gradient and the weight gradient cost a forward each (PyTorch's own formula
    # counts the weight gradient `groups` times over)
    assert count_training_flops(lambda: conv(x)) == 3 * forward


def test_training_flops_of_a_linear_layer_on_the_meta_device():
    with torch.device("meta"):
        layer = nn.Linear(8, 4)
        x = torch.empty(5, 8)
        assert count_training_flops(lambda: layer(x)) == 2 * (2 * 5 * 8 * 4)  # forward + weight gradient
