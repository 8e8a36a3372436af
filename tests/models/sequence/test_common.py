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
