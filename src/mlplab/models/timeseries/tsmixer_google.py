"""Google's TSMixer: alternating time-mixing and feature-mixing MLPs, then a linear map to the horizon.

Paper: Si-An Chen, Chun-Liang Li, Nathanael C. Yoder, Sercan Ö. Arık, Tomas Pfister, "TSMixer: An
All-MLP Architecture for Time Series Forecasting", TMLR 2023 (arXiv 2303.06053). Official code:
github.com/google-research/google-research, folder ``tsmixer/tsmixer_basic`` (``models/tsmixer.py``,
``models/tsmixer_rev_in.py``, Keras); this file follows it. Not to be confused with IBM's TSMixer
(:class:`~mlplab.models.timeseries.TSMixer`), a different model with the same name.

* RevIN over time with a learnable per-series scale and shift (``tsmixer_rev_in``).
* ``n_block`` (``depth``) residual blocks, each
  - **time mixing**: ``x + Dropout(act(Linear_L->L(Norm(x)ᵀ))ᵀ)``, one linear layer over time shared by
    the series;
  - **feature mixing**: ``x + Dropout(Linear_ff->N(Dropout(act(Linear_N->ff(Norm(x))))))`` over the
    series at every time step (this is the channel MLP, conventional or hourglass).
  ``Norm`` is batch normalisation over the ``(L, N)`` plane (Keras ``BatchNormalization(axis=[-2, -1])``:
  one statistic per time step and series) or layer normalisation over the whole plane, with Keras'
  defaults: epsilon 1e-3 and, for batch norm, momentum 0.99 (PyTorch ``momentum=0.01``).
* A linear layer over time ``L -> H`` per series, then RevIN is undone.

Checked weight for weight against the official Keras model (``tsmixer_rev_in.build_model`` under
TensorFlow 2.21 with tf-keras, batch and layer norm): ``benchmarks/timeseries_official_check.py
--tsmixer-google`` (figures in ``docs/results.md``). Two differences remain: RevIN's denormalisation
divides by ``weight + eps²`` (the PyTorch RevIN's form, shared with PatchTST) where the Keras code
divides by ``weight`` (a relative 1e-10), and the layers start from PyTorch's default initialisation,
not Keras' (Glorot-uniform kernels, zero biases).

Parameters per block: ``2·2·L·N`` (norms) + ``L·L + L`` + ``N·ff + ff + ff·N + N``; head ``L·H + H``;
RevIN ``2·N``.

Shapes: ``(B, L, N) -> (B, H, N)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from timm.layers import get_act_layer
from torch import nn

from mlplab.errors import ConfigError, require_positive, require_rate
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.timeseries.common import ForecastingFamily
from mlplab.nn import ChannelMLP


class PlaneNorm(nn.Module):
    """Batch or layer normalisation over the ``(L, N)`` plane of ``(B, L, N)`` inputs (as the Keras code).

    Args:
        lookback: L.
        num_series: N.
        kind: ``batch`` (one statistic per time step and series, over the batch) or ``layer`` (one per
            sample).
    """

    def __init__(self, lookback: int, num_series: int, kind: Literal["batch", "layer"]):
        super().__init__()
        self.kind = kind
        if kind == "batch":
            self.norm = nn.BatchNorm1d(lookback * num_series, eps=1e-3, momentum=0.01)  # Keras' defaults
        elif kind == "layer":
            self.norm = nn.LayerNorm((lookback, num_series), eps=1e-3)
        else:
            raise ConfigError(f"TSMixerGoogle: norm must be 'batch' or 'layer', got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "batch":
            return self.norm(x.flatten(1)).view_as(x)
        return self.norm(x)


class TimeFeatureMixerBlock(nn.Module):
    """One TSMixer residual block: time mixing, then feature (channel) mixing.

    Shapes: ``(B, L, N) -> (B, L, N)``.

    Args:
        lookback: L.
        num_series: N.
        ff_dim: Hidden width of the feature MLP.
        dropout: Dropout after the time mixing and inside / after the feature MLP.
        norm_type: ``batch`` or ``layer`` (see :class:`PlaneNorm`).
        activation: Activation of both MLPs.
        channel_mlp: Conventional or hourglass feature MLP.
    """

    def __init__(
        self,
        lookback: int,
        num_series: int,
        ff_dim: int,
        dropout: float,
        norm_type: Literal["batch", "layer"],
        activation: str,
        channel_mlp: ChannelMLP,
    ):
        super().__init__()
        self.time_norm = PlaneNorm(lookback, num_series, norm_type)
        self.time_linear = nn.Linear(lookback, lookback)
        self.time_act = get_act_layer(activation)()
        self.time_dropout = nn.Dropout(dropout)
        self.feature_norm = PlaneNorm(lookback, num_series, norm_type)
        self.feature_mlp = channel_mlp.build(num_series, ff_dim, activation=activation, drop=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.time_act(self.time_linear(self.time_norm(x).transpose(1, 2))).transpose(1, 2)
        x = x + self.time_dropout(mixed)
        return x + self.feature_mlp(self.feature_norm(x))


@register_family(
    domains=("forecasting",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant({"depth": 2, "mlp_dim": 16, "dropout": 0.0}),
        "etth1": Variant(
            {"depth": 2, "mlp_dim": 64},
            params=605_180,
            shapes=((512, 7), (96, 7)),
            source="the official Keras layers (tsmixer_rev_in) at L=512, H=96",
        ),
    },
    blocks=BlockLayout(TimeFeatureMixerBlock, mixer=("time_linear",), mlp=("feature_mlp",)),
    renamed={"n_block": "depth", "ff_dim": "mlp_dim", "norm_type": "norm", "rev_in": "revin"},
    legacy_keys=[(r"^rev_in\.", "revin.")],
    source="own, weight for weight with the official Keras code",
)
class TSMixerGoogle(ForecastingFamily):
    """Google's TSMixer with RevIN (see the module docstring).

    Args:
        input_shape: ``(lookback, num_series)``; filled in by the task.
        output_shape: ``(horizon, num_series)``; filled in by the task.
        depth: Number of mixer blocks (the official ``n_block``).
        mlp_dim: Hidden width of the feature MLP (the official ``ff_dim``).
        dropout: Dropout rate.
        norm: ``batch`` (the official default) or ``layer`` (the official ``norm_type``).
        activation: ``relu`` (the official default) or ``gelu``.
        revin: Reversible instance normalisation (affine) around the model (``tsmixer_rev_in``).
        channel_mlp: The feature MLP ``N -> mlp_dim -> N``, conventional (the paper) or hourglass.
    """

    def __init__(
        self,
        input_shape: tuple[int, int],
        output_shape: tuple[int, int],
        depth: int = 2,
        mlp_dim: int = 64,
        dropout: float = 0.9,
        norm: Literal["batch", "layer"] = "batch",
        activation: str = "relu",
        revin: bool = True,
        channel_mlp: ChannelMLP | None = None,
    ):
        super().__init__(input_shape, output_shape, revin=revin, revin_affine=True)
        require_positive("TSMixerGoogle", depth=depth, mlp_dim=mlp_dim)
        require_rate("TSMixerGoogle", dropout=dropout)
        channel_mlp = channel_mlp or ChannelMLP()
        self.blocks = nn.Sequential(
            *(
                TimeFeatureMixerBlock(
                    self.lookback, self.num_series, mlp_dim, dropout, norm, activation, channel_mlp
                )
                for _ in range(depth)
            )
        )
        self.head = nn.Linear(self.lookback, self.horizon)

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).transpose(1, 2)).transpose(1, 2)
