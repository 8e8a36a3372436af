"""Hourglass MLP and the conventional residual MLP it is compared with.

Paper: Meng-Hsi Chen, Yu-Ang Lee, Feng-Ting Liao, Da-shan Shiu, "Rethinking the shape convention of
an MLP", arXiv 2510.01796 (2025). Official code: github.com/mtkresearch/Hourglass_LM, folder
``hourglass_mlp`` (``utils/model.py``: ``HourGlassMLP``, ``ConventionalMLP``, ``MLPBlockReLU``).

Both networks flatten the input ``x`` (``d_x`` values), lift it with a bias-free input projection
``W_in`` (``d_x -> d_z``), run ``L`` residual blocks ``z + W2 · ReLU(W1 · BN(z))`` on a stream of
width ``d_z`` (``BN`` is ``BatchNorm1d`` without affine parameters; ``W1: d_z -> d_h`` and
``W2: d_h -> d_z`` have no biases), project back with a bias-free ``W_out`` (``d_z -> d_y``) and
apply a sigmoid, since the targets are pixels in [0, 1].

* Hourglass: every block is a narrow bottleneck inside a wide stream, ``d_h < d_z``. ``W_in`` may be
  fixed at its random initialisation (the paper's proposal; the official code keeps PyTorch's default
  ``Linear`` initialisation for it).
* Conventional: the usual shape, ``d_h > d_z``, with the stream as wide as the input (``d_z = d_x``)
  or, as the official code's commented-out check also allows, the output (``d_z = d_y``).

Parameters: ``d_x·d_z + L·2·d_z·d_h + d_z·d_y`` (e.g. 768/3546/16/L5/3072 -> 14,184,000).

Shapes: input ``(B, *input_shape)``, output ``(B, *output_shape)``, both flattened internally.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.flat import FlatMLP
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.nn import RandomProjection, ResidualMLPBlock


class ResidualStreamMLP(FlatMLP):
    """Shared body of :class:`HourglassMLP` and :class:`ConventionalMLP` (see the module docstring).

    Subclasses state their width rule in ``check_widths``.

    Args:
        input_shape: Shape of one input sample, e.g. ``(1, 28, 28)``; flattened to ``d_x`` values.
        output_shape: Shape of one output sample, e.g. ``(1, 28, 28)`` or ``(10,)``.
        d_z: Width of the residual stream.
        d_h: Width of the hidden layer inside every block.
        depth: Number of residual blocks (L).
        fixed_input_projection: Keep ``W_in`` at its random initialisation, never trained.
        projection_seed: Seed of ``W_in``'s initialisation; ``None`` draws it from the global generator.
        output_activation: ``sigmoid`` for pixel targets in [0, 1] (the paper), ``none`` for logits.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        d_z: int,
        d_h: int,
        depth: int,
        fixed_input_projection: bool = False,
        projection_seed: int | None = None,
        output_activation: Literal["sigmoid", "none"] = "sigmoid",
    ):
        super().__init__(input_shape, output_shape)
        name = type(self).__name__
        require_positive(name, d_z=d_z, d_h=d_h, depth=depth)
        if output_activation not in ("sigmoid", "none"):
            raise ConfigError(
                f"{name}: output_activation must be 'sigmoid' or 'none', got {output_activation!r}"
            )
        self.check_widths(d_x=self.d_x, d_y=self.d_y, d_z=d_z, d_h=d_h)
        self.d_z, self.d_h, self.depth = d_z, d_h, depth

        self.input_projection = RandomProjection(
            self.d_x, d_z, trainable=not fixed_input_projection, seed=projection_seed
        )
        self.blocks = nn.Sequential(
            *(
                ResidualMLPBlock(d_z, d_h, norm="batchnorm", norm_affine=False, activation="relu", bias=False)
                for _ in range(depth)
            )
        )
        self.output_projection = nn.Linear(d_z, self.d_y, bias=False)
        self.output_activation = nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity()

    def check_widths(self, d_x: int, d_y: int, d_z: int, d_h: int) -> None:
        """Raise :class:`~mlplab.errors.ConfigError` when the widths break the family's rule."""

    def body(self, x: torch.Tensor) -> torch.Tensor:
        z = self.blocks(self.input_projection(x))
        return self.output_activation(self.output_projection(z))


MNIST = ((1, 28, 28), (1, 28, 28))
PAPER = "Chen et al. 2025 (arXiv 2510.01796), given to 0.01M"


