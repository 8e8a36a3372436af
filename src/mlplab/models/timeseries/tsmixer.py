"""IBM's TSMixer (PatchTSMixer): patches, inter-/intra-patch and inter-channel MLP mixing, gated attention.

Paper: Vijay Ekambaram, Arindam Jati, Nam Nguyen, Phanwadee Sinthong, Jayant Kalagnanam, "TSMixer:
Lightweight MLP-Mixer Model for Multivariate Time Series Forecasting", KDD 2023 (arXiv 2306.09364).
Reference code: HuggingFace ``transformers`` ``PatchTSMixer`` (``modeling_patchtsmixer.py``, by the
authors) and IBM's ``tsfm``; the backbone follows it. Google's TSMixer, a different model with the same
name, is :class:`~mlplab.models.timeseries.TSMixerGoogle`.

1. **Scaling**: per window and series, subtract the mean and divide by the standard deviation (HF's
   ``scaling="std"``, i.e. RevIN without affine parameters); undone on the forecast.
2. **Patching**: the last ``patch_length + patch_stride·(P-1)`` steps are cut into ``P`` patches of
   ``patch_length`` (stride ``patch_stride``); one linear embedding ``patch_length -> d_model`` shared by
   all series: ``(B, N, P, d_model)``.
3. ``num_layers`` **mixer layers**, each a sequence of residual, pre-norm MLP blocks
   ``x + Gate(MLP(Norm(x)))`` with ``MLP = Linear(in -> e·in) · GELU · Dropout · Linear · Dropout``:
   - *inter-channel* mixing over the N series (``mode="mixing"`` only; gated before its MLP, as in HF);
   - *inter-patch* mixing over the P patches;
   - *intra-patch* (feature) mixing over ``d_model`` (the channel MLP, conventional or hourglass).
   ``Gate`` is the paper's gated attention: ``x · softmax(Linear(x))`` over the mixed axis.
4. **Head**: flatten ``P·d_model`` per series, dropout, linear to the horizon.
5. **Channel modes**: ``independent`` (CI: no inter-channel block; HF's ``common_channel``), ``mixing``
   (inter-channel blocks in the backbone; HF's ``mix_channel``) and ``hybrid``: the CI backbone plus the
   paper's *cross-channel forecast reconciliation head*: for every forecast step, the base forecasts of
   all series within ``±reconciliation_context`` steps are flattened, passed through a linear layer with
   gated attention, and added to that step's base forecast (the paper's Section 4.3 describes this head;
   HF has no code for it, so this is our reading of the paper). The paper's patch-aggregation hierarchy
   head and masked self-supervised pre-training are not implemented here.

The ``independent`` and ``mixing`` modes, with layer or batch norm, are checked weight for weight
against Hugging Face's ``PatchTSMixerForPrediction`` (transformers 5.24.0):
``benchmarks/timeseries_official_check.py --tsmixer`` (figures in ``docs/results.md``).

Shapes: ``(B, L, N) -> (B, H, N)``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.timeseries.common import ForecastingFamily
from mlplab.nn import ChannelMLP

ChannelMode = Literal["independent", "mixing", "hybrid"]


class GatedAttention(nn.Module):
    """The paper's gated attention: ``x · softmax(Linear(x))`` over the last axis.

    Args:
        width: Size of the last axis.
    """

    def __init__(self, width: int):
        super().__init__()
        self.attention = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.softmax(self.attention(x), dim=-1)


class PatchNorm(nn.Module):
    """Layer or batch normalisation over ``d_model`` of ``(B, N, P, d_model)`` tensors (HF's ``norm_mlp``).

    Args:
        d_model: Feature width.
        kind: ``layer`` (HF's ``LayerNorm``) or ``batch`` (``BatchNorm1d`` over all patches and series).
    """

    def __init__(self, d_model: int, kind: Literal["layer", "batch"]):
        super().__init__()
        if kind not in ("layer", "batch"):
            raise ConfigError(f"TSMixer: norm must be 'layer' or 'batch', got {kind!r}")
        self.kind = kind
        self.norm = nn.LayerNorm(d_model) if kind == "layer" else nn.BatchNorm1d(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "layer":
            return self.norm(x)
        return self.norm(x.reshape(-1, x.shape[-1])).view_as(x)


class MixerBlock(nn.Module):
    """A residual pre-norm MLP block mixing one axis of ``(B, N, P, d_model)`` tensors.

    Args:
        axis: Which axis it mixes: ``channel`` (N), ``patch`` (P) or ``feature`` (d_model).
        width: Size of that axis.
        d_model: Feature width (for the norm).
        mlp: The MLP ``width -> width``.
        gated_attention: Apply :class:`GatedAttention` (after the MLP; before it for ``channel``, as HF).
        norm: See :class:`PatchNorm`.
    """

    AXES = {"channel": 1, "patch": 2, "feature": 3}

    def __init__(
        self,
        axis: Literal["channel", "patch", "feature"],
        width: int,
        d_model: int,
        mlp: nn.Module,
        gated_attention: bool,
        norm: Literal["layer", "batch"],
    ):
        super().__init__()
        self.axis = self.AXES[axis]
        self.gate_first = axis == "channel"
        self.norm = PatchNorm(d_model, norm)
        self.mlp = mlp
        self.gate = GatedAttention(width) if gated_attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x).transpose(self.axis, -1)
        y = self.mlp(self.gate(y)) if self.gate_first else self.gate(self.mlp(y))
        return x + y.transpose(self.axis, -1)


class ReconciliationHead(nn.Module):
    """Cross-channel forecast reconciliation: each step's forecasts corrected from all series nearby.

    For forecast step t the base forecasts ``(2c+1, N)`` of steps ``t-c .. t+c`` (edges replicated)
    are flattened, mapped by a linear layer to N corrections, gated (:class:`GatedAttention`) and added.

    Shapes: ``(B, H, N) -> (B, H, N)``.

    Args:
        num_series: N.
        context: c, the steps on each side.
        dropout: Dropout on the corrections.
    """

    def __init__(self, num_series: int, context: int, dropout: float):
        super().__init__()
        self.context = context
        self.linear = nn.Linear((2 * context + 1) * num_series, num_series)
        self.gate = GatedAttention(num_series)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        c = self.context
        padded = F.pad(y.transpose(1, 2), (c, c), mode="replicate")  # (B, N, H + 2c)
        windows = padded.unfold(2, 2 * c + 1, 1)  # (B, N, H, 2c+1)
        windows = windows.permute(0, 2, 3, 1).flatten(2)  # (B, H, (2c+1)·N)
        return y + self.dropout(self.gate(self.linear(windows)))


@register_family(
    domains=("forecasting",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant(
            {"patch_length": 8, "patch_stride": 4, "embed_dim": 16, "dropout": 0.0, "head_dropout": 0.0}
        ),
        "etth1": Variant(
            {"patch_length": 16, "patch_stride": 16, "embed_dim": 48, "depth": 2, "mlp_ratio": 3.0},
            params=196_144,
            shapes=((512, 7), (96, 7)),
            source="Hugging Face's ibm/patchtsmixer-etth1-pretrain configuration, by its layers",
        ),
    },
    blocks=BlockLayout(MixerBlock, mlp=("mlp",)),
    renamed={
        "d_model": "embed_dim",
        "num_layers": "depth",
        "expansion_factor": "mlp_ratio",
        "scaling": "revin",
    },
    source="own, weight for weight with Hugging Face's PatchTSMixer",
)
class TSMixer(ForecastingFamily):
    """IBM's TSMixer (PatchTSMixer), see the module docstring. Defaults: HF's ETTh1 model card.

    The defaults are the configuration of ``ibm/patchtsmixer-etth1-pretrain`` (context 512, patches of
    16 with stride 16, d_model 48, 2 layers, expansion 3, dropout 0.5, head dropout 0.5, layer norm,
    gated attention, channel-independent), which reports MSE 0.37 on ETTh1's test split at horizon 96.

    Args:
        input_shape: ``(lookback, num_series)``; filled in by the task.
        output_shape: ``(horizon, num_series)``; filled in by the task.
        patch_length: Steps per patch.
        patch_stride: Steps between the starts of consecutive patches.
        embed_dim: Patch embedding width (HF's ``d_model``).
        depth: Number of mixer layers (HF's ``num_layers``).
        mlp_ratio: Hidden width of the MLPs as a multiple of their input width (HF's ``expansion_factor``).
        dropout: Dropout inside the MLPs.
        head_dropout: Dropout before the forecast head (and on the reconciliation corrections).
        mode: ``independent``, ``mixing`` or ``hybrid`` (see the module docstring).
        gated_attention: Use the gated attention in every block.
        norm: ``layer`` or ``batch`` normalisation in the blocks.
        revin: Standardise each window (and undo it on the forecast; HF's ``scaling``).
        reconciliation_context: Steps on each side seen by the hybrid mode's reconciliation head.
        channel_mlp: The intra-patch (feature) MLP ``d -> mlp_ratio·d -> d``, conventional
            (the paper) or hourglass.
    """

    def __init__(
        self,
        input_shape: tuple[int, int],
        output_shape: tuple[int, int],
        patch_length: int = 16,
        patch_stride: int = 16,
        embed_dim: int = 48,
        depth: int = 2,
        mlp_ratio: float = 3.0,
        dropout: float = 0.5,
        head_dropout: float = 0.5,
        mode: ChannelMode = "independent",
        gated_attention: bool = True,
        norm: Literal["layer", "batch"] = "layer",
        revin: bool = True,
        reconciliation_context: int = 2,
        channel_mlp: ChannelMLP | None = None,
    ):
        super().__init__(input_shape, output_shape, revin=revin)
        name = type(self).__name__
        require_positive(
            name, patch_length=patch_length, patch_stride=patch_stride, embed_dim=embed_dim, depth=depth
        )
        if mlp_ratio <= 0:
            raise ConfigError(f"{name}: mlp_ratio must be positive, got {mlp_ratio}")
        if mode not in ("independent", "mixing", "hybrid"):
            raise ConfigError(f"{name}: mode must be independent, mixing or hybrid, got {mode!r}")
        if patch_length > self.lookback:
            raise ConfigError(
                f"{name}: patch_length {patch_length} is longer than the lookback {self.lookback}"
            )
        if reconciliation_context < 0:
            raise ConfigError(f"{name}: reconciliation_context must be >= 0, got {reconciliation_context}")
        channel_mlp = channel_mlp or ChannelMLP()
        n = self.num_series
        self.mode = mode
        self.patch_length, self.patch_stride = patch_length, patch_stride
        self.num_patches = (self.lookback - patch_length) // patch_stride + 1
        self.patch_start = self.lookback - (patch_length + patch_stride * (self.num_patches - 1))
        self.embedding = nn.Linear(patch_length, embed_dim)

        def mlp(width: int) -> nn.Module:
            return Mlp(width, int(width * mlp_ratio), act_layer=nn.GELU, drop=dropout)

        layers = []
        for _ in range(depth):
            blocks = []
            if mode == "mixing":
                blocks.append(MixerBlock("channel", n, embed_dim, mlp(n), gated_attention, norm))
            blocks.append(
                MixerBlock("patch", self.num_patches, embed_dim, mlp(self.num_patches), gated_attention, norm)
            )
            feature_mlp = channel_mlp.build(
                embed_dim, int(embed_dim * mlp_ratio), activation="gelu", drop=dropout
            )
            blocks.append(MixerBlock("feature", embed_dim, embed_dim, feature_mlp, gated_attention, norm))
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.head_dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(self.num_patches * embed_dim, self.horizon)
        self.reconciliation = (
            ReconciliationHead(n, reconciliation_context, head_dropout) if mode == "hybrid" else None
        )

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, N)`` -> patches ``(B, N, P, patch_length)``."""
        x = x[:, self.patch_start :].transpose(1, 2)
        return x.unfold(-1, self.patch_length, self.patch_stride)

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.layers(self.embedding(self.patchify(x)))  # (B, N, P, d_model)
        y = self.head(self.head_dropout(hidden.flatten(2))).transpose(1, 2)  # (B, H, N)
        return y if self.reconciliation is None else self.reconciliation(y)
