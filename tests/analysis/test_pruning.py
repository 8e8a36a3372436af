"""Global magnitude pruning (Gupta et al.): one threshold for the whole network, the Minimum Threshold."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlplab.analysis import pruning
from mlplab.models import registry


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
    layers = pruning.prunable_layers(net)
    assert [name for name, _ in layers] == ["0", "2", "4"]
    everything = torch.cat([layer.weight.detach().abs().flatten() for _, layer in layers])
    masked, total = pruning.global_magnitude_prune(layers, 0.5)
    assert total == everything.numel() and masked == round(0.5 * total)
    assert pruning.sparsity(layers) == (masked, total)
    threshold = everything.sort().values[masked - 1]
    for _, layer in layers:  # every pruned weight is at most the threshold, every kept one at least
        original, mask = layer.weight_orig.detach().abs(), layer.weight_mask.bool()
        assert original[~mask].max() <= threshold
        assert not mask.any() or original[mask].min() >= threshold
    assert layers[2][1].weight.count_nonzero() == 0  # the small layer collapsed


def test_the_minimum_threshold_keeps_every_layer_alive():
    net = small_net()
    layers = pruning.prunable_layers(net)
    masked, total = pruning.global_magnitude_prune(layers, 0.5, min_weights_per_layer=10)
    assert masked == round(0.5 * total)  # still the target, taken from the other layers
    assert all(layer.weight.count_nonzero() >= 10 for _, layer in layers)
    small = layers[2][1]
    kept = small.weight_mask.bool().flatten()
    assert set(small.weight_orig.detach().abs().flatten().topk(10).indices.tolist()) == set(
        kept.nonzero().flatten().tolist()
    )


def test_a_higher_target_prunes_further_and_keeps_earlier_masks():
    net = small_net()
    layers = pruning.prunable_layers(net)
    pruning.global_magnitude_prune(layers, 0.3)
    first = {name: layer.weight_mask.clone() for name, layer in layers}
    masked, total = pruning.global_magnitude_prune(layers, 0.8)
    assert masked == round(0.8 * total) == pruning.sparsity(layers)[0]
    for name, layer in layers:
        assert not (layer.weight_mask.bool() & ~first[name].bool()).any()  # nothing comes back
    assert pruning.global_magnitude_prune(layers, 0.5) == (masked, total)  # a lower target: no change


def test_pruned_weights_stay_zero_while_training_and_fold_into_plain_weights():
    net = small_net()
    layers = pruning.prunable_layers(net)
    pruning.global_magnitude_prune(layers, 0.6)
    zeros = {name: layer.weight == 0 for name, layer in layers}
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(3):
        loss = net(torch.randn(4, 3, 6, 6)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, layer in layers:
        assert (layer.weight[zeros[name]] == 0).all()
    saved = pruning.masks(layers)
    pruning.make_permanent(layers)
    assert all(
        isinstance(layer.weight, nn.Parameter) and not hasattr(layer, "weight_mask") for _, layer in layers
    )
    assert pruning.sparsity(layers)[0] >= round(0.6 * pruning.sparsity(layers)[1])
    fresh = small_net()  # a resumed fit: the saved masks come back as reparametrisations
    fresh_layers = pruning.prunable_layers(fresh)
    pruning.apply_masks(fresh_layers, saved)
    for name, layer in fresh_layers:
        assert torch.equal(layer.weight_mask.bool(), saved[name]) and (layer.weight[~saved[name]] == 0).all()


def test_embeddings_tied_heads_and_fixed_projections_are_not_pruned():
    model = registry.build("Transformer", 23, 24, embed_dim=16, depth=2, num_heads=2)
    names = [name for name, _ in pruning.prunable_layers(model)]
    assert "head" not in names and names == [
        "blocks.0.mixer.qkv", "blocks.0.mixer.out_proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2",
        "blocks.1.mixer.qkv", "blocks.1.mixer.out_proj", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2",
    ]  # fmt: skip
    untied = registry.build("Transformer", 23, 24, embed_dim=16, depth=1, num_heads=2, tie_embeddings=False)
    assert "head" in [name for name, _ in pruning.prunable_layers(untied)]
    fixed = registry.build("HourglassMLP", (1, 8, 8), (1, 8, 8), embed_dim=32, mlp_dim=8, depth=1,
                           fixed_input_projection=True)  # fmt: skip
    assert "input_projection" not in [name for name, _ in pruning.prunable_layers(fixed)]


@pytest.mark.parametrize(("family", "mlp_dim"), [("HourglassMLP", 8), ("ConventionalMLP", 80)])
def test_a_trainable_input_projection_is_pruned_with_the_other_layers(family, mlp_dim):
    # W_in of the Hourglass / conventional MLPs (a RandomProjection, trained unless fixed) is their
    # first linear layer: it was left out, a third of the weights of the MNIST recipes, and the
    # "global" sparsity covered only the rest of the network
    torch.manual_seed(0)
    model = registry.build(family, (1, 8, 8), (1, 8, 8), mlp_dim=mlp_dim, depth=1)
    layers = pruning.prunable_layers(model)
    assert [name for name, _ in layers][0] == "input_projection"
    trainable = [p for p in model.parameters() if p.requires_grad and p.ndim == 2]
    assert sum(layer.weight.numel() for _, layer in layers) == sum(p.numel() for p in trainable)
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
    assert [name for name, _ in pruning.prunable_layers(net)] == ["0", "1"]


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
    layers = pruning.prunable_layers(model)
    names = [name for name, _ in layers]
    assert set(custom) <= set(names), names
    linear_weights = sum(m.weight.numel() for m in model.modules() if pruning.is_prunable_type(m))
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
    pruned = {id(layer.weight) for _, layer in pruning.prunable_layers(model)}
    for name, parameter in model.named_parameters():
        if any(
            part in name for part in ("coef", "scale_", "selection", "centres", "log_precisions", "A_log")
        ):
            assert id(parameter) not in pruned, name
