"""KAN: a stack of pykan's B-spline Kolmogorov-Arnold layers, on flat inputs.

Liu, Wang, Vaidya, Ruehle, Halverson, Soljacic, Hou and Tegmark, "KAN: Kolmogorov-Arnold Networks"
(2024; official code: KindXiaoming/pykan). ``depth`` layers of
:class:`~mlplab.models.kan.layers.BSplineKANLayer`, widths ``d_in -> embed_dim -> ... -> d_out``: pykan's
``width=[d_in] + [embed_dim] * (depth - 1) + [d_out]``. Compared with pykan's ``MultKAN``: no
multiplication nodes, no node/subnode affine parameters (pykan's defaults keep them at the identity),
no symbolic branch and no grid update from samples; the layers are the same, initialisation included
(``noise_scale`` 0.3, ``MultKAN``'s default; see the layer's docstring). With pykan's weights copied
in, outputs and gradients equal ``MultKAN``'s to float32 rounding
(``benchmarks/tabular_official_check.py --kan``; docs/results.md).

Shapes: ``(B, *input_shape) -> (B, d_in) -> (B, embed_dim) x (depth - 1) -> (B, d_out)``, reshaped to
``(B, *output_shape)``:
``((d,), (1,))`` for function fitting, ``((C, H, W), (K,))`` for image classification.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlplab.models.kan.layers import BSplineKANLayer, KANStack
from mlplab.models.registry import Variant, register_family


@register_family(
    domains=("function_fitting", "image_classification"),
    variants={
        "tiny": Variant({"embed_dim": 5, "depth": 2, "grid_size": 3}),
        "toy": Variant({"embed_dim": 5, "depth": 2, "grid_size": 5}, source="pykan's KAN(width=[2, 5, 1])"),
        "mnist": Variant(
            {"embed_dim": 64, "depth": 2, "grid_size": 5},
            shapes=((1, 28, 28), (10,)),
            source="efficient-kan's MNIST example, [784, 64, 10]",
        ),  # fmt: skip
    },
    source="own, weight for weight with pykan (benchmarks/tabular_official_check.py)",
)
class KAN(KANStack):
    """B-spline Kolmogorov-Arnold network (see the module docstring).

    Args:
        input_shape: Shape of one input sample; filled in from the data.
        output_shape: Shape of one output sample; filled in from the data.
        embed_dim: Width of the hidden layers.
        depth: Number of KAN layers (pykan's ``len(width) - 1``).
        grid_size: Grid intervals G of every B-spline (pykan's ``grid``).
        spline_order: Order k of the B-splines (pykan's ``k``).
        grid_range: ``[low, high]`` covered by the grids (inputs outside leave only the SiLU term).
        noise_scale: Scale of the noise the initial splines fit (pykan's ``noise_scale``).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 64,
        depth: int = 2,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        noise_scale: float = 0.3,
    ):
        super().__init__(input_shape, output_shape)
        self.build_layers(
            embed_dim,
            depth,
            lambda a, b: BSplineKANLayer(a, b, grid_size, spline_order, grid_range, noise_scale),
        )
