"""The channel MLP inside a block: conventional, hourglass-shaped or a mixture of experts, from the config.

The Hourglass paper (Chen et al., 2025) suggests moving the wide skip into other residual networks:
instead of a conventional channel MLP ``d -> hidden -> d`` (hidden wider than d), lift the features to
a wide stream ``D``, run narrow-bottleneck residual blocks there, and project back. Every family that
has a channel MLP takes a ``channel_mlp: ChannelMLP`` argument so the two can be compared in any
architecture from YAML::

    channel_mlp:
      kind: hourglass
      stream_ratio: 4.0       # D = 4 d
      bottleneck_ratio: 0.5   # d_h = d / 2
      depth: 1
      fixed_lift: true        # W_lift frozen at its random initialisation

The same section also selects a sparse mixture of experts (``kind: moe``, top-k gating with the
Switch load-balancing loss) or MoE++ with zero-computation experts (``kind: moe_plus_plus``); see
:mod:`mlplab.nn.moe`. Their auxiliary loss reaches the training loss through
:func:`mlplab.nn.moe.auxiliary_loss`, which every task's training step adds (``mlplab.tasks.Task``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError
from mlplab.nn.mlp import NormKind, ResidualMLPBlock, activation_layer
from mlplab.nn.moe import MixtureOfExperts, MoEPlusPlus
from mlplab.nn.projection import RandomProjection


class HourglassChannelMLP(nn.Module):
    """Hourglass-shaped channel MLP: lift to a wide stream, narrow residual bottlenecks, project back.

    ``y = W_out · B_L(…B_1(W_lift · x))`` with ``B_i(z) = z + W2 · act(W1 · norm(z))``, ``W_lift: d -> D``
    (bias-free, optionally fixed at its random initialisation), ``W1: D -> d_h``, ``W2: d_h -> D`` and
    ``W_out: D -> d_out`` (bias-free). It is the residual branch of its host block, which adds the skip
    around it at width ``d``.

    Shapes: ``(..., in_features) -> (..., out_features)``.

    Args:
        in_features: Input width d.
        stream_width: Width D of the wide stream.
        bottleneck_width: Width d_h of the bottlenecks (must be smaller than D).
        out_features: Output width (``None``: ``in_features``).
        depth: Number of bottleneck blocks in the stream.
        fixed_lift: Freeze ``W_lift`` at its seeded random initialisation.
        activation: Activation inside the bottlenecks: a class, or a name
            :func:`~mlplab.nn.mlp.activation_layer` knows.
        norm: Normalisation at the start of each bottleneck (``layernorm`` works on token tensors).
        bias: Whether the bottleneck layers have biases.
    """

    def __init__(
        self,
        in_features: int,
        stream_width: int,
        bottleneck_width: int,
        out_features: int | None = None,
        depth: int = 1,
        fixed_lift: bool = False,
        activation: str | type[nn.Module] = "gelu",
        norm: NormKind = "layernorm",
        bias: bool = True,
    ):
        super().__init__()
        if not 0 < bottleneck_width < stream_width:
            raise ConfigError(
                "hourglass channel MLP needs 0 < bottleneck width < stream width, "
                f"got {bottleneck_width} and {stream_width}"
            )
        self.lift = RandomProjection(in_features, stream_width, trainable=not fixed_lift)
        self.blocks = nn.Sequential(
            *(
                ResidualMLPBlock(
                    stream_width,
                    bottleneck_width,
                    norm=norm,
                    norm_affine=True,
                    activation=activation,
                    bias=bias,
                )
                for _ in range(depth)
            )
        )
        self.project = nn.Linear(stream_width, out_features or in_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.blocks(self.lift(x)))


@dataclass
class ChannelMLP:
    """Which channel MLP a family's blocks use, and its shape (a config section, see the module docs).

    Args:
        kind: ``conventional`` (``d -> hidden -> d``, timm's ``Mlp``), ``hourglass``
            (:class:`HourglassChannelMLP`), ``moe`` (:class:`~mlplab.nn.moe.MixtureOfExperts`) or
            ``moe_plus_plus`` (:class:`~mlplab.nn.moe.MoEPlusPlus`).
        stream_ratio: Hourglass: wide stream width D as a multiple of the block width d.
        bottleneck_ratio: Hourglass: bottleneck width d_h as a multiple of the block width d.
        depth: Hourglass: bottleneck blocks per channel MLP.
        fixed_lift: Hourglass: freeze the lift d -> D at its random initialisation.
        num_experts: MoE / MoE++: number of MLP experts (MoE++ adds its zero-computation experts).
        top_k: MoE / MoE++: experts each token is routed to.
        expert_hidden_ratio: MoE / MoE++: hidden width of each expert as a multiple of ``hidden``.
        aux_loss_weight: MoE / MoE++: weight of the load-balancing loss added to the training loss.
        zero_experts: MoE++: experts that output zeros.
        copy_experts: MoE++: experts that output their input.
        constant_experts: MoE++: experts that mix their input with a learned vector.
        zero_computation_balance: MoE++: weight tau of the zero-computation experts in the
            heterogeneous load-balancing loss (the FFN experts have weight 1).
        gating_residual: MoE++: add a linear map of the previous layer's router logits to this
            layer's (the first MoE++ layer of a model has none).
        sparse_dispatch: MoE / MoE++: run each expert only on its tokens (the default: compute and
            memory of the selected experts, two host synchronisations per layer); ``false`` runs every
            expert on every token, weighted by the sparse gates (the same output with static shapes,
            ``num_experts / top_k`` times the FLOPs).
    """

    kind: Literal["conventional", "hourglass", "moe", "moe_plus_plus"] = "conventional"
    stream_ratio: float = 4.0
    bottleneck_ratio: float = 0.5
    depth: int = 1
    fixed_lift: bool = False
    num_experts: int = 8
    top_k: int = 2
    expert_hidden_ratio: float = 1.0
    aux_loss_weight: float = 0.01
    zero_experts: int = 1
    copy_experts: int = 1
    constant_experts: int = 2
    zero_computation_balance: float = 0.75
    gating_residual: bool = True
    sparse_dispatch: bool = True

    def build(
        self,
        dim: int,
        hidden: int,
        out_features: int | None = None,
        activation: str | type[nn.Module] = "gelu",
        drop: float = 0.0,
        bias: bool = True,
    ) -> nn.Module:
        """The channel MLP for blocks of width ``dim``; ``hidden`` is the conventional hidden width.

        ``bias`` applies to the conventional MLP and to the experts (the hourglass blocks keep theirs).
        """
        if self.kind == "conventional":
            from timm.layers import Mlp  # imported when a conventional channel MLP is built

            act_layer = activation_layer(activation)
            return Mlp(dim, hidden, out_features, act_layer=act_layer, drop=drop, bias=bias)
        if self.kind == "hourglass":
            return HourglassChannelMLP(
                dim,
                stream_width=max(1, round(self.stream_ratio * dim)),
                bottleneck_width=max(1, round(self.bottleneck_ratio * dim)),
                out_features=out_features,
                depth=self.depth,
                fixed_lift=self.fixed_lift,
                activation=activation,
            )
        if self.kind in ("moe", "moe_plus_plus"):
            if out_features not in (None, dim):
                raise ConfigError(
                    f"channel_mlp.kind={self.kind} keeps the width: it cannot map {dim} to "
                    f"{out_features} features"
                )
            common = dict(
                dim=dim,
                hidden=max(1, round(self.expert_hidden_ratio * hidden)),
                num_experts=self.num_experts,
                top_k=self.top_k,
                activation=activation,
                bias=bias,
                aux_loss_weight=self.aux_loss_weight,
                sparse_dispatch=self.sparse_dispatch,
            )
            if self.kind == "moe":
                return MixtureOfExperts(**common)
            return MoEPlusPlus(
                **common,
                zero_experts=self.zero_experts,
                copy_experts=self.copy_experts,
                constant_experts=self.constant_experts,
                zero_computation_balance=self.zero_computation_balance,
                gating_residual=self.gating_residual,
            )
        raise ConfigError(
            f"channel_mlp.kind must be conventional, hourglass, moe or moe_plus_plus, got {self.kind!r}"
        )

    def as_timm_mlp_layer(self) -> Callable[..., nn.Module]:
        """A drop-in for timm's ``mlp_layer`` argument: ``mlp_layer(dim, hidden, act_layer=, drop=)``."""

        def mlp_layer(
            in_features: int,
            hidden_features: int | None = None,
            out_features: int | None = None,
            act_layer: type[nn.Module] | str = "gelu",
            drop: float = 0.0,
            **_: object,
        ) -> nn.Module:
            return self.build(in_features, hidden_features or 4 * in_features, out_features, act_layer, drop)

        return mlp_layer
