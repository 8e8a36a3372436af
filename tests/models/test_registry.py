"""Every registered family, from its registry entry alone: registered with a `tiny` variant, it is tested.

For each family and each of its domains, the ``tiny`` variant is built for the domain's example data
and must: hold as many parameters on the meta device as for real; take a few optimiser steps that
lower the loss; then pass a gradient to every trainable parameter; and keep its domain's contract
(``tests/models/domains.py``: output shapes, one-line errors for inputs it was not built for,
causality for sequence families); its FLOPs count on the meta device. Every variant builds on the
meta device, and a variant with a published parameter count has it. Every channel-MLP kind a family
declares is really built and trains (with its auxiliary loss where it has one), and a kind it does not
declare is refused. The block layout a family declares finds its residual blocks, and zeroing the
named sub-layers makes a block the identity (what layer-dropping tools rely on).
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from mlplab.errors import ConfigError
from mlplab.models import count_parameters, registry
from mlplab.models.counting import count_training_flops
from mlplab.nn import ChannelMLP, MixtureOfExperts, auxiliary_loss
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient, assert_steps_lower_the_loss
from tests.models.domains import HARNESSES

FAMILIES = registry.families()
TINY = [(spec.name, domain) for spec in FAMILIES for domain in spec.domains]
VARIANTS = [(spec.name, name) for spec in FAMILIES for name in spec.variants if name != "tiny"]
KINDS = [(spec.name, kind) for spec in FAMILIES for kind in spec.channel_mlps if kind != "conventional"]
LAYOUTS = [spec.name for spec in FAMILIES if spec.blocks is not None]
#: Small settings of each channel-MLP kind, so the tiny variants stay tiny.
SMALL_CHANNEL_MLPS = {
    "hourglass": ChannelMLP(kind="hourglass", stream_ratio=2.0, bottleneck_ratio=0.5),
    "moe": ChannelMLP(kind="moe", num_experts=3),
    "moe_plus_plus": ChannelMLP(kind="moe_plus_plus", num_experts=2),
}


def tiny(name: str, domain: str, **overrides) -> tuple[nn.Module, tuple, dict]:
    """The tiny variant built (seeded) for the domain's example data, its shapes and data arguments."""
    spec = registry.get(name)
    shapes = registry.DOMAINS[domain].example_shapes
    data_args = spec.data_args("tiny", domain)
    torch.manual_seed(0)
    return registry.build(name, *shapes, **data_args, **overrides), shapes, data_args


def test_every_domain_has_a_harness_and_every_family_a_tiny_variant():
    assert set(registry.DOMAINS) <= set(HARNESSES), (
        "add a Harness for the new domain in tests/models/domains.py"
    )
    assert len(FAMILIES) >= 27 and all("tiny" in spec.variants for spec in FAMILIES)


def test_every_family_is_importable_from_mlplab_models_by_its_short_name():
    import mlplab.models

    missing = [spec.name for spec in FAMILIES if spec.name not in mlplab.models.__all__]
    assert not missing, f"add {missing} to mlplab.models.__all__"
    assert all(getattr(mlplab.models, spec.name) is spec.cls for spec in FAMILIES)


@pytest.mark.parametrize(("name", "domain"), TINY, ids=[f"{n}-{d}" for n, d in TINY])
def test_tiny_variant_trains_and_keeps_its_domain_contract(name, domain):
    model, shapes, data_args = tiny(name, domain)
    with torch.device("meta"):
        meta, _, _ = tiny(name, domain)
    assert count_parameters(meta) == count_parameters(model)

    harness = HARNESSES[domain]
    batch = harness.batch(shapes, data_args)
    # the throughput monitor and the model summary count FLOPs on the meta device
    on_meta = lambda t: torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) else t  # noqa: E731
    meta_args = [on_meta(a) for a in batch.args]
    meta_kwargs = {k: on_meta(v) for k, v in batch.kwargs.items()}
    assert count_training_flops(lambda: meta(*meta_args, **meta_kwargs)) > 0
    model.train()

    def loss() -> torch.Tensor:
        return harness.loss(model(*batch.args, **batch.kwargs), batch.target)

    # the steps come first: some families start with a zero classifier (timm's MLP-Mixer), which passes
    # no gradient back until it has taken a step
    assert_steps_lower_the_loss(model, loss, steps=harness.steps, lr=harness.lr)
    assert_every_trainable_parameter_gets_a_gradient(model, loss())
    harness.contract(model, shapes, data_args)


