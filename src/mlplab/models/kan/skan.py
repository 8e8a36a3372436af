"""S-KAN: a Kolmogorov-Arnold network whose nodes select among activation spaces.

Yang, Zhang, Luo, Lu and Shen, "Activation Space Selectable Kolmogorov-Arnold Networks" (arXiv
2408.08338, 2024; no official code found: mlplab's reading of the paper). ``depth`` layers of
:class:`~mlplab.models.kan.layers.SelectableKANLayer`: every edge carries a function in each
activation space of ``bases`` (B-splines, Chebyshev polynomials, Gaussian RBFs, Fourier series, each
with ``num_basis`` coefficients) plus pykan's SiLU residual, and every node weighs the spaces with
learned selection weights. The paper's three phases: train all spaces (full training), keep each
node's selected spaces (selection) and train on with the others pruned; add the callback
``mlplab.callbacks.ActivationSelection`` (``at_epoch``, ``keep``) to a recipe to select during a fit.

Shapes: as :class:`~mlplab.models.kan.kan.KAN`:
``(B, *input_shape) -> (B, d_in) -> (B, embed_dim) x (depth - 1) -> (B, d_out) -> (B, *output_shape)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlplab.models.kan.layers import BASES, KANStack, SelectableKANLayer
from mlplab.models.registry import Variant, register_family


@register_family(
    domains=("function_fitting", "image_classification"),
    variants={
        "tiny": Variant({"embed_dim": 5, "depth": 2, "num_basis": 4, "spline_order": 2}),
        "toy": Variant({"embed_dim": 5, "depth": 2, "num_basis": 8}, source="the KAN toy width [d, 5, 1]"),
        "mnist": Variant(
            {"embed_dim": 64, "depth": 2, "num_basis": 8},
            shapes=((1, 28, 28), (10,)),
            source="[784, 64, 10], as KAN's MNIST variant",
        ),  # fmt: skip
    },
    source="own (no official code: mlplab's reading of the paper)",
    name="SKAN",
)
class SKAN(KANStack):
    """Kolmogorov-Arnold network with selectable activation spaces (see the module docstring).

    Args:
        input_shape: Shape of one input sample; filled in from the data.
        output_shape: Shape of one output sample; filled in from the data.
        embed_dim: Width of the hidden layers.
        depth: Number of layers.
        bases: The activation spaces every node selects among (``bspline``, ``chebyshev``,
            ``gaussian``, ``fourier``).
        num_basis: Coefficients of every edge function in each space.
        spline_order: Order of the B-splines.
        grid_range: ``[low, high]`` of the B-spline grid and of the Gaussian centres.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 64,
        depth: int = 2,
        bases: Sequence[str] = BASES,
        num_basis: int = 8,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
    ):
        super().__init__(input_shape, output_shape)
        self.build_layers(
            embed_dim,
            depth,
            lambda a, b: SelectableKANLayer(a, b, bases, num_basis, spline_order, grid_range),
        )

    def select_activations(self, keep: int = 1) -> None:
        """Keep every node's ``keep`` most weighted activation spaces (S-KAN's selection phase)."""
        for layer in self.layers:
            layer.select_activations(keep)
