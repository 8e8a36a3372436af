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

Checked weight for weight against the official code (outputs and every weight's gradient, every
published variant, ``W_in`` fixed and copied: ``benchmarks/vision_official_check.py``, results in
``docs/results.md``).

Parameters: ``d_x·d_z + L·2·d_z·d_h + d_z·d_y`` (e.g. 768/3546/16/L5/3072 -> 14,184,000). The
arguments use mlplab's names: ``embed_dim`` is the stream width ``d_z``, ``mlp_dim`` the hidden width
``d_h``, ``depth`` the number of blocks L.

Shapes: input ``(B, *input_shape)``, output ``(B, *output_shape)``, both flattened internally.
"""

from __future__ import annotations

import math
from typing import Any, Literal

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
        embed_dim: Width of the residual stream (the paper's ``d_z``).
        mlp_dim: Width of the hidden layer inside every block (the paper's ``d_h``).
        depth: Number of residual blocks (L).
        fixed_input_projection: Keep ``W_in`` at its random initialisation, never trained.
        projection_seed: Seed of ``W_in``'s initialisation; ``None`` draws it from the global generator.
        output_activation: ``sigmoid`` for pixel targets in [0, 1] (the paper), ``none`` for logits.
    """

    #: The arguments' former names (the paper's own), for the families' ``@register_family(renamed=...)``.
    renamed_args = {"d_z": "embed_dim", "d_h": "mlp_dim"}

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int,
        mlp_dim: int,
        depth: int,
        fixed_input_projection: bool = False,
        projection_seed: int | None = None,
        output_activation: Literal["sigmoid", "none"] = "sigmoid",
    ):
        super().__init__(input_shape, output_shape)
        name = type(self).__name__
        require_positive(name, embed_dim=embed_dim, mlp_dim=mlp_dim, depth=depth)
        if output_activation not in ("sigmoid", "none"):
            raise ConfigError(
                f"{name}: output_activation must be 'sigmoid' or 'none', got {output_activation!r}"
            )
        self.check_widths(d_x=self.d_x, d_y=self.d_y, embed_dim=embed_dim, mlp_dim=mlp_dim)
        self.embed_dim, self.mlp_dim, self.depth = embed_dim, mlp_dim, depth

        self.input_projection = RandomProjection(
            self.d_x, embed_dim, trainable=not fixed_input_projection, seed=projection_seed
        )
        self.blocks = nn.Sequential(
            *(
                ResidualMLPBlock(
                    embed_dim, mlp_dim, norm="batchnorm", norm_affine=False, activation="relu", bias=False
                )
                for _ in range(depth)
            )
        )
        self.output_projection = nn.Linear(embed_dim, self.d_y, bias=False)
        self.output_activation = nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity()

    def check_widths(self, d_x: int, d_y: int, embed_dim: int, mlp_dim: int) -> None:
        """Raise :class:`~mlplab.errors.ConfigError` when the widths break the family's rule."""

    def body(self, x: torch.Tensor) -> torch.Tensor:
        z = self.blocks(self.input_projection(x))
        return self.output_activation(self.output_projection(z))


MNIST = ((1, 28, 28), (1, 28, 28))
PAPER = "Chen et al. 2025 (arXiv 2510.01796)"


def _paper(
    d_z: int, d_h: int, depth: int, params: int, shapes: tuple, what: str, precision: int = 10_000
) -> Variant:
    """A model of the paper, named ``d_z/d_h/L`` as there, with its published count (to 0.01M unless said)."""
    return Variant(
        {"embed_dim": d_z, "mlp_dim": d_h, "depth": depth},
        params,
        precision,
        shapes,
        source=f"{what}; {PAPER}",
    )


