"""Global magnitude pruning (Gupta et al.): one threshold for the whole network, the Minimum Threshold."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlplab.analysis import pruning
from mlplab.models import registry
from mlplab.nn import ChannelMLP


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 4)
    )
    with torch.no_grad():
        net[4].weight.mul_(0.01)  # a layer of small weights: global ranking empties it first
    return net


def test_prunes_the_globally_smallest_weights_to_the_exact_target():
    net = small_net()
    layers = pruning.prunable_weights(net)
    assert [w.name for w in layers] == ["0.weight", "2.weight", "4.weight"]
    everything = torch.cat([w.tensor.detach().abs().flatten() for w in layers])
    masked, total = pruning.global_magnitude_prune(layers, 0.5)
    assert total == everything.numel() and masked == round(0.5 * total)
    assert pruning.sparsity(layers) == (masked, total)
    threshold = everything.sort().values[masked - 1]
    for w in layers:  # every pruned weight is at most the threshold, every kept one at least
        original, mask = w.module.weight_orig.detach().abs(), w.mask.bool()
        assert original[~mask].max() <= threshold
        assert not mask.any() or original[mask].min() >= threshold
    assert layers[2].tensor.count_nonzero() == 0  # the small layer collapsed


def test_the_minimum_threshold_keeps_every_layer_alive():
    net = small_net()
    layers = pruning.prunable_weights(net)
    masked, total = pruning.global_magnitude_prune(layers, 0.5, min_weights_per_layer=10)
    assert masked == round(0.5 * total)  # still the target, taken from the other layers
    assert all(w.tensor.count_nonzero() >= 10 for w in layers)
    small = layers[2].module
    kept = small.weight_mask.bool().flatten()
    assert set(small.weight_orig.detach().abs().flatten().topk(10).indices.tolist()) == set(
        kept.nonzero().flatten().tolist()
    )


def test_a_higher_target_prunes_further_and_keeps_earlier_masks():
    net = small_net()
    layers = pruning.prunable_weights(net)
    pruning.global_magnitude_prune(layers, 0.3)
    first = {w.name: w.mask.clone() for w in layers}
    masked, total = pruning.global_magnitude_prune(layers, 0.8)
    assert masked == round(0.8 * total) == pruning.sparsity(layers)[0]
    for w in layers:
        assert not (w.mask.bool() & ~first[w.name].bool()).any()  # nothing comes back
    assert pruning.global_magnitude_prune(layers, 0.5) == (masked, total)  # a lower target: no change


def test_pruned_weights_stay_zero_while_training_and_fold_into_plain_weights():
    net = small_net()
    layers = pruning.prunable_weights(net)
    pruning.global_magnitude_prune(layers, 0.6)
    zeros = {w.name: w.tensor == 0 for w in layers}
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(3):
        loss = net(torch.randn(4, 3, 6, 6)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for w in layers:
        assert (w.tensor[zeros[w.name]] == 0).all()
    saved = pruning.masks(layers)
    pruning.make_permanent(layers)
    assert all(isinstance(w.tensor, nn.Parameter) and w.mask is None for w in layers)
    assert pruning.sparsity(layers)[0] >= round(0.6 * pruning.sparsity(layers)[1])
    fresh = small_net()  # a resumed fit: the saved masks come back as reparametrisations
    fresh_layers = pruning.prunable_weights(fresh)
    pruning.apply_masks(fresh_layers, saved)
    for w in fresh_layers:
        assert torch.equal(w.mask.bool(), saved[w.name]) and (w.tensor[~saved[w.name]] == 0).all()


def test_embeddings_tied_heads_and_fixed_projections_are_not_pruned():
    model = registry.build("Transformer", 23, 24, embed_dim=16, depth=2, num_heads=2)
    names = [w.module_name for w in pruning.prunable_weights(model)]
    assert "head" not in names and names == [
        "blocks.0.mixer.qkv", "blocks.0.mixer.out_proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2",
        "blocks.1.mixer.qkv", "blocks.1.mixer.out_proj", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2",
    ]  # fmt: skip
    untied = registry.build("Transformer", 23, 24, embed_dim=16, depth=1, num_heads=2, tie_embeddings=False)
    assert "head" in [w.module_name for w in pruning.prunable_weights(untied)]
    fixed = registry.build("HourglassMLP", (1, 8, 8), (1, 8, 8), embed_dim=32, mlp_dim=8, depth=1,
                           fixed_input_projection=True)  # fmt: skip
    assert "input_projection" not in [w.module_name for w in pruning.prunable_weights(fixed)]


@pytest.mark.parametrize(("family", "mlp_dim"), [("HourglassMLP", 8), ("ConventionalMLP", 80)])
def test_a_trainable_input_projection_is_pruned_with_the_other_layers(family, mlp_dim):
    # W_in of the Hourglass / conventional MLPs (a RandomProjection, trained unless fixed) is their
    # first linear layer: it was left out, a third of the weights of the MNIST recipes, and the
    # "global" sparsity covered only the rest of the network
    torch.manual_seed(0)
    model = registry.build(family, (1, 8, 8), (1, 8, 8), mlp_dim=mlp_dim, depth=1)
    layers = pruning.prunable_weights(model)
    assert layers[0].name == "input_projection.weight"
    trainable = [p for p in model.parameters() if p.requires_grad and p.ndim == 2]
    assert sum(w.tensor.numel() for w in layers) == sum(p.numel() for p in trainable)
    pruning.global_magnitude_prune(layers, 0.5)
    zeros, total = pruning.sparsity(layers)
    assert zeros == round(0.5 * total) and (model.input_projection.weight == 0).any()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        expected = model(x)
    pruning.make_permanent(layers)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)


def test_transposed_convolutions_are_pruned():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ConvTranspose2d(4, 1, 3))
    assert [w.name for w in pruning.prunable_weights(net)] == ["0.weight", "1.weight"]


def test_cubic_schedule():
    assert pruning.cubic_sparsity(0, 0.8, 10, 110) == 0.0
    assert pruning.cubic_sparsity(10, 0.8, 10, 110) == 0.0
    assert pruning.cubic_sparsity(60, 0.8, 10, 110) == pytest.approx(0.8 * (1 - 0.5**3))
    assert pruning.cubic_sparsity(110, 0.8, 10, 110) == pruning.cubic_sparsity(500, 0.8, 10, 110) == 0.8


@pytest.mark.parametrize(
    ("family", "args", "custom"),
    [
        ("TabM", {"arch_type": "tabm"}, ["blocks.0.linear", "blocks.1.linear", "head"]),
        ("TabM", {"arch_type": "tabm-packed"}, ["blocks.0.linear", "blocks.1.linear", "head"]),
        ("FinalMLP", {}, ["fusion"]),
    ],
)
def test_linear_maps_of_a_familys_own_layers_are_pruned(family, args, custom):
    # TabM's ensemble layers and FinalMLP's bilinear fusion keep their weight in modules of their own,
    # not nn.Linear: they were left out (TabM had nothing to prune at all) and the sparsity covered the rest
    spec = registry.get(family)
    shapes = registry.DOMAINS[spec.domains[0]].example_shapes
    torch.manual_seed(0)
    model = registry.build(family, *shapes, variant="tiny", **args).eval()
    layers = pruning.prunable_weights(model)
    names = [w.module_name for w in layers]
    assert set(custom) <= set(names), names
    linear_weights = sum(m.weight.numel() for m in model.modules() if pruning.prunable_parameter_names(m))
    _, total = pruning.sparsity(layers)  # what report.json's prunable_weights and the sparsity count
    plain = sum(m.weight.numel() for m in model.modules() if isinstance(m, pruning.PRUNABLE))
    assert total == linear_weights > plain
    pruning.global_magnitude_prune(layers, 0.5)
    assert pruning.sparsity(layers) == (round(0.5 * total), total)
    x_num = torch.randn(3, shapes[0])
    x_cat = torch.stack([torch.randint(0, c + 1, (3,)) for c in shapes[1]], 1) if shapes[1] else None
    x_cat = x_cat if x_cat is not None else torch.zeros(3, 0, dtype=torch.int64)
    with torch.no_grad():
        expected = model(x_num, x_cat)
    pruning.make_permanent(layers)
    with torch.no_grad():
        torch.testing.assert_close(model(x_num, x_cat), expected)


@pytest.mark.parametrize("family", ["KAN", "SKAN", "GaussianRBFNet", "Mamba"])
def test_parameters_that_are_not_linear_weights_are_not_pruned(family):
    # spline and basis coefficients (KAN, S-KAN), RBF centres and precisions, Mamba's A_log
    spec = registry.get(family)
    shapes = registry.DOMAINS[spec.domains[0]].example_shapes
    model = registry.build(family, *shapes, variant="tiny")
    pruned = {id(w.tensor) for w in pruning.prunable_weights(model)}
    for name, parameter in model.named_parameters():
        if any(
            part in name for part in ("coef", "scale_", "selection", "centres", "log_precisions", "A_log")
        ):
            assert id(parameter) not in pruned, name


def reduced_moe_transformer(kind: str = "moe") -> nn.Module:
    """One head, a symmetric merged ``W_QK`` (packed), a merged ``W_VO`` and mixture-of-experts MLPs."""
    torch.manual_seed(0)
    model = registry.build(
        "Transformer", 23, 16, embed_dim=8, depth=2, num_heads=1, query_key="merged", value_output="merged",
        symmetric_similarity=True, channel_mlp=ChannelMLP(kind=kind, num_experts=4, top_k=2),
    )  # fmt: skip
    return model  # the experts start at the other layers' scale: 50% prunes part of every parameter


@pytest.mark.parametrize("kind", ["moe", "moe_plus_plus"])
def test_the_experts_and_the_packed_symmetric_w_qk_are_pruned_and_counted(kind):
    # the experts' w1 / w2 (most of an MoE model's weights) and the symmetric W_QK, stored packed as its
    # d(d+1)/2 lower triangle, are not an nn.Linear's weight: pruning skipped them, and the sparsity and
    # report.json's prunable_weights did not count them
    model = reduced_moe_transformer(kind)
    layers = pruning.prunable_weights(model)
    names = {w.name for w in layers}
    for block in ("blocks.0", "blocks.1"):
        assert {f"{block}.mlp.w1", f"{block}.mlp.w2", f"{block}.mixer.query.weight"} <= names, names
    assert not any(name.endswith(("b1", "b2", "constants")) for name in names)  # biases, MoE++'s vectors
    packed = model.blocks[0].mixer.query
    assert packed.weight.shape == (8 * 9 // 2,)
    experts = sum(m.w1.numel() + m.w2.numel() for m in model.modules() if hasattr(m, "w1"))
    _, total = pruning.sparsity(layers)
    assert total == experts + 2 * packed.weight.numel() + sum(
        m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear) and m is not model.head
    )
    masked, total = pruning.global_magnitude_prune(layers, 0.5)
    assert masked == round(0.5 * total) == pruning.sparsity(layers)[0]
    everything = torch.cat([w.tensor.detach().flatten() for w in layers])  # the masked values
    threshold = torch.cat([getattr(w.module, w.parameter + "_orig").detach().abs().flatten() for w in layers])
    threshold = threshold.sort().values[masked - 1]
    for w in layers:  # one global ranking over every prunable parameter, whatever its name and shape
        original = getattr(w.module, w.parameter + "_orig").detach().abs()
        kept = w.mask.bool()
        assert original[~kept].max() <= threshold and (not kept.any() or original[kept].min() >= threshold)
    assert int((everything == 0).sum()) == masked
    for w in layers:
        assert 0.0 < float((w.tensor == 0).float().mean()) < 1.0, w.name  # pruned in part
    matrix = packed.matrix()
    assert torch.equal(matrix, matrix.T) and int((matrix == 0).sum()) > 0  # still symmetric, now sparse


def test_pruned_experts_and_packed_weights_stay_zero_through_a_fine_tune_and_load_unpruned():
    # what `mlplab prune --finetune-steps` does: train with the masks in place (the task's parameter
    # groups, weight decay on), fold the masks, write plain parameters that the unpruned model loads
    from mlplab.nn.moe import auxiliary_loss
    from mlplab.optim import weight_decay_groups

    model = reduced_moe_transformer()
    layers = pruning.prunable_weights(model)
    pruning.global_magnitude_prune(layers, 0.5)
    zeros = {w.name: w.tensor == 0 for w in layers}
    before = {w.name: w.tensor.detach().clone() for w in layers}
    optimizer = torch.optim.AdamW(weight_decay_groups(model), lr=1e-2, weight_decay=0.1)
    tokens = torch.randint(0, 23, (4, 16))
    for _ in range(3):
        logits = model(tokens)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()) + auxiliary_loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for w in layers:
        assert (w.tensor[zeros[w.name]] == 0).all(), w.name
        kept = ~zeros[w.name]
        assert not torch.equal(w.tensor[kept], before[w.name][kept]), w.name  # the rest trained on
    with torch.no_grad():
        expected = model.eval()(tokens)
    pruning.make_permanent(layers)
    state = model.state_dict()
    assert not any(key.endswith(("_orig", "_mask")) for key in state)
    fresh = reduced_moe_transformer().eval()
    fresh.load_state_dict(state)  # strict: the pruned model's parameters keep their names
    with torch.no_grad():
        torch.testing.assert_close(fresh(tokens), expected)
    assert pruning.sparsity(pruning.prunable_weights(fresh))[0] >= round(0.5 * pruning.sparsity(layers)[1])


def test_masks_are_keyed_by_parameter_and_older_masks_by_module_still_apply():
    model = reduced_moe_transformer()
    layers = pruning.prunable_weights(model)
    pruning.global_magnitude_prune(layers, 0.5)
    saved = pruning.masks(layers)
    assert {"blocks.0.mlp.w1", "blocks.0.mlp.w2", "blocks.0.mixer.query.weight"} <= set(saved)
    fresh = reduced_moe_transformer()
    fresh_layers = pruning.prunable_weights(fresh)
    legacy = {name.removesuffix(".weight"): mask for name, mask in saved.items() if name.endswith(".weight")}
    pruning.apply_masks(fresh_layers, {**legacy, "blocks.0.mlp.w1": saved["blocks.0.mlp.w1"]})
    for w in fresh_layers:
        if w.parameter == "weight" or w.name == "blocks.0.mlp.w1":
            assert torch.equal(w.mask.bool(), saved[w.name]), w.name
        else:
            assert w.mask is None, w.name


def test_the_selection_rule_is_one_class_attribute():
    class Experts(nn.Module):
        prunable_weights = ("w", "missing")

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(2, 3, 4))
            self.missing = None
            self.bias = nn.Parameter(torch.zeros(4))

    class Opted(nn.Linear):
        prunable_weights = ()

    class Old(nn.Module):
        prunable_weight = True

    net = nn.Sequential(Experts(), nn.Linear(4, 4), Opted(4, 4))
    assert [w.name for w in pruning.prunable_weights(net)] == ["0.w", "1.weight"]
    with pytest.raises(TypeError, match=r"^Old: the class attribute prunable_weight = True was replaced by"):
        pruning.prunable_parameter_names(Old())
    Experts.prunable_weights = "w"
    with pytest.raises(TypeError, match=r"^Experts.prunable_weights must be a tuple of parameter names"):
        pruning.prunable_parameter_names(Experts())


def _pruning_cases() -> list:
    from tests.models.test_registry import KINDS, TINY

    cases = [(name, domain, None) for name, domain in TINY]
    cases += [(name, registry.get(name).domains[0], kind) for name, kind in KINDS]
    return cases


@pytest.mark.parametrize(("name", "domain", "kind"), _pruning_cases())
def test_every_family_trains_on_with_its_masks(name, domain, kind):
    # a masked weight is recomputed (weight_orig * weight_mask) by a forward pre-hook of the layer that
    # owns it: a family that reads a child's weight without calling the child (the MoE router did) keeps
    # the tensor of the pruning step, and the second training step fails or trains a stale weight
    from tests.models.domains import HARNESSES
    from tests.models.test_registry import SMALL_CHANNEL_MLPS, tiny

    overrides = {} if kind is None else {"channel_mlp": SMALL_CHANNEL_MLPS[kind]}
    model, shapes, data_args = tiny(name, domain, **overrides)
    layers = pruning.prunable_weights(model)
    if not layers:
        assert name in ("KAN", "SKAN")  # nothing to prune, by design (module docs)
        return
    harness = HARNESSES[domain]
    batch = harness.batch(shapes, data_args)
    pruning.global_magnitude_prune(layers, 0.5)
    zeros = {w.name: w.tensor == 0 for w in layers}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        harness.loss(model(*batch.args, **batch.kwargs), batch.target).backward()
        optimizer.step()
    model(*batch.args, **batch.kwargs)
    for w in layers:
        assert torch.equal(w.tensor, getattr(w.module, w.parameter + "_orig") * w.mask), w.name  # current
        assert (w.tensor[zeros[w.name]] == 0).all(), w.name
