"""KAN against pykan (the same layer, weight for weight) and S-KAN's activation spaces and selection."""

from __future__ import annotations

import math

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import KAN, SKAN
from mlplab.models.kan.layers import (
    ActivationBasis,
    BSplineKANLayer,
    SelectableKANLayer,
    bspline_basis,
    uniform_grid,
)


def test_bsplines_sum_to_one_inside_the_grid_and_vanish_outside():
    grid = uniform_grid(3, grid_size=5, spline_order=3, grid_range=(-1, 1))
    assert grid.shape == (3, 5 + 2 * 3 + 1)
    inside = torch.rand(50, 3) * 1.98 - 0.99
    torch.testing.assert_close(bspline_basis(inside, grid, 3).sum(-1), torch.ones(50, 3))
    assert bspline_basis(torch.full((2, 3), 5.0), grid, 3).abs().sum() == 0


def _pykan():
    kan = pytest.importorskip("kan", reason="pykan is the `kan` extra: pip install mlplab[kan]")
    return kan


def test_layer_equals_pykans_kan_layer_weight_for_weight():
    kan = _pykan()
    torch.manual_seed(0)
    reference = kan.KANLayer(in_dim=3, out_dim=4, num=5, k=3)
    ours = BSplineKANLayer(3, 4, grid_size=5, spline_order=3)
    missing, unexpected = ours.load_state_dict(
        {k: v for k, v in reference.state_dict().items() if k != "mask"}, strict=True
    )
    assert not missing and not unexpected
    x = torch.rand(64, 3) * 2.4 - 1.2  # inside and outside the grid
    torch.testing.assert_close(ours(x), reference(x)[0], rtol=1e-5, atol=1e-6)


def test_network_equals_pykans_multkan_at_its_defaults():
    kan = _pykan()
    torch.manual_seed(0)
    reference = kan.MultKAN(width=[2, 5, 1], grid=5, k=3, auto_save=False, seed=0)
    ours = KAN((2,), (1,), embed_dim=5, depth=2, grid_size=5)
    for mine, theirs in zip(ours.layers, reference.act_fun):
        mine.load_state_dict({k: v for k, v in theirs.state_dict().items() if k != "mask"})
    x = torch.rand(32, 2) * 2 - 1
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)


def test_initial_splines_take_pykans_noise_at_the_grid_points():
    # pykan draws uniform noise in +-noise_scale / (2 G) at the G + 1 grid points (MultKAN: noise_scale
    # 0.3) and fits the spline to it; the old initialisation drew the coefficients themselves (at 0.5)
    grid_size, order = 5, 3
    torch.manual_seed(0)
    noise = (torch.rand(grid_size + 1, 2, 5) - 0.5) * 0.3 / grid_size
    torch.manual_seed(0)
    layer = KAN((2,), (1,), embed_dim=5, depth=2, grid_size=grid_size, spline_order=order).layers[0]
    points = layer.grid[:, order:-order].T  # (G + 1, in)
    spline = torch.einsum("pim,iom->pio", bspline_basis(points, layer.grid, order), layer.coef)
    torch.testing.assert_close(spline, noise, rtol=1e-4, atol=1e-6)


def test_initialisation_is_pykans_draw_for_draw():
    kan = _pykan()
    reference = kan.MultKAN(width=[3, 4, 2], grid=4, k=2, auto_save=False, seed=7)  # seeds torch with 7
    torch.manual_seed(7)
    ours = KAN((3,), (2,), embed_dim=4, depth=2, grid_size=4, spline_order=2)
    for mine, theirs in zip(ours.layers, reference.act_fun):
        for name in ("grid", "coef", "scale_base", "scale_sp"):
            expected = getattr(theirs, name).detach()
            torch.testing.assert_close(getattr(mine, name), expected, rtol=1e-5, atol=1e-7)


def test_chebyshev_gaussian_and_fourier_bases():
    x = torch.rand(10, 2) * 4 - 2
    chebyshev = ActivationBasis("chebyshev", 2, 5, 3, (-1, 1))(x)
    t = torch.tanh(x)
    torch.testing.assert_close(chebyshev, torch.stack([torch.cos(n * torch.arccos(t)) for n in range(5)], -1),
                               atol=1e-5, rtol=1e-5)  # fmt: skip
    gaussian = ActivationBasis("gaussian", 2, 5, 3, (-1, 1))(x)
    centres = torch.linspace(-1, 1, 5)
    torch.testing.assert_close(gaussian, torch.exp(-(((x[..., None] - centres) / 0.5) ** 2)))
    fourier = ActivationBasis("fourier", 2, 5, 3, (-1, 1))
    assert fourier.num_basis == 4
    torch.testing.assert_close(fourier(x)[..., 1], torch.cos(2 * x))
    with pytest.raises(ConfigError, match="unknown activation space 'wavelet'"):
        ActivationBasis("wavelet", 2, 5, 3, (-1, 1))