@pytest.mark.parametrize(("name", "variant"), VARIANTS, ids=[f"{n}-{v}" for n, v in VARIANTS])
def test_named_variant_builds_and_has_its_published_parameter_count(name, variant):
    declared = registry.get(name).variant(variant)
    params = registry.count(name, variant)
    assert params > 0
    if declared.params is not None:
        assert abs(params - declared.params) <= declared.precision / 2, (
            f"{name} {variant}: {params:,} parameters, published {declared.params:,} ({declared.source})"
        )


@pytest.mark.parametrize(("name", "kind"), KINDS, ids=[f"{n}-{k}" for n, k in KINDS])
def test_declared_channel_mlp_kind_is_built_and_trains(name, kind):
    spec = registry.get(name)
    domain = spec.domains[0]
    model, shapes, data_args = tiny(name, domain, channel_mlp=SMALL_CHANNEL_MLPS[kind])
    assert kind in registry.channel_mlp_kinds(model)
    registry.check_channel_mlps(model)
    harness = HARNESSES[domain]
    batch = harness.batch(shapes, data_args)
    loss = harness.loss(model(*batch.args, **batch.kwargs), batch.target)
    if kind.startswith("moe"):
        extra = auxiliary_loss(model)
        assert extra is not None and torch.isfinite(extra)
        loss = loss + extra
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_channel_mlp_kind_a_family_does_not_declare_is_refused_by_the_task():
    from mlplab.tasks import ForecastingTask

    family = functools.partial(registry.get("TSMixer").cls, **registry.variant_args("TSMixer"),
                               channel_mlp=SMALL_CHANNEL_MLPS["moe_plus_plus"])  # fmt: skip
    with pytest.raises(
        ConfigError,
        match=r"^TSMixer does not support channel_mlp.kind=moe_plus_plus \(it supports conventional",
    ):
        ForecastingTask(family, lookback=48, horizon=16, num_series=3)


#: Each family with a ``moe`` channel MLP, and its rule for linear layers, which its dense channel MLP's
#: fc1 / fc2 follow and the experts' w1 / w2 (each expert a dim -> hidden -> dim pair) must follow too:
#: ``default``: PyTorch's, uniform +-1/sqrt(fan_in), biases too; ``gpt2``: N(0, 0.02), the fc2 /
#: w2 projections into the residual stream N(0, 0.02/sqrt(2 depth)), zero biases; ``trunc_normal``:
#: timm's truncated normal, std 0.02, zero biases; ``xavier``: timm's MlpMixer, uniform
#: +-sqrt(6/(fan_in + fan_out)), channel-MLP biases N(0, 1e-6); ``normal``: the official MAXIM's Dense
#: layers, N(0, 0.02), zero biases; ``mamba``: the official Mamba's, PyTorch's default weights with
#: zero biases, fc2 / w2 divided by sqrt(2 depth). The router is a linear layer of the family and
#: follows the rule too (without an output scaling).
LINEAR_INIT = {
    "Activator": "default",
    "DynamicSpectrumMixer": "default",
    "EfficientMod": "trunc_normal",
    "MlpMixer": "xavier",
    "MSMLP": "trunc_normal",
    "NiNformer": "default",
    "RaftMLP": "default",
    "ResMLP": "xavier",
    "StripMLP": "default",
    "MAXIM": "normal",
    "TimeMixer": "default",
    "TSMixer": "default",
    "TSMixerGoogle": "default",
    "GatedAssociativeMemory": "gpt2",
    "GatedConv": "gpt2",
    "GatedLinearAttention": "gpt2",
    "HopfieldLM": "gpt2",
    "Mamba": "mamba",
    "Transformer": "gpt2",
}
MOE_FAMILIES = [spec.name for spec in FAMILIES if "moe" in spec.channel_mlps]


def test_every_family_with_experts_states_its_rule_for_linear_layers():
    assert set(MOE_FAMILIES) == set(LINEAR_INIT), "add the family's rule for linear layers to LINEAR_INIT"


def assert_follows_rule(rule: str, weight, bias, fan_in: int, fan_out: int, scale: float):
    """``weight`` (i.i.d. entries of layers of these fans) and ``bias`` (or None) start as ``rule`` says.

    ``scale``: the standard deviation of the normal rules, the factor of the bound of ``mamba``'s. The
    tolerance on the standard deviation shrinks with the entries (its sampling error is below
    0.71/sqrt(n) for these laws).
    """
    weight = weight.detach()
    rtol = 0.03 + 2.5 / weight.numel() ** 0.5
    if rule in ("default", "xavier", "mamba"):
        bound = (6 / (fan_in + fan_out)) ** 0.5 if rule == "xavier" else 1 / fan_in**0.5
        bound *= scale if rule == "mamba" else 1
        assert weight.abs().max() <= bound
        torch.testing.assert_close(weight.std().item(), bound / 3**0.5, rtol=rtol, atol=0)
    else:
        torch.testing.assert_close(weight.std().item(), scale, rtol=rtol, atol=0)
    if bias is None:
        return
    bias = bias.detach()
    if rule == "default":
        assert bias.abs().max() <= bound and bias.any()
    elif rule == "xavier":
        assert 0 < bias.std() < 1e-5
    else:
        assert not bias.any()