@register_family(
    domains=("image_restoration",),
    variants={
        "tiny": Variant({"embed_dim": 96, "mlp_dim": 24, "depth": 2}),
        "785/115/L4": _paper(785, 115, 4, 1_950_000, MNIST, "MNIST generative classification, 31.85 dB"),
        "785/350/L6": _paper(785, 350, 6, 4_530_000, MNIST, "MNIST generative classification, 32.83 dB"),
        "3546/16/L5": _paper(3546, 16, 5, 14_184_000, ((3, 16, 16), (3, 32, 32)), "ImageNet-32 SR x2", 1),
        "3546/270/L5": _paper(
            3546, 270, 5, 31_400_000, ((3, 32, 32),) * 2, "ImageNet-32 denoising, 22.08 dB", 100_000
        ),
    },
    blocks=BlockLayout(ResidualMLPBlock, mlp=("mlp",)),
    renamed=ResidualStreamMLP.renamed_args,
    source="own, weight for weight with the official code",
)
class HourglassMLP(ResidualStreamMLP):
    """Hourglass MLP: a wide residual stream with narrow bottlenecks, ``mlp_dim < embed_dim`` (``d_h < d_z``).

    See the module docstring for the paper, the structure and the parameter count. The paper's
    models are the variants named ``d_z/d_h/L`` (``mlplab models --variant 785/115/L4``).

    Args:
        input_shape: Shape of one input sample, e.g. ``(1, 28, 28)``; flattened to ``d_x`` values.
        output_shape: Shape of one output sample, e.g. ``(1, 28, 28)``.
        embed_dim: Width of the wide residual stream (the paper's ``d_z``).
        mlp_dim: Width of the narrow bottleneck inside every block (the paper's ``d_h``); must be smaller
            than ``embed_dim``.
        depth: Number of residual blocks (L).
        **kwargs: ``fixed_input_projection``, ``projection_seed`` and ``output_activation``
            (:class:`ResidualStreamMLP`).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 1024,
        mlp_dim: int = 128,
        depth: int = 4,
        **kwargs: Any,
    ):
        super().__init__(
            input_shape, output_shape, embed_dim=embed_dim, mlp_dim=mlp_dim, depth=depth, **kwargs
        )

    def check_widths(self, d_x: int, d_y: int, embed_dim: int, mlp_dim: int) -> None:
        if mlp_dim >= embed_dim:
            raise ConfigError(
                "HourglassMLP needs a narrow bottleneck, mlp_dim < embed_dim (d_h < d_z); got "
                f"mlp_dim={mlp_dim}, embed_dim={embed_dim} (use ConventionalMLP for mlp_dim > embed_dim)"
            )


@register_family(
    domains=("image_restoration",),
    variants={
        "tiny": Variant({"mlp_dim": 96, "depth": 2}),
        "L4": Variant(
            {"mlp_dim": 785, "depth": 4}, 6_150_000, 10_000, MNIST, source=f"MNIST, 32.64 dB; {PAPER}"
        ),
    },
    blocks=BlockLayout(ResidualMLPBlock, mlp=("mlp",)),
    renamed=ResidualStreamMLP.renamed_args,
    source="own, weight for weight with the official code",
)
class ConventionalMLP(ResidualStreamMLP):
    """The Hourglass paper's conventional residual MLP: ``mlp_dim > embed_dim``, a stream as wide as the data.

    See the module docstring for the paper and the structure.

    Args:
        input_shape: Shape of one input sample, e.g. ``(1, 28, 28)``; flattened to ``d_x`` values.
        output_shape: Shape of one output sample, e.g. ``(1, 28, 28)``.
        mlp_dim: Width of the wide hidden layer inside every block (the paper's ``d_h``); must be larger
            than ``embed_dim``.
        depth: Number of residual blocks (L).
        embed_dim: Width of the residual stream (the paper's ``d_z``): ``d_x`` (the default, ``None``)
            or ``d_y``.
        **kwargs: ``fixed_input_projection``, ``projection_seed`` and ``output_activation``
            (:class:`ResidualStreamMLP`).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        mlp_dim: int = 1024,
        depth: int = 4,
        embed_dim: int | None = None,
        **kwargs: Any,
    ):
        stream = math.prod(input_shape) if embed_dim is None else embed_dim
        super().__init__(input_shape, output_shape, embed_dim=stream, mlp_dim=mlp_dim, depth=depth, **kwargs)

    def check_widths(self, d_x: int, d_y: int, embed_dim: int, mlp_dim: int) -> None:
        if embed_dim not in (d_x, d_y):
            raise ConfigError(
                f"ConventionalMLP keeps the stream as wide as the data, embed_dim = d_x ({d_x}) or d_y "
                f"({d_y}); got embed_dim={embed_dim} (use HourglassMLP for a stream wider than the data)"
            )
        if mlp_dim <= embed_dim:
            raise ConfigError(
                "ConventionalMLP needs a wide hidden layer, mlp_dim > embed_dim (d_h > d_z); got "
                f"mlp_dim={mlp_dim}, embed_dim={embed_dim} (use HourglassMLP for mlp_dim < embed_dim)"
            )
