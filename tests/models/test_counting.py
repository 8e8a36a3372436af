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


@pytest.mark.parametrize("family", ["Transformer", "Mamba", "GatedLinearAttention", "HopfieldLM",
                                    "GatedAssociativeMemory", "GatedConv"])  # fmt: skip
def test_every_sequence_family_counts_its_training_flops_on_the_meta_device(family):
    # nanoGPT's Shakespeare size, as the recipes: about 6 FLOPs per parameter and token (forward and
    # backward of the matrix products), never uncounted (GatedConv's FFT used to stop the count) nor
    # inflated (PyTorch counted depthwise convolutions' weight gradients d_inner times over: Mamba 11x).
    import mlplab.models

    layers = {"Mamba": 11}.get(family, 6)
    with torch.device("meta"):
        model = getattr(mlplab.models, family)(65, 256, embed_dim=384, depth=layers)
        tokens = torch.empty(4, 256, dtype=torch.long)
        per_token = count_training_flops(lambda: model(tokens)) / tokens.numel()
    params = sum(p.numel() for p in model.parameters())
    assert 5 * params < per_token < 8 * params