@pytest.mark.parametrize("name", MOE_FAMILIES)
def test_the_experts_start_from_the_familys_rule_for_linear_layers(name):
    # A dense-vs-MoE comparison must start from the same scales: each expert gets what the family's rule
    # gives a dense fc1 / fc2 of its shape (as in MoE++'s official model and Mixtral). timm's MlpMixer
    # init (MlpMixer, ResMLP) and MAXIM's Dense layers skipped the experts, which kept PyTorch's default
    # (at width 32: std 0.10 / 0.05 against Xavier's 0.11, biases 0.10 against 1e-6; MAXIM 0.14
    # against 0.02) and MAXIM's router kept it too.
    rule = LINEAR_INIT[name]
    spec = registry.get(name)
    experts_model, _, _ = tiny(name, spec.domains[0], channel_mlp=ChannelMLP(kind="moe", num_experts=4))
    dense_model, _, _ = tiny(name, spec.domains[0], channel_mlp=ChannelMLP())
    first, residual = 0.02, 0.02  # the normal rules' std; mamba's: the factors of the default bound
    if rule in ("gpt2", "mamba"):
        first = 1.0 if rule == "mamba" else 0.02
        residual = first / (2 * experts_model.depth) ** 0.5
    layers = [(n, m) for n, m in experts_model.named_modules() if isinstance(m, MixtureOfExperts)]
    assert layers
    for layer_name, experts in layers:
        dense = dense_model.get_submodule(layer_name)
        dim, hidden = experts.dim, experts.hidden
        assert dense.fc1.weight.shape == (hidden, dim) and dense.fc2.weight.shape == (dim, hidden)
        for weights, biases, fan_in, fan_out, scale in (
            ((dense.fc1.weight,), dense.fc1.bias, dim, hidden, first),
            ((dense.fc2.weight,), dense.fc2.bias, hidden, dim, residual),
            (experts.w1, experts.b1, dim, hidden, first),
            (experts.w2, experts.b2, hidden, dim, residual),
        ):
            weight = torch.stack([w.T for w in weights])  # every expert's (or the dense layer's) entries
            assert_follows_rule(rule, weight, biases, fan_in, fan_out, scale)
        assert_follows_rule(rule, experts.router.weight, None, dim, experts.num_experts, first)


class Zero(nn.Module):
    """A sub-layer dropped: zeros shaped like its input."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return torch.zeros_like(x)


@pytest.mark.parametrize("name", LAYOUTS)
def test_block_layout_finds_residual_blocks_whose_branches_can_be_dropped(name):
    spec = registry.get(name)
    domain = spec.domains[0]
    model, shapes, data_args = tiny(name, domain)
    model.eval()
    layout = spec.blocks
    blocks = layout.blocks(model)
    assert blocks, f"{name}: no block of type {layout.block_types}"
    named = layout.mixer + layout.mlp
    assert all(any(hasattr(block, attribute) for _, block in blocks) for attribute in named)

    first = blocks[0][1]
    seen = {}
    hook = first.register_forward_pre_hook(lambda module, args: seen.setdefault("input", args[0]))
    batch = HARNESSES[domain].batch(shapes, data_args)
    with torch.no_grad():
        model(*batch.args, **batch.kwargs)
    hook.remove()
    branches = layout.branches(first, "mixer") + layout.branches(first, "mlp")
    assert branches
    for attribute, _ in branches:
        setattr(first, attribute, Zero())
    with torch.no_grad():
        passed = first(seen["input"])
    if isinstance(passed, (list, tuple)):
        for out, given in zip(passed, seen["input"]):
            torch.testing.assert_close(out, given)
    else:
        torch.testing.assert_close(passed, seen["input"])


@pytest.mark.parametrize("name", [spec.name for spec in FAMILIES])
def test_a_family_registers_what_its_base_declares_for_all_of_them(name):
    """A base's ``renamed_args`` and ``block_layout`` are declared once, and every family of it keeps them."""
    spec = registry.get(name)
    for base in spec.cls.__mro__[1:]:
        if "renamed_args" in vars(base):
            assert spec.renamed.items() >= base.renamed_args.items(), f"{name} drops {base.__name__}'s"
        if "block_layout" in vars(base):
            assert spec.blocks == base.block_layout, f"{name} declares other blocks than {base.__name__}"
