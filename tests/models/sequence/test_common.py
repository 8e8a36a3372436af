"""The contract every sequence family keeps: shapes, causality, gradients, training, context checks."""

import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import (
    GatedAssociativeMemory,
    GatedConv,
    GatedLinearAttention,
    HopfieldLM,
    Mamba,
    Transformer,
)
from mlplab.nn import ChannelMLP
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient, assert_steps_lower_the_loss

VOCAB, CONTEXT = 23, 24
SMALL = {"d_model": 16, "n_layers": 2}
FAMILIES = {
    "transformer": (Transformer, {"n_heads": 2}),
    "transformer-gated-headwise": (Transformer, {"n_heads": 2, "attention_gate": "headwise"}),
    "transformer-gated-elementwise": (Transformer, {"n_heads": 2, "attention_gate": "elementwise"}),
    "mamba-parallel": (Mamba, {"chunk_size": 5, "d_state": 4}),
    "mamba-sequential": (Mamba, {"scan": "sequential", "d_state": 4}),
    "gla-chunk": (GatedLinearAttention, {"n_heads": 2, "chunk_size": 5}),
    "gla-recurrent": (GatedLinearAttention, {"n_heads": 2, "mode": "recurrent"}),
    "hopfield": (HopfieldLM, {"n_heads": 2, "update_steps": 2, "stored_patterns": 8}),
    "gam": (GatedAssociativeMemory, {"memory_slots": 8}),
    "gated-conv-implicit": (GatedConv, {"filter_order": 8}),
    "gated-conv-explicit": (GatedConv, {"filter": "explicit"}),
}
CHANNEL_MLPS = {
    "no-mlp": None,
    "conventional": ChannelMLP(),
    "hourglass": ChannelMLP(kind="hourglass", stream_ratio=2.0, bottleneck_ratio=0.5),
    "moe": ChannelMLP(kind="moe", num_experts=3),
    "moe++": ChannelMLP(kind="moe_plus_plus", num_experts=2),
}


def build(name: str, channel_mlp=None, **extra):
    family, kwargs = FAMILIES[name]
    torch.manual_seed(0)
    return family(VOCAB, CONTEXT, **SMALL, **kwargs, channel_mlp=channel_mlp, **extra)


def assert_causal(model):
    model.eval()
    tokens = torch.randint(0, VOCAB, (3, CONTEXT))
    logits = model(tokens)
    assert logits.shape == (3, CONTEXT, VOCAB)
    for t in (0, 9, CONTEXT - 2):
        changed = tokens.clone()
        later = changed[:, t + 1 :]
        changed[:, t + 1 :] = (
            later + torch.randint(1, VOCAB, later.shape)
        ) % VOCAB  # every later token differs
        after = model(changed)
        torch.testing.assert_close(after[:, : t + 1], logits[:, : t + 1], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(after[:, t + 1 :], logits[:, t + 1 :])  # the change is seen later on
    shorter = model(tokens[:, :7])  # any length up to the context, with the same prefix outputs
    torch.testing.assert_close(shorter, logits[:, :7], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_is_causal(name):
    assert_causal(build(name, ChannelMLP()))


@pytest.mark.parametrize("mlp", CHANNEL_MLPS, ids=str)
@pytest.mark.parametrize("name", ["transformer", "gla-chunk"])
def test_causal_with_every_channel_mlp(name, mlp):
    assert_causal(build(name, CHANNEL_MLPS[mlp]))


@pytest.mark.parametrize("name", FAMILIES)
def test_gradients_reach_every_parameter_and_training_lowers_the_loss(name):
    model = build(name, ChannelMLP())
    tokens = torch.randint(0, VOCAB, (4, CONTEXT))
    targets = tokens.roll(1, dims=1)  # copy the previous token: learnable by every family

    def loss():
        return F.cross_entropy(model(tokens).flatten(0, 1), targets.flatten())

    assert_every_trainable_parameter_gets_a_gradient(model, loss())
    assert_steps_lower_the_loss(model, loss, steps=15, lr=1e-2)


@pytest.mark.parametrize("name", ["transformer", "mamba-parallel", "gla-chunk", "hopfield", "gam",
                                  "gated-conv-implicit"])  # fmt: skip
def test_a_context_longer_than_the_models_is_one_clear_error(name):
    model = build(name)
    with pytest.raises(
        ConfigError, match=f"built for contexts of up to {CONTEXT} tokens, got a sequence of 30"
    ):
        model(torch.zeros(1, 30, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"takes token batches of shape \(B, T\)"):
        model(torch.zeros(30, dtype=torch.long))


def test_tied_head_and_meta_device():
    model = build("transformer")
    assert model.head.weight is model.embedding.weight
    with torch.device("meta"):
        meta = build("mamba-parallel")
    assert meta(torch.zeros(2, 8, dtype=torch.long, device="meta")).shape == (2, 8, VOCAB)
