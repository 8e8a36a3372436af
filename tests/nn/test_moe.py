import pytest
import torch
from torch import nn

from mlplab.errors import ConfigError
from mlplab.nn import ChannelMLP, MixtureOfExperts, MoEPlusPlus, auxiliary_loss, link_gating_residuals
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient


def expert_output(moe: MixtureOfExperts, expert: int, x: torch.Tensor) -> torch.Tensor:
    hidden = moe.act(x @ moe.w1[expert] + moe.b1[expert])
    return hidden @ moe.w2[expert] + moe.b2[expert]


def test_top_k_routing_matches_a_written_out_mixture():
    torch.manual_seed(0)
    moe = MixtureOfExperts(8, 16, num_experts=4, top_k=2)
    x = torch.randn(5, 8)
    probs = torch.softmax(x @ moe.router.weight.t(), -1)
    top_p, top_i = probs.topk(2, -1)
    gates = top_p / top_p.sum(-1, keepdim=True)
    expected = torch.stack([
        sum(gates[n, j] * expert_output(moe, int(top_i[n, j]), x[n]) for j in range(2)) for n in range(5)
    ])  # fmt: skip
    torch.testing.assert_close(moe(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["moe", "moe_plus_plus"])
@pytest.mark.parametrize("bias", [True, False])
def test_sparse_dispatch_gives_the_dense_result(kind, bias):
    torch.manual_seed(0)
    layer = ChannelMLP(kind=kind, num_experts=4).build(8, 16, bias=bias)
    assert layer.sparse_dispatch  # the default: only the selected experts run
    x = torch.randn(3, 7, 8, requires_grad=True)
    sparse = layer(x)
    sparse_grads = torch.autograd.grad(sparse.square().sum(), [x, *layer.parameters()], allow_unused=True)
    layer.sparse_dispatch = False
    dense = layer(x)
    dense_grads = torch.autograd.grad(dense.square().sum(), [x, *layer.parameters()], allow_unused=True)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(sparse_grads, dense_grads):
        if theirs is None:
            assert ours is None
        else:
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def forward_flops(layer: nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(x)
    return counter.get_total_flops()


def test_sparse_dispatch_computes_only_the_selected_experts():
    tokens, dim, hidden, experts, top_k = 64, 16, 32, 8, 2
    router = 2 * tokens * dim * experts
    torch.manual_seed(0)
    layer = MixtureOfExperts(dim, hidden, num_experts=experts, top_k=top_k)
    x = torch.randn(tokens, dim)
    assert forward_flops(layer, x) == router + 2 * tokens * top_k * 2 * dim * hidden  # top-2 slots only
    layer.sparse_dispatch = False  # every expert on every token, plus the gates' bias mix
    dense = router + 2 * tokens * experts * 2 * dim * hidden + 2 * tokens * experts * dim
    assert forward_flops(layer, x) == dense
    with torch.device("meta"):  # FLOP counting on the meta device: uniform routing, the same count
        meta = MixtureOfExperts(dim, hidden, num_experts=experts, top_k=top_k)
        assert forward_flops(meta, torch.empty(tokens, dim)) == router + 2 * tokens * top_k * 2 * dim * hidden


def test_load_balancing_loss_is_one_when_uniform_and_larger_when_collapsed():
    moe = MixtureOfExperts(4, 8, num_experts=4, top_k=1, aux_loss_weight=1.0)
    uniform = torch.full((8, 4), 0.25)
    assigned = torch.arange(8).remainder(4)[:, None]
    assert moe.balance_loss(uniform, assigned).item() == pytest.approx(1.0)
    collapsed = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(8, 1)
    assert moe.balance_loss(collapsed, torch.zeros(8, 1, dtype=torch.long)).item() == pytest.approx(4 * 0.97)


def test_moe_plus_plus_zero_copy_and_constant_experts():
    torch.manual_seed(0)
    layer = MoEPlusPlus(6, 12, num_experts=2, top_k=2, zero_experts=1, copy_experts=1, constant_experts=1)
    assert layer.num_routed == 5  # order: 2 MLP, constant, copy, zero
    x = torch.randn(4, 6)
    with torch.no_grad():  # route every token to the copy and the zero expert
        layer.router.weight.zero_()
        layer.router.weight[3].fill_(0.0)
        layer.router.weight[3, 0] = 50.0
        layer.router.weight[4, 0] = 45.0
    x[:, 0] = 1.0
    torch.testing.assert_close(layer(x), x)  # zero's share is dropped and copy's renormalised to 1
    with torch.no_grad():  # now the constant expert and the zero expert
        layer.router.weight[2, 0] = 60.0
        layer.router.weight[3, 0] = 0.0
    mix = torch.softmax(layer.constant_mix(x), -1)
    torch.testing.assert_close(
        layer(x), mix[:, :1] * x + mix[:, 1:] * layer.constants[0], atol=1e-6, rtol=1e-6
    )


def test_heterogeneous_balance_weights_and_gating_residuals():
    layers = nn.Sequential(*(ChannelMLP(kind="moe_plus_plus", num_experts=3).build(8, 16) for _ in range(3)))
    link_gating_residuals(layers)
    first, second, third = layers
    assert first.gate_map is None and second.gate_map is not None and third._previous == [second]
    assert first.balance_eta.tolist() == [1.0] * 3 + [0.75] * 4
    x = torch.randn(2, 5, 8)
    out = layers(x)
    tokens = layers[1](layers[0](x)).reshape(-1, 8)  # the third layer's input
    expected = third.router(tokens) + third.gate_map(second.last_logits)  # W_r x + W_g logits_{j-1}
    torch.testing.assert_close(third.last_logits, expected, atol=1e-6, rtol=1e-6)
    assert_every_trainable_parameter_gets_a_gradient(layers, out.square().mean() + auxiliary_loss(layers))
    mismatched = nn.Sequential(
        ChannelMLP(kind="moe_plus_plus", num_experts=3).build(8, 16),
        ChannelMLP(kind="moe_plus_plus", num_experts=4).build(8, 16),
    )
    with pytest.raises(ConfigError, match="same number of experts in every layer"):
        link_gating_residuals(mismatched)


def test_auxiliary_loss_collects_every_layer():
    layers = nn.Sequential(
        *(ChannelMLP(kind="moe", num_experts=3, aux_loss_weight=0.5).build(8, 16) for _ in range(2))
    )
    assert auxiliary_loss(layers) is None  # nothing before a forward pass
    layers(torch.randn(4, 8))
    total = auxiliary_loss(layers)
    torch.testing.assert_close(total, layers[0].aux_loss + layers[1].aux_loss)
    assert auxiliary_loss(nn.Linear(2, 2)) is None


def test_bad_settings():
    with pytest.raises(ConfigError, match="top_k=5 exceeds the 4 experts"):
        MixtureOfExperts(8, 16, num_experts=4, top_k=5)
    with pytest.raises(ConfigError, match="zero_experts must be >= 0"):
        MoEPlusPlus(8, 16, zero_experts=-1)
    with pytest.raises(ConfigError, match="keeps the width"):
        ChannelMLP(kind="moe").build(8, 16, out_features=4)
    with pytest.raises(ConfigError, match="conventional, hourglass, moe or moe_plus_plus"):
        ChannelMLP(kind="dense").build(8, 16)


def test_a_masked_router_and_gate_map_are_recomputed_at_every_step():
    # the router and MoE++'s gate map read their nn.Linear's weight (F.linear(x, self.router.weight)):
    # a torch.nn.utils.prune mask recomputes a weight in a forward pre-hook of its layer, which never ran,
    # so after pruning the router kept the tensor of the pruning step and the second backward failed
    # ("Trying to backward through the graph a second time")
    from torch.nn.utils import prune

    torch.manual_seed(0)
    layers = nn.Sequential(*(ChannelMLP(kind="moe_plus_plus", num_experts=3).build(8, 16) for _ in range(2)))
    link_gating_residuals(layers)
    masked = [layers[0].router, layers[1].router, layers[1].gate_map]
    for layer in masked:
        prune.l1_unstructured(layer, "weight", amount=0.5)
    zeros = [layer.weight == 0 for layer in masked]
    optimizer = torch.optim.SGD(layers.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        (layers(torch.randn(2, 5, 8)).square().mean() + auxiliary_loss(layers)).backward()
        optimizer.step()
    for layer, zero in zip(masked, zeros, strict=True):
        assert (layer.weight[zero] == 0).all() and layer.weight_orig.grad is not None
    x = torch.randn(4, 8)
    layers[0](x)
    expected = torch.nn.functional.linear(x, layers[0].router.weight_orig * layers[0].router.weight_mask)
    torch.testing.assert_close(layers[0].last_logits, expected)  # the current weights, masked


def test_a_fan_dependent_rule_reaches_every_expert_as_an_nn_linear():
    # init_experts(init) without std applies init to each expert's matrix in nn.Linear's (out, in)
    # layout: nn.Linear's own default (kaiming_uniform_, a=sqrt(5)) gives w1 the bound 1/sqrt(dim) of a
    # dim -> hidden layer and w2 the bound 1/sqrt(hidden) of a hidden -> dim one
    torch.manual_seed(0)
    experts = MixtureOfExperts(8, 64, num_experts=3)
    experts.init_experts(lambda w: nn.init.kaiming_uniform_(w, a=5**0.5), bias_init=nn.init.ones_)
    for weight, fan_in in ((experts.w1, 8), (experts.w2, 64)):
        bound = fan_in**-0.5
        assert bound * 0.95 < weight.abs().max() <= bound
    assert experts.b1.eq(1).all() and experts.b2.eq(1).all()
    with pytest.raises(ValueError, match="output_std needs std"):
        experts.init_experts(nn.init.xavier_uniform_, output_std=0.01)
