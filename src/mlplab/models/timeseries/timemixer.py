"""TimeMixer: decomposable multiscale mixing of the past, multi-predictor mixing of the future.

Paper: Shiyu Wang, Haixu Wu, Xiaoming Shi, Tengge Hu, Huakun Luo, Lintao Ma, James Y. Zhang, Jun Zhou,
"TimeMixer: Decomposable Multiscale Mixing for Time Series Forecasting", ICLR 2024 (arXiv 2405.14616).
Official code: github.com/kwuking/TimeMixer (``models/TimeMixer.py``); this file follows it.

1. **Multiscale inputs.** The history ``(B, L, N)`` is down-sampled ``M`` times by average pooling of
   window ``w`` (lengths ``L, L/w, ..., L/w^M``). Each scale is normalised by its own RevIN (affine).
2. **Embedding.** Channel-independent (the default, as in every published ETT run): each series is a
   separate sample ``(B·N, T_i, 1)`` embedded to ``d_model`` by a circular convolution of kernel 3 (no
   bias), plus a linear embedding of the calendar features, then dropout. Channel mixing
   (``channel_independence=False``): the N series are embedded together.
3. **Past-Decomposable-Mixing (PDM)**, ``e_layers`` blocks. Every scale is split into season and trend
   by a moving average (kernel 25). Seasons are mixed bottom-up (fine to coarse): the next coarser
   season gets ``Linear(T_i -> T_{i+1}) · GELU · Linear`` of the finer one added. Trends are mixed
   top-down (coarse to fine) the same way. Season + trend goes through a channel MLP
   ``d_model -> d_ff -> d_model`` (GELU) with a residual to the block's input.
4. **Future-Multipredictor-Mixing (FMM)**: every scale predicts the horizon with its own linear layer
   over time ``T_i -> H`` and a shared projection ``d_model -> 1``; the scales' forecasts are summed
   and de-normalised with the finest scale's RevIN statistics.

Where this differs from the official code: by default the calendar features of a window are paired
with that window's own series. The official code tiles the batch's features with ``repeat``, which
pairs series ``n`` of window ``b`` with the features of window ``(b·N + n) mod B`` of the same batch;
``time_feature_pairing="official"`` does the same, for reproducing the published numbers (with the
official weights copied in, it gives the official outputs and gradients to float precision:
``benchmarks/timemixer_official_check.py``). The official PDM block's unused ``LayerNorm`` and
``Dropout`` are left out (they take no part in the forward pass), as is its ``out_cross_layer`` in the
channel-mixing mode, where the official forward pass skips it.

Shapes: ``(B, L, N)`` history and optional ``time_features`` ``(B, L, F)`` -> ``(B, H, N)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.timeseries.common import ForecastingFamily, RevIN, SeriesDecomposition
from mlplab.nn import ChannelMLP


def _scale_mlp(size_in: int, size_out: int) -> nn.Sequential:
    """``Linear(size_in -> size_out) · GELU · Linear(size_out -> size_out)`` over time."""
    return nn.Sequential(nn.Linear(size_in, size_out), nn.GELU(), nn.Linear(size_out, size_out))


class MultiScaleSeasonMixing(nn.Module):
    """Bottom-up mixing of the seasonal parts: fine scales feed coarser ones.

    Shapes: a list of ``(B, C, T_i)`` -> a list of ``(B, T_i, C)``.
    """

    def __init__(self, lengths: list[int]):
        super().__init__()
        self.down = nn.ModuleList(_scale_mlp(lengths[i], lengths[i + 1]) for i in range(len(lengths) - 1))

    def forward(self, seasons: list[torch.Tensor]) -> list[torch.Tensor]:
        high = seasons[0]
        out = [high.transpose(1, 2)]
        for i, layer in enumerate(self.down):
            high = seasons[i + 1] + layer(high)
            out.append(high.transpose(1, 2))
        return out


class MultiScaleTrendMixing(nn.Module):
    """Top-down mixing of the trends: coarse scales feed finer ones.

    Shapes: a list of ``(B, C, T_i)`` -> a list of ``(B, T_i, C)``.
    """

    def __init__(self, lengths: list[int]):
        super().__init__()
        # up[j] maps scale M-j to scale M-j-1 (coarsest first), as the official ``up_sampling_layers``.
        self.up = nn.ModuleList(
            _scale_mlp(lengths[i + 1], lengths[i]) for i in reversed(range(len(lengths) - 1))
        )

    def forward(self, trends: list[torch.Tensor]) -> list[torch.Tensor]:
        reverse = trends[::-1]
        low = reverse[0]
        out = [low.transpose(1, 2)]
        for i, layer in enumerate(self.up):
            low = reverse[i + 1] + layer(low)
            out.append(low.transpose(1, 2))
        return out[::-1]


class PastDecomposableMixing(nn.Module):
    """One PDM block: decompose every scale, mix seasons bottom-up and trends top-down, channel MLP.

    Shapes: a list of ``(B', T_i, d_model)`` -> the same.

    Args:
        lengths: Length of every scale, finest first.
        d_model: Embedding width.
        d_ff: Hidden width of the channel MLP.
        moving_avg: Kernel of the season / trend decomposition.
        channel_independence: Whether the series are separate samples (the residual channel MLP) or
            mixed (an extra channel MLP on season and trend before mixing, no residual), as the official code.
        channel_mlp: Conventional or hourglass channel MLP.
    """

    def __init__(
        self,
        lengths: list[int],
        d_model: int,
        d_ff: int,
        moving_avg: int,
        channel_independence: bool,
        channel_mlp: ChannelMLP,
    ):
        super().__init__()
        self.channel_independence = channel_independence
        self.decomposition = SeriesDecomposition(moving_avg)
        if channel_independence:
            self.out_cross_layer = channel_mlp.build(d_model, d_ff, activation="gelu")
        else:
            self.cross_layer = channel_mlp.build(d_model, d_ff, activation="gelu")
        self.season_mixing = MultiScaleSeasonMixing(lengths)
        self.trend_mixing = MultiScaleTrendMixing(lengths)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        seasons, trends = [], []
        for x in xs:
            season, trend = self.decomposition(x)
            if not self.channel_independence:
                season, trend = self.cross_layer(season), self.cross_layer(trend)
            seasons.append(season.transpose(1, 2))
            trends.append(trend.transpose(1, 2))
        mixed = zip(xs, self.season_mixing(seasons), self.trend_mixing(trends))
        if self.channel_independence:
            return [x + self.out_cross_layer(season + trend) for x, season, trend in mixed]
        return [season + trend for _, season, trend in mixed]


@register_family(
    domains=("forecasting",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant(
            {"embed_dim": 8, "mlp_dim": 16, "down_sampling_layers": 2, "moving_avg": 5, "dropout": 0.0}
        ),
        "etth1": Variant(
            {
                "embed_dim": 16,
                "mlp_dim": 32,
                "depth": 2,
                "down_sampling_layers": 3,
                "down_sampling_window": 2,
                "moving_avg": 25,
            },
            params=75_497 - 2 * 32,
            shapes=((96, 7), (96, 7)),
            data_args={"num_time_features": 4},
            source="the official Model with its ETTh1 recipe: 75,497, of which 2 x 32 in "
            "LayerNorms it never calls",
        ),
    },
    # in the channel-independent mode (the published one) a PDM block returns x + out_cross_layer(...)
    blocks=BlockLayout(PastDecomposableMixing, mlp=("out_cross_layer",)),
    renamed={"d_model": "embed_dim", "d_ff": "mlp_dim", "e_layers": "depth", "use_norm": "revin"},
    source="own, weight for weight with the official code",
)
class TimeMixer(ForecastingFamily):
    """TimeMixer (see the module docstring). Defaults: the official ETTh1 recipe.

    Args:
        input_shape: ``(lookback, num_series)``; filled in by the task.
        output_shape: ``(horizon, num_series)``; filled in by the task.
        embed_dim: Embedding width (the official ``d_model``).
        mlp_dim: Hidden width of the channel MLPs (the official ``d_ff``).
        depth: Number of PDM blocks (the official ``e_layers``).
        down_sampling_layers: Number of coarser scales M.
        down_sampling_window: Pooling window w between scales.
        down_sampling_method: ``avg`` or ``max`` pooling, or a strided circular ``conv``.
        moving_avg: Kernel of the season / trend decomposition.
        dropout: Dropout after the embedding.
        channel_independence: Treat every series as its own sample (the published setting).
        revin: Normalise every scale with an affine RevIN (the official ``use_norm``).
        use_time_features: Add an embedding of the calendar features (``timeF``) when the data has them.
        num_time_features: Number of calendar features F; filled in by the task from the data.
        channel_mlp: The channel MLP ``embed_dim -> mlp_dim -> embed_dim`` of the PDM blocks, conventional
            (the paper) or hourglass.
        time_feature_pairing: ``window`` pairs every series with its own window's calendar features;
            ``official`` reproduces the official code's tiling, which pairs series ``n`` of window ``b``
            with the features of window ``(b·N + n) mod B`` of the batch (channel-independent mode only).
    """

    def __init__(
        self,
        input_shape: tuple[int, int],
        output_shape: tuple[int, int],
        embed_dim: int = 16,
        mlp_dim: int = 32,
        depth: int = 2,
        down_sampling_layers: int = 3,
        down_sampling_window: int = 2,
        down_sampling_method: Literal["avg", "max", "conv"] = "avg",
        moving_avg: int = 25,
        dropout: float = 0.1,
        channel_independence: bool = True,
        revin: bool = True,
        use_time_features: bool = True,
        num_time_features: int = 0,
        channel_mlp: ChannelMLP | None = None,
        time_feature_pairing: Literal["window", "official"] = "window",
    ):
        super().__init__(input_shape, output_shape)
        name = type(self).__name__
        require_positive(
            name, embed_dim=embed_dim, mlp_dim=mlp_dim, depth=depth, down_sampling_window=down_sampling_window
        )
        if down_sampling_layers < 0:
            raise ConfigError(f"{name}: down_sampling_layers must be >= 0, got {down_sampling_layers}")
        if self.lookback // down_sampling_window**down_sampling_layers < 1:
            raise ConfigError(
                f"{name}: lookback {self.lookback} is too short for {down_sampling_layers} down-samplings by "
                f"{down_sampling_window}; lower down_sampling_layers"
            )
        if down_sampling_method not in ("avg", "max", "conv"):
            raise ConfigError(
                f"{name}: down_sampling_method must be avg, max or conv, got {down_sampling_method!r}"
            )
        if time_feature_pairing not in ("window", "official"):
            raise ConfigError(
                f"{name}: time_feature_pairing must be window or official, got {time_feature_pairing!r}"
            )
        channel_mlp = channel_mlp or ChannelMLP()
        self.time_feature_pairing = time_feature_pairing
        n = self.num_series
        self.channel_independence = channel_independence
        self.window = down_sampling_window
        self.lengths = [self.lookback // down_sampling_window**i for i in range(down_sampling_layers + 1)]

        if down_sampling_method == "avg":
            self.down_pool = nn.AvgPool1d(down_sampling_window)
        elif down_sampling_method == "max":
            self.down_pool = nn.MaxPool1d(down_sampling_window)
        else:
            self.down_pool = nn.Conv1d(
                n, n, 3, stride=down_sampling_window, padding=1, padding_mode="circular", bias=False
            )
        self.norms = nn.ModuleList(RevIN(n, affine=True) for _ in self.lengths) if revin else None
        if not channel_independence:
            self.preprocess = SeriesDecomposition(moving_avg)

        c_in = 1 if channel_independence else n
        self.value_embedding = nn.Conv1d(c_in, embed_dim, 3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.value_embedding.weight, mode="fan_in", nonlinearity="leaky_relu")
        self.num_time_features = num_time_features if use_time_features else 0
        self.time_embedding = (
            nn.Linear(self.num_time_features, embed_dim, bias=False) if self.num_time_features else None
        )
        self.embedding_dropout = nn.Dropout(dropout)

        self.pdm_blocks = nn.ModuleList(
            PastDecomposableMixing(
                self.lengths, embed_dim, mlp_dim, moving_avg, channel_independence, channel_mlp
            )
            for _ in range(depth)
        )
        self.predict_layers = nn.ModuleList(nn.Linear(length, self.horizon) for length in self.lengths)
        self.projection = nn.Linear(embed_dim, 1 if channel_independence else n)
        if not channel_independence:
            self.out_res_layers = nn.ModuleList(nn.Linear(length, length) for length in self.lengths)
            self.regression_layers = nn.ModuleList(nn.Linear(length, self.horizon) for length in self.lengths)

    def _multiscale(
        self, x: torch.Tensor, marks: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        xs, ms = [x], [marks]
        current = x.transpose(1, 2)
        for _ in self.lengths[1:]:
            current = self.down_pool(current)
            xs.append(current.transpose(1, 2))
            ms.append(None if marks is None else ms[-1][:, :: self.window])
        return xs, ms

    def _embed(self, x: torch.Tensor, marks: torch.Tensor | None) -> torch.Tensor:
        out = self.value_embedding(x.transpose(1, 2)).transpose(1, 2)
        if self.time_embedding is not None and marks is not None:
            out = out + self.time_embedding(marks)
        return self.embedding_dropout(out)

    @property
    def pairs_across_batch(self) -> bool:
        """Whether a window's forecast depends on the other windows of its batch (the official pairing)."""
        return (
            self.time_feature_pairing == "official"
            and self.channel_independence
            and (self.time_embedding is not None)
        )

    def forward(self, x: torch.Tensor, time_features: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x)
        batch, n = x.shape[0], self.num_series
        if self.time_embedding is None:
            time_features = None
        elif time_features is not None and time_features.shape[-1] != self.num_time_features:
            raise ConfigError(
                f"TimeMixer was built for {self.num_time_features} time features, "
                f"got {time_features.shape[-1]}"
            )
        xs, marks = self._multiscale(x, time_features)
        stats = []
        for i, scale in enumerate(xs):
            if self.norms is not None:
                scale, scale_stats = self.norms[i].normalize(scale)
                stats.append(scale_stats)
            xs[i] = scale

        if self.channel_independence:
            inputs = [s.transpose(1, 2).reshape(batch * n, s.shape[1], 1) for s in xs]
            if self.time_feature_pairing == "official":
                marks = [None if m is None else m.repeat(n, 1, 1) for m in marks]
            else:
                marks = [None if m is None else m.repeat_interleave(n, dim=0) for m in marks]
            residuals = None
        else:
            parts = [self.preprocess(s) for s in xs]
            inputs, residuals = [p[0] for p in parts], [p[1] for p in parts]
        hidden = [self._embed(s, m) for s, m in zip(inputs, marks)]
        for block in self.pdm_blocks:
            hidden = block(hidden)

        forecasts = []
        for i, h in enumerate(hidden):
            out = self.predict_layers[i](h.transpose(1, 2)).transpose(1, 2)  # (B', H, d_model)
            out = self.projection(out)
            if self.channel_independence:
                out = out.reshape(batch, n, self.horizon).transpose(1, 2)
            else:
                res = self.out_res_layers[i](residuals[i].transpose(1, 2))
                out = out + self.regression_layers[i](res).transpose(1, 2)
            forecasts.append(out)
        y = torch.stack(forecasts, dim=-1).sum(-1)
        if self.norms is not None:
            y = self.norms[0].denormalize(y, stats[0])
        return y
