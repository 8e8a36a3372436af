"""PatchTST: channel-independent patches of a series as the tokens of a Transformer encoder.

Paper: Yuqi Nie, Nam H. Nguyen, Phanwadee Sinthong, Jayant Kalagnanam, "A Time Series is Worth 64
Words: Long-term Forecasting with Transformers", ICLR 2023 (arXiv 2211.14730). Official code:
github.com/yuqinie98/PatchTST, ``PatchTST_supervised/layers/PatchTST_backbone.py``; this file follows
it (supervised model, no decomposition).

1. RevIN per window and series (optionally affine; the official scripts run without affine).
2. Patching: the series is padded at the end by repeating its last value ``stride`` times, then cut into
   ``P = (L - patch_len) / stride + 2`` patches of ``patch_len`` at stride ``stride``.
3. Every patch of every series (channel independence) is embedded by ``Linear(patch_len -> d_model)``, a
   learned positional embedding (initialised uniform in [-0.02, 0.02]) is added, then dropout.
4. ``e_layers`` post-norm Transformer encoder layers with batch normalisation: multi-head
   self-attention with *residual attention* (each layer's pre-softmax scores are added to the next
   layer's, as the official ``res_attention=True``), dropout, ``BatchNorm``; feed-forward
   ``d_model -> d_ff -> d_model`` (GELU, dropout), dropout, ``BatchNorm``.
5. Flatten head: ``P·d_model -> H`` per series, dropout; RevIN undone.

Checked weight for weight against the official ``models/PatchTST.py`` (the ETTh1 configuration, with
and without affine RevIN, in evaluation and training mode): ``benchmarks/timeseries_official_check.py
--patchtst`` (figures in ``docs/results.md``). The official attention's frozen ``scale`` parameter (one
per layer) is computed here instead, so the official count is 3 parameters higher at depth 3.

Shapes: ``(B, L, N) -> (B, H, N)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.timeseries.common import ForecastingFamily


class BatchNormTokens(nn.Module):
    """``BatchNorm1d`` over ``d_model`` of token tensors ``(B, P, d_model)``."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResidualAttention(nn.Module):
    """Multi-head self-attention whose pre-softmax scores carry over from the previous layer.

    Shapes: ``(B, P, d_model)`` and previous scores ``(B, heads, P, P)`` or None ->
    ``(B, P, d_model)`` and this layer's scores.

    Args:
        d_model: Token width.
        n_heads: Number of heads.
        attn_dropout: Dropout on the attention weights.
        proj_dropout: Dropout after the output projection.
    """

    def __init__(self, d_model: int, n_heads: int, attn_dropout: float, proj_dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"PatchTST: embed_dim ({d_model}) must be divisible by num_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.out = nn.Sequential(nn.Linear(d_model, d_model), nn.Dropout(proj_dropout))

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        if prev is not None:
            scores = scores + prev
        weights = self.attn_dropout(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(batch, tokens, width)
        return self.out(out), scores


class PatchTSTEncoderLayer(nn.Module):
    """Post-norm encoder layer with batch norm and residual attention (see the module docstring).

    Args:
        d_model: Token width.
        n_heads: Number of heads.
        d_ff: Hidden width of the feed-forward network.
        dropout: Dropout after attention and in / after the feed-forward network.
        attn_dropout: Dropout on the attention weights.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float = 0.0):
        super().__init__()
        self.attention = ResidualAttention(d_model, n_heads, attn_dropout, dropout)
        self.dropout_attn = nn.Dropout(dropout)
        self.norm_attn = BatchNormTokens(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )
        self.dropout_ff = nn.Dropout(dropout)
        self.norm_ff = BatchNormTokens(d_model)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        attended, scores = self.attention(x, prev)
        x = self.norm_attn(x + self.dropout_attn(attended))
        x = self.norm_ff(x + self.dropout_ff(self.ff(x)))
        return x, scores


@register_family(
    domains=("forecasting",),
    variants={
        "tiny": Variant(
            {
                "patch_len": 8,
                "stride": 4,
                "embed_dim": 16,
                "num_heads": 2,
                "depth": 2,
                "mlp_dim": 32,
                "dropout": 0.0,
                "fc_dropout": 0.0,
            }
        ),
        "etth1-336": Variant(
            {"patch_len": 16, "stride": 8, "embed_dim": 16, "num_heads": 4, "depth": 3, "mlp_dim": 128},
            params=81_731 - 3,
            shapes=((336, 7), (96, 7)),
            source="the official backbone (PatchTST/42, ETTh1): 81,731 with one frozen attention "
            "scale per layer, which this one computes",
        ),
    },
    # post-norm encoder layers: zeroing a sub-layer leaves a BatchNorm of the input, not the input
    renamed={
        "d_model": "embed_dim",
        "n_heads": "num_heads",
        "e_layers": "depth",
        "d_ff": "mlp_dim",
        "affine": "revin_affine",
    },
    source="own, weight for weight with the official code",
)
class PatchTST(ForecastingFamily):
    """PatchTST (supervised), see the module docstring. Defaults: the official ETTh1 script (PatchTST/42).

    Args:
        input_shape: ``(lookback, num_series)``; filled in by the task.
        output_shape: ``(horizon, num_series)``; filled in by the task.
        patch_len: Steps per patch.
        stride: Steps between patch starts (also the end padding).
        embed_dim: Token width (the official ``d_model``).
        num_heads: Attention heads (the official ``n_heads``).
        depth: Encoder layers (the official ``e_layers``).
        mlp_dim: Hidden width of the feed-forward networks (the official ``d_ff``).
        dropout: Dropout in the encoder (the official ``dropout``; also after the embedding).
        fc_dropout: Kept for the official scripts' argument list; the forecasting head uses ``head_dropout``.
        head_dropout: Dropout after the flatten head.
        revin: Reversible instance normalisation around the model.
        revin_affine: Learnable RevIN scale and shift (the official ``affine``).
    """

    def __init__(
        self,
        input_shape: tuple[int, int],
        output_shape: tuple[int, int],
        patch_len: int = 16,
        stride: int = 8,
        embed_dim: int = 16,
        num_heads: int = 4,
        depth: int = 3,
        mlp_dim: int = 128,
        dropout: float = 0.3,
        fc_dropout: float = 0.3,
        head_dropout: float = 0.0,
        revin: bool = True,
        revin_affine: bool = False,
    ):
        super().__init__(input_shape, output_shape, revin=revin, revin_affine=revin_affine)
        require_positive(
            "PatchTST",
            patch_len=patch_len,
            stride=stride,
            embed_dim=embed_dim,
            num_heads=num_heads,
            depth=depth,
        )
        if patch_len > self.lookback:
            raise ConfigError(f"PatchTST: patch_len {patch_len} is longer than the lookback {self.lookback}")
        self.patch_len, self.stride = patch_len, stride
        self.num_patches = (self.lookback - patch_len) // stride + 2
        self.embedding = nn.Linear(patch_len, embed_dim)
        self.position = nn.Parameter(torch.empty(self.num_patches, embed_dim).uniform_(-0.02, 0.02))
        self.embedding_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            PatchTSTEncoderLayer(embed_dim, num_heads, mlp_dim, dropout) for _ in range(depth)
        )
        self.head = nn.Linear(self.num_patches * embed_dim, self.horizon)
        self.head_dropout = nn.Dropout(head_dropout)

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        series = x.transpose(1, 2)  # (B, N, L)
        series = torch.cat([series, series[..., -1:].expand(-1, -1, self.stride)], dim=-1)
        patches = series.unfold(-1, self.patch_len, self.stride)  # (B, N, P, patch_len)
        tokens = self.embedding(patches).flatten(0, 1) + self.position  # (B·N, P, d_model)
        tokens = self.embedding_dropout(tokens)
        scores = None
        for layer in self.layers:
            tokens, scores = layer(tokens, scores)
        tokens = tokens.view(batch, self.num_series, self.num_patches, -1)
        # The official head flattens (d_model, P) in that order: features outermost.
        y = self.head_dropout(self.head(tokens.transpose(2, 3).flatten(2)))  # (B, N, H)
        return y.transpose(1, 2)