@register_family(
    domains=("image_restoration",),
    variants={
        "tiny": Variant({"d_z": 96, "d_h": 24, "depth": 2}),
        "785/115/L4": Variant(
            {"d_z": 785, "d_h": 115, "depth": 4},
            params=1_950_000,
            precision=10_000,
            shapes=MNIST,
            source=f"MNIST generative classification, 31.85 dB; {PAPER}",
        ),
        "785/350/L6": Variant(
            {"d_z": 785, "d_h": 350, "depth": 6},
            params=4_530_000,
            precision=10_000,
            shapes=MNIST,
            source=f"MNIST generative classification, 32.83 dB; {PAPER}",
        ),
        "3546/16/L5": Variant(
            {"d_z": 3546, "d_h": 16, "depth": 5},
            params=14_184_000,
            shapes=((3, 16, 16), (3, 32, 32)),
            source="ImageNet-32 super-resolution x2, the paper's exact count (d_x=768, d_y=3072)",
        ),
        "3546/270/L5": Variant(
            {"d_z": 3546, "d_h": 270, "depth": 5},
            params=31_400_000,
            precision=100_000,
            shapes=((3, 32, 32), (3, 32, 32)),
            source="ImageNet-32 denoising, 22.08 dB; the paper",
        ),
    },
    blocks=BlockLayout(ResidualMLPBlock, mlp=("mlp",)),
    source="own, following the official code",
)
class HourglassMLP(ResidualStreamMLP):
    """Hourglass MLP: a wide residual stream with narrow bottlenecks, ``d_h < d_z``.

    See the module docstring for the paper, the structure and the parameter count.

    Args:
        input_shape: Shape of one input sample, e.g. ``(1, 28, 28)``; flattened to ``d_x`` values.
        output_shape: Shape of one output sample, e.g. ``(1, 28, 28)``.
        d_z: Width of the wide residual stream.
        d_h: Width of the narrow bottleneck inside every block; must be smaller than ``d_z``.
        depth: Number of residual blocks (L).
        fixed_input_projection: Keep ``W_in`` at its random initialisation, never trained.
        projection_seed: Seed of ``W_in``'s initialisation; ``None`` draws it from the global generator.
        output_activation: ``sigmoid`` for pixel targets in [0, 1] (the paper), ``none`` for logits.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        d_z: int = 1024,
        d_h: int = 128,
        depth: int = 4,
        fixed_input_projection: bool = False,
        projection_seed: int | None = None,
        output_activation: Literal["sigmoid", "none"] = "sigmoid",
    ):
        super().__init__(
            input_shape,
            output_shape,
            d_z,
            d_h,
            depth,
            fixed_input_projection,
            projection_seed,
            output_activation,
        )

    def check_widths(self, d_x: int, d_y: int, d_z: int, d_h: int) -> None:
        if d_h >= d_z:
            raise ConfigError(
                f"HourglassMLP needs a narrow bottleneck, d_h < d_z; got d_h={d_h}, d_z={d_z} "
                "(use ConventionalMLP for d_h > d_z)"
            )


@register_family(
    domains=("image_restoration",),
    variants={
        "tiny": Variant({"d_h": 96, "depth": 2}),
        "L4": Variant(
            {"d_h": 785, "depth": 4},
            params=6_150_000,
            precision=10_000,
            shapes=MNIST,
            source=f"MNIST generative classification, conventional L4, 32.64 dB; {PAPER}",
        ),
    },
    blocks=BlockLayout(ResidualMLPBlock, mlp=("mlp",)),
    source="own, following the official code",
)
class ConventionalMLP(ResidualStreamMLP):
    """The conventional residual MLP of the Hourglass paper: ``d_h > d_z``, stream as wide as the data.

    See the module docstring for the paper and the structure.

    Args:
        input_shape: Shape of one input sample, e.g. ``(1, 28, 28)``; flattened to ``d_x`` values.
        output_shape: Shape of one output sample, e.g. ``(1, 28, 28)``.
        d_h: Width of the wide hidden layer inside every block; must be larger than ``d_z``.
        depth: Number of residual blocks (L).
        d_z: Width of the residual stream: ``d_x`` (the default, ``None``) or ``d_y``.
        fixed_input_projection: Keep ``W_in`` at its random initialisation, never trained.
        projection_seed: Seed of ``W_in``'s initialisation; ``None`` draws it from the global generator.
        output_activation: ``sigmoid`` for pixel targets in [0, 1] (the paper), ``none`` for logits.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        d_h: int = 1024,
        depth: int = 4,
        d_z: int | None = None,
        fixed_input_projection: bool = False,
        projection_seed: int | None = None,
        output_activation: Literal["sigmoid", "none"] = "sigmoid",
    ):
        stream = math.prod(input_shape) if d_z is None else d_z
        super().__init__(
            input_shape,
            output_shape,
            stream,
            d_h,
            depth,
            fixed_input_projection,
            projection_seed,
            output_activation,
        )

    def check_widths(self, d_x: int, d_y: int, d_z: int, d_h: int) -> None:
        if d_z not in (d_x, d_y):
            raise ConfigError(
                f"ConventionalMLP keeps the stream as wide as the data, d_z = d_x ({d_x}) or d_y ({d_y}); "
                f"got d_z={d_z} (use HourglassMLP for a stream wider than the data)"
            )
        if d_h <= d_z:
            raise ConfigError(
                f"ConventionalMLP needs a wide hidden layer, d_h > d_z; got d_h={d_h}, d_z={d_z} "
                "(use HourglassMLP for d_h < d_z)"
            )
