"""Sequence families beyond their registry tests: causality under every option and channel MLP, tied heads.

``tests/models/test_registry.py`` checks every registered sequence family's ``tiny`` variant (shapes,
causality, gradients, training, context errors); here the options that change a family's computation.
"""

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import registry
from mlplab.nn import ChannelMLP
from tests.models.domains import assert_causal

VOCAB, CONTEXT = registry.DOMAINS["sequence"].example_shapes
#: Options that change how a family computes, each checked for causality on its tiny variant.
OPTIONS = {
    "transformer-gated-headwise": ("Transformer", {"attention_gate": "headwise"}),
    "transformer-gated-elementwise": ("Transformer", {"attention_gate": "elementwise"}),
    "mamba-sequential": ("Mamba", {"scan": "sequential"}),
    "gla-recurrent": ("GatedLinearAttention", {"mode": "recurrent"}),
    "gated-conv-explicit": ("GatedConv", {"filter": "explicit"}),
}
CHANNEL_MLPS = {
    "no-mlp": None,
    "conventional": ChannelMLP(),
    "hourglass": ChannelMLP(kind="hourglass", stream_ratio=2.0, bottleneck_ratio=0.5),
    "moe": ChannelMLP(kind="moe", num_experts=3),
    "moe++": ChannelMLP(kind="moe_plus_plus", num_experts=2),
}


def build(family: str, **overrides):
    torch.manual_seed(0)
    return registry.build(family, VOCAB, CONTEXT, **overrides)


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_is_causal(option):
    family, overrides = OPTIONS[option]
    assert_causal(build(family, **overrides), VOCAB, CONTEXT)


@pytest.mark.parametrize("mlp", CHANNEL_MLPS, ids=str)
@pytest.mark.parametrize("family", ["Transformer", "GatedLinearAttention"])
def test_causal_with_every_channel_mlp(family, mlp):
    assert_causal(build(family, channel_mlp=CHANNEL_MLPS[mlp]), VOCAB, CONTEXT)


def test_tied_head_and_meta_device():
    model = build("Transformer")
    assert model.head.weight is model.embedding.weight
    with torch.device("meta"):
        meta = build("Mamba")
    assert meta(torch.zeros(2, 8, dtype=torch.long, device="meta")).shape == (2, 8, VOCAB)


def test_mlp_ratio_without_a_channel_mlp_is_refused():
    # Mamba has no channel MLP by default: --model.backbone.mlp_ratio 2 built the very same model
    with pytest.raises(ConfigError, match=r"Mamba: mlp_ratio=2.0 has no effect without a channel MLP"):
        build("Mamba", mlp_ratio=2.0)
    with pytest.raises(ConfigError, match="has no effect without a channel MLP"):
        build("Transformer", channel_mlp=None, mlp_ratio=2.0)
    assert build("Mamba", mlp_ratio=4.0) is not None  # the default, as every config dump holds it
    narrow, wide = (build("Mamba", channel_mlp=ChannelMLP(), mlp_ratio=r) for r in (2.0, 4.0))
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters())


@pytest.mark.parametrize("family", ["Transformer", "GatedLinearAttention"])
@pytest.mark.parametrize("kind", ["moe", "moe_plus_plus"])
def test_the_experts_start_from_the_familys_rule_for_linear_layers(family, kind):
    # SequenceModel.init_weights (GPT-2's, as nanoGPT): every nn.Linear N(0, 0.02), the projections back
    # into the residual stream (out_proj, the channel MLP's fc2) N(0, 0.02 / sqrt(2 depth)), biases zero.
    # The experts' w1 / w2 kept nn.Linear's uniform +-1/sqrt(fan_in) (std 0.083 and 0.042 here, 4.2x the
    # dense fc1 / fc2; biases std 0.083) and MoE++'s gating-residual map, built after the initialisation,
    # PyTorch's default (std 0.19): a dense-vs-MoE comparison started from other scales. MoE++'s
    # official model (HF _init_weights over every nn.Linear, experts included) and HF Mixtral give the
    # experts the rule of the other linear layers.
    torch.manual_seed(0)
    depth = 2
    model = registry.build(family, 23, 16, embed_dim=48, depth=depth, num_heads=2, bias=True,
                           channel_mlp=ChannelMLP(kind=kind, num_experts=4))  # fmt: skip
    dense = registry.build(family, 23, 16, embed_dim=48, depth=depth, num_heads=2, bias=True,
                           channel_mlp=ChannelMLP(kind="conventional"))  # fmt: skip
    residual = 0.02 / (2 * depth) ** 0.5
    torch.testing.assert_close(dense.blocks[0].mlp.fc1.weight.std().item(), 0.02, rtol=0.05, atol=0)
    torch.testing.assert_close(dense.blocks[0].mlp.fc2.weight.std().item(), residual, rtol=0.05, atol=0)
    for block in model.blocks:
        experts = block.mlp
        torch.testing.assert_close(experts.w1.std().item(), 0.02, rtol=0.05, atol=0)
        torch.testing.assert_close(experts.w2.std().item(), residual, rtol=0.05, atol=0)
        assert not experts.b1.any() and not experts.b2.any()
        torch.testing.assert_close(experts.router.weight.std().item(), 0.02, rtol=0.2, atol=0)
    if kind == "moe_plus_plus":
        gate_map = model.blocks[1].mlp.gate_map.weight  # 8 x 8: 4 MLP experts, zero, copy, 2 constant
        assert gate_map.shape == (8, 8) and 0.015 < gate_map.std().item() < 0.025
