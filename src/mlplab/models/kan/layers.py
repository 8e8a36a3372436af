"""KAN layers: pykan's B-spline layer and S-KAN's layer with a learned selection among activation bases.

A Kolmogorov-Arnold layer puts a learnable univariate function on every edge ``i -> j`` and sums at the
nodes: ``y_j = sum_i phi_ij(x_i)``. This module also registers the ``function_fitting`` domain.

* :class:`BSplineKANLayer` is pykan's ``KANLayer`` (Liu et al., "KAN: Kolmogorov-Arnold Networks",
  2024; KindXiaoming/pykan, ``kan/KANLayer.py`` and ``kan/spline.py``): ``phi_ij(x) = scale_base_ij
  silu(x) + scale_spline_ij spline_ij(x)`` with ``spline_ij(x) = sum_m coef_ijm B_m(x)``, the B-splines
  of order ``k`` on a uniform grid of ``G`` intervals over ``grid_range`` extended by ``k`` intervals on
  each side (Cox-de Boor recursion, zero outside the extended grid). Parameter names and shapes are
  pykan's (``grid (in, G + 2k + 1)``, ``coef (in, out, G + k)``, ``scale_base`` and ``scale_sp`` ``(in,
  out)``), so pykan's weights load as they are; ``tests/models/kan/test_layers.py`` checks the outputs
  against pykan. The initialisation is pykan's, draw for draw (the same seed gives the same weights):
  ``coef`` the least-squares fit to uniform noise in ``±noise_scale / (2 G)`` at the grid points,
  ``scale_base`` uniform in ``±1 / sqrt(in)``, ``scale_sp`` ``1 / sqrt(in)``. Deviations: no grid
  update from samples, no symbolic branch, no mask parameter. The sum is computed as one matrix product (as
  efficient-kan does) instead of materialising the ``(batch, out, in)`` activations.
* :class:`SelectableKANLayer` is the layer of S-KAN (Yang, Zhang, Luo, Lu and Shen, "Activation Space
  Selectable Kolmogorov-Arnold Networks", arXiv 2408.08338, 2024; no official code found): every edge
  has a function in each of several activation spaces (B-splines, Chebyshev polynomials, Gaussian
  RBFs, Fourier series), and each output node ``j`` weighs the spaces with learned selection weights
  ``w_js = softmax_s(a_js)``: ``y_j = sum_i [scale_base_ij silu(x_i) + sum_s w_js phi^s_ij(x_i)]``. The
  paper trains all spaces, then keeps the selected ones and prunes the rest;
  :meth:`SelectableKANLayer.select_activations` does that (the
  :class:`mlplab.callbacks.ActivationSelection` callback calls it at a chosen epoch); the kept spaces
  keep their weights, the others' terms are removed and no longer computed.

:class:`KANStack` is what the KAN families share: a stack of such layers on flat inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.flat import FlatMLP
from mlplab.models.registry import Domain, register_domain

register_domain(Domain("function_fitting", ("FunctionFitting",),
                       "family((num_inputs,), (num_outputs,)): samples (B, d) -> values (B, d_out)",
                       ((2,), (1,))))  # fmt: skip

#: The activation spaces of :class:`SelectableKANLayer`.
BASES = ("bspline", "chebyshev", "gaussian", "fourier")


def uniform_grid(
    in_features: int, grid_size: int, spline_order: int, grid_range: Sequence[float]
) -> torch.Tensor:
    """Pykan's extended grid ``(in_features, grid_size + 2 spline_order + 1)`` over ``grid_range``."""
    low, high = float(grid_range[0]), float(grid_range[1])
    step = (high - low) / grid_size
    points = low + step * torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float32)
    return points.expand(in_features, -1).contiguous()


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """Bases ``(B, in, G + k)`` of ``x`` ``(B, in)`` on ``grid`` ``(in, G + 2k + 1)`` by Cox-de Boor."""
    x = x.unsqueeze(-1)
    bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
    for k in range(1, spline_order + 1):
        left = (x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)]) * bases[..., :-1]
        right = (grid[:, k + 1 :] - x) / (grid[:, k + 1 :] - grid[:, 1:-k]) * bases[..., 1:]
        bases = left + right
    return bases