def test_selectable_layer_weighs_spaces_per_node_and_prunes_to_the_selected_ones():
    torch.manual_seed(0)
    layer = SelectableKANLayer(3, 2, bases=("bspline", "chebyshev", "fourier"), num_basis=6)
    with torch.no_grad():
        layer.selection.copy_(torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]]))
    x = torch.rand(8, 3) * 2 - 1
    weights = torch.softmax(layer.selection, -1)
    terms = [basis(x).flatten(1) @ coef for basis, coef in zip(layer.bases, layer.coefs)]
    base = torch.nn.functional.silu(x) @ layer.scale_base
    expected = base + sum(t * weights[:, s] for s, t in enumerate(terms))
    torch.testing.assert_close(layer(x), expected)
    layer.select_activations(keep=1)
    assert layer.active.tolist() == [[True, False, False], [False, True, False]]
    pruned = base + torch.stack([terms[0][:, 0] * weights[0, 0], terms[1][:, 1] * weights[1, 1]], -1)
    torch.testing.assert_close(layer(x), pruned)  # the kept spaces keep their weights
    layer.select_activations(keep=1)  # selecting again changes nothing
    assert layer.active.sum().item() == 2
    # the pruning travels with the weights
    fresh = SelectableKANLayer(3, 2, bases=("bspline", "chebyshev", "fourier"), num_basis=6)
    fresh(x)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x), layer(x))


def test_selectable_layer_by_hand():
    # one edge, Gaussian RBFs (centres -1 and 1, width 2) and Fourier (cos x, sin x) spaces, numbers
    # worked out by hand from the docstring's y = scale_base silu(x) + sum_s w_s phi^s(x)
    layer = SelectableKANLayer(1, 1, bases=("gaussian", "fourier"), num_basis=2)
    with torch.no_grad():
        layer.coefs[0].copy_(torch.tensor([[1.0], [2.0]]))
        layer.coefs[1].copy_(torch.tensor([[3.0], [-1.0]]))
        layer.scale_base.fill_(0.5)
        layer.selection.copy_(torch.tensor([[0.0, math.log(3.0)]]))  # softmax: 1/4, 3/4
    x = 0.5
    silu = x / (1 + math.exp(-x))
    gaussian = math.exp(-(((x + 1) / 2) ** 2)) + 2 * math.exp(-(((x - 1) / 2) ** 2))
    fourier = 3 * math.cos(x) - math.sin(x)
    expected = 0.5 * silu + 0.25 * gaussian + 0.75 * fourier
    assert layer(torch.tensor([[x]])).item() == pytest.approx(expected, rel=1e-6)


def test_skan_gradients_reach_the_selection_and_pruned_spaces_stop_learning():
    torch.manual_seed(0)
    model = SKAN((2,), (1,), embed_dim=4, depth=2, num_basis=5)
    x = torch.rand(16, 2) * 2 - 1
    model(x).pow(2).mean().backward()
    assert all(layer.selection.grad.abs().sum() > 0 for layer in model.layers)
    model.zero_grad()
    model.select_activations(keep=1)
    model(x).pow(2).mean().backward()
    first = model.layers[0]
    unused = [s for s in range(4) if not first.active[:, s].any()]
    assert unused and all(first.coefs[s].grad is None or first.coefs[s].grad.abs().sum() == 0 for s in unused)


def test_kan_mnist_variant_counts_efficient_kans_parameters():
    model = KAN((1, 28, 28), (10,), embed_dim=64, depth=2, grid_size=5, spline_order=3)
    # per edge: G + k spline coefficients, a spline scale and a base scale
    assert sum(p.numel() for p in model.parameters()) == (784 * 64 + 64 * 10) * (5 + 3 + 2)
    with pytest.raises(ConfigError, match="grid_range must be"):
        KAN((2,), (1,), grid_range=(1.0, -1.0))
    assert math.isfinite(model(torch.randn(2, 1, 28, 28)).sum().item())