def fit_coefficients(values: torch.Tensor, grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """Pykan's ``curve2coef`` at the grid points: spline coefficients that take the given values there.

    ``values`` ``(G + 1, in, out)`` at the ``G + 1`` points of the unextended grid give the coefficients
    ``(in, out, G + k)``: the minimum-norm least-squares solution (``G + k`` unknowns, ``G + 1``
    conditions), as pykan's ``torch.linalg.lstsq``.
    """
    if grid.is_meta:
        return torch.empty(values.shape[1], values.shape[2], grid.shape[1] - spline_order - 1, device="meta")
    points = grid[:, spline_order:-spline_order]  # (in, G + 1)
    design = bspline_basis(points.T, grid, spline_order).permute(1, 0, 2)  # (in, G + 1, G + k)
    return torch.linalg.lstsq(design, values.permute(1, 0, 2)).solution.permute(0, 2, 1).contiguous()


def base_scale(in_features: int, out_features: int) -> nn.Parameter:
    """Pykan's ``scale_base`` ``(in, out)``, the weights of the SiLU term, drawn in ``±1 / sqrt(in)``."""
    return nn.Parameter((torch.rand(in_features, out_features) * 2 - 1) / math.sqrt(in_features))


class BSplineKANLayer(nn.Module):
    """pykan's KAN layer (see the module docstring).

    Shapes: ``(B, in_features) -> (B, out_features)``.

    Args:
        in_features: Inputs of the layer.
        out_features: Outputs of the layer.
        grid_size: Grid intervals G (pykan's ``num``).
        spline_order: Order k of the B-splines.
        grid_range: ``[low, high]`` covered by the grid.
        noise_scale: Scale of the noise the initial splines fit (pykan's ``KANLayer`` default 0.5;
            its ``MultKAN``, the network, passes 0.3).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        noise_scale: float = 0.5,
    ):
        super().__init__()
        require_positive("BSplineKANLayer", in_features=in_features, out_features=out_features,
                         grid_size=grid_size)  # fmt: skip
        check_grid(grid_range, spline_order)
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order = grid_size, spline_order
        self.register_buffer("grid", uniform_grid(in_features, grid_size, spline_order, grid_range))
        # pykan's initialisation, draw for draw: uniform noise in +-noise_scale / (2 G) at the G + 1 grid
        # points of grid_range, the spline the least-squares (minimum-norm) fit to it, then scale_base
        noise = (torch.rand(grid_size + 1, in_features, out_features) - 0.5) * noise_scale / grid_size
        self.coef = nn.Parameter(fit_coefficients(noise, self.grid, spline_order))
        self.scale_base = base_scale(in_features, out_features)
        self.scale_sp = nn.Parameter(torch.ones(in_features, out_features) / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bases = bspline_basis(x, self.grid, self.spline_order).flatten(1)  # (B, in (G + k))
        weights = (self.coef * self.scale_sp[..., None]).permute(0, 2, 1).reshape(-1, self.out_features)
        return F.silu(x) @ self.scale_base + bases @ weights


def check_grid(grid_range: Sequence[float], spline_order: int) -> None:
    """Refuse a grid range that is not ``[low, high]`` with low < high, or a negative order."""
    if len(grid_range) != 2 or not float(grid_range[0]) < float(grid_range[1]):
        raise ConfigError(f"KAN: grid_range must be [low, high] with low < high, got {list(grid_range)}")
    if spline_order < 0:
        raise ConfigError(f"KAN: spline_order must be non-negative, got {spline_order}")


class ActivationBasis(nn.Module):
    """The ``num_basis`` functions of one activation space, evaluated per input: ``(B, in) -> (B, in, M)``.

    Args:
        kind: ``bspline`` (order ``spline_order`` on ``num_basis - spline_order`` intervals of the grid
            range, as pykan's), ``chebyshev`` (``T_0..T_{M-1}(tanh x)``, as ChebyKAN), ``gaussian``
            (``exp(-((x - c_m) / h)^2)`` with ``M`` centres spread over the grid range and ``h`` their
            spacing, as FastKAN) or ``fourier`` (``cos(m x), sin(m x)``, ``m = 1..M/2``, as FourierKAN).
        in_features: Inputs of the layer.
        num_basis: Functions per input M (rounded down to even for ``fourier``).
        spline_order: Order of the B-splines.
        grid_range: ``[low, high]`` of the B-spline grid and the Gaussian centres.
    """

    def __init__(
        self, kind: str, in_features: int, num_basis: int, spline_order: int, grid_range: Sequence[float]
    ):
        super().__init__()
        if kind not in BASES:
            raise ConfigError(f"S-KAN: unknown activation space {kind!r}; choose among {', '.join(BASES)}")
        self.kind = kind
        low, high = float(grid_range[0]), float(grid_range[1])
        if kind == "bspline":
            if num_basis <= spline_order:
                raise ConfigError(f"S-KAN: num_basis ({num_basis}) must exceed spline_order ({spline_order})")
            self.spline_order = spline_order
            self.register_buffer(
                "grid", uniform_grid(in_features, num_basis - spline_order, spline_order, grid_range)
            )
        elif kind == "gaussian":
            self.register_buffer("centres", torch.linspace(low, high, num_basis))
            self.width = (high - low) / max(num_basis - 1, 1)
        elif kind == "fourier":
            num_basis = 2 * max(num_basis // 2, 1)
            self.register_buffer("frequencies", torch.arange(1, num_basis // 2 + 1, dtype=torch.float32))
        self.num_basis = num_basis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "bspline":
            return bspline_basis(x, self.grid, self.spline_order)
        if self.kind == "chebyshev":
            t = torch.tanh(x)
            terms = [torch.ones_like(t), t]
            for _ in range(2, self.num_basis):
                terms.append(2 * t * terms[-1] - terms[-2])
            return torch.stack(terms[: self.num_basis], dim=-1)
        if self.kind == "gaussian":
            return torch.exp(-(((x[..., None] - self.centres) / self.width) ** 2))
        phase = x[..., None] * self.frequencies
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


class SelectableKANLayer(nn.Module):
    """S-KAN's layer: several activation spaces per edge, weighed per output node (see the module docstring).

    Shapes: ``(B, in_features) -> (B, out_features)``.

    Args:
        in_features: Inputs of the layer.
        out_features: Outputs of the layer.
        bases: The activation spaces (:data:`BASES`).
        num_basis: Functions per space and edge.
        spline_order: Order of the B-splines.
        grid_range: ``[low, high]`` of the B-spline grid and of the Gaussian centres.
        noise_scale: Initial coefficients are drawn uniformly in ``±noise_scale / (2 num_basis)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bases: Sequence[str] = BASES,
        num_basis: int = 8,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        noise_scale: float = 0.5,
    ):
        super().__init__()
        require_positive("SelectableKANLayer", in_features=in_features, out_features=out_features,
                         num_basis=num_basis)  # fmt: skip
        check_grid(grid_range, spline_order)
        if not bases or len(set(bases)) != len(bases):
            raise ConfigError(f"S-KAN: bases must name distinct activation spaces, got {list(bases)}")
        self.in_features, self.out_features = in_features, out_features
        self.bases = nn.ModuleList(
            ActivationBasis(kind, in_features, num_basis, spline_order, grid_range) for kind in bases
        )
        bound = noise_scale / (2 * num_basis)
        self.coefs = nn.ParameterList(
            nn.Parameter(torch.empty(in_features * basis.num_basis, out_features).uniform_(-bound, bound))
            for basis in self.bases
        )
        self.scale_base = base_scale(in_features, out_features)
        self.selection = nn.Parameter(torch.zeros(out_features, len(self.bases)))
        self.register_buffer("active", torch.ones(out_features, len(self.bases), dtype=torch.bool))
        self._used: list[bool] | None = None  # the spaces some node still uses (computed once, not per step)

    def selection_weights(self) -> torch.Tensor:
        """``(out_features, spaces)``: the softmax of the selection logits, zero for pruned spaces."""
        return torch.softmax(self.selection, dim=-1) * self.active

    @torch.no_grad()
    def select_activations(self, keep: int = 1) -> None:
        """Keep each node's ``keep`` most weighted activation spaces, prune the others (S-KAN's selection)."""
        require_positive("select_activations", keep=keep)
        ranked = self.selection.masked_fill(~self.active, float("-inf")).argsort(dim=-1, descending=True)
        chosen = torch.zeros_like(self.active)
        chosen.scatter_(1, ranked[:, :keep], True)
        self.active &= chosen
        self._used = None

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # a checkpoint may hold a pruned layer
        super()._load_from_state_dict(*args, **kwargs)
        self._used = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.selection_weights()
        y = F.silu(x) @ self.scale_base
        if self.active.is_meta:
            used = [True] * len(self.bases)
        else:
            if self._used is None:
                self._used = self.active.any(dim=0).tolist()
            used = self._used
        for s, (basis, coef) in enumerate(zip(self.bases, self.coefs)):
            if used[s]:
                y = y + (basis(x).flatten(1) @ coef) * weights[:, s]
        return y


class KANStack(FlatMLP):
    """Base of the KAN families: a stack of KAN layers on flat inputs.

    A family calls :meth:`build_layers` with its layer at the end of its ``__init__``; the layers are
    kept in ``layers`` (an ``nn.Sequential``), which is the whole body.

    Shapes: ``(B, *input_shape) -> (B, d_in) -> (B, embed_dim) x (depth - 1) -> (B, d_out)``, reshaped
    to ``(B, *output_shape)``.
    """

    def build_layers(self, embed_dim: int, depth: int, make_layer: Callable[[int, int], nn.Module]) -> None:
        """End of a family's ``__init__``: ``depth`` layers ``make_layer(in_features, out_features)``.

        The widths are pykan's ``width=[d_in] + [embed_dim] * (depth - 1) + [d_out]``.
        """
        require_positive(type(self).__name__, embed_dim=embed_dim, depth=depth)
        widths = [self.d_x] + [embed_dim] * (depth - 1) + [self.d_y]
        self.layers = nn.Sequential(*(make_layer(a, b) for a, b in zip(widths, widths[1:])))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


__all__ = [
    "BASES",
    "ActivationBasis",
    "BSplineKANLayer",
    "KANStack",
    "SelectableKANLayer",
    "base_scale",
    "bspline_basis",
    "fit_coefficients",
    "uniform_grid",
]
