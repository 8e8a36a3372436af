"""Dynamic Spectrum Mixer: token mixing in the 2-D DCT domain with input-conditioned frequency weights.

Paper: Zhiqiang Hu, Tao Yu, "Dynamic Spectrum Mixer for Visual Recognition", arXiv 2309.06721 (2023).
No official code was published with the paper (none could be found), so the layout below is mlplab's
reading of the paper's description, not a reproduction of the authors' models: token interactions are
represented in the frequency domain with the Discrete Cosine Transform, and a *dynamic spectrum weight
generation* layer, conditioned on the input, selects the informative frequency bands.

Spectrum mixer, on ``x`` of shape ``(B, h, w, C)``:

1. ``v = W_in x`` (linear over the channels).
2. ``V = D_h v D_wᵀ``: the orthonormal 2-D DCT-II over the token grid (``D_h``, ``D_w`` are fixed DCT
   matrices, buffers rather than parameters).
3. Dynamic spectrum weights: ``K`` learned spectral filters ``F_k`` of shape ``h × w`` (shared by the
   channels) are mixed per sample and channel by ``α = softmax_k(MLP(mean_{h,w} x))``, an MLP
   ``C -> C/r -> K·C``: ``G[b, :, :, c] = Σ_k α[b, k, c] F_k``.
4. ``y = W_out (D_hᵀ (V ⊙ G) D_w)``: back to the token grid, linear over the channels.

The DCT is a matrix product here (cost ``O(h·w·(h + w)·C)``); for the small feature maps of CIFAR-size
inputs that is faster than the FFT-based DCT behind the paper's log-linear cost, and the result is the
same transform. The filters start at 1 (plus a little noise), so a fresh mixer passes the spectrum
through. The filters hold ``h × w`` values, so the network is built for one image size.

Network: a ``p × p`` stride-``p`` convolution and LayerNorm (stem), 4 stages of ``depths[i]`` blocks at
widths ``D, 2D, 4D, 8D`` joined by ``2 × 2`` stride-2 convolutions with LayerNorm, then LayerNorm, mean
over the positions and a linear classifier. Block: ``x + DropPath(SpectrumMixer(LN(x)))``, then
``x + DropPath(ChannelMLP(LN(x)))`` with the conventional ``C -> 4C -> C`` GELU MLP or an hourglass one.

Shapes: ``(B, C, H, W) -> (B, H/p, W/p, D) -> ... -> (B, H/8p, W/8p, 8D) -> (B, 8D) -> (B, num_classes)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import nn

from mlplab.errors import require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import CONVENTIONAL, FourStagePatchClassifier
from mlplab.nn import ChannelMLP


def dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (``size × size``): ``D @ v`` transforms, ``D.T @ V`` inverts."""
    n = torch.arange(size, dtype=torch.float64)
    matrix = torch.cos(math.pi * (n[None, :] + 0.5) * n[:, None] / size) * math.sqrt(2.0 / size)
    matrix[0] /= math.sqrt(2.0)
    return matrix.float()


class SpectrumMixer(nn.Module):
    """DCT over the token grid, dynamic per-sample, per-channel spectral filter, inverse DCT.

    Shapes: ``(B, h, w, C) -> (B, h, w, C)``.

    Args:
        dim: Channels C.
        height: Rows h of the token grid.
        width: Columns w of the token grid.
        num_filters: Number K of learned spectral filters the dynamic weights choose between.
        reduction: Hidden width of the weight generator is ``C / reduction``.
    """

    def __init__(self, dim: int, height: int, width: int, num_filters: int = 4, reduction: int = 4):
        super().__init__()
        self.num_filters = num_filters
        self.proj_in = nn.Linear(dim, dim)
        self.proj_out = nn.Linear(dim, dim)
        self.filters = nn.Parameter(torch.ones(num_filters, height, width))
        with torch.no_grad():
            self.filters.add_(trunc_normal_(torch.empty_like(self.filters), std=0.02))
        self.weight_generator = Mlp(dim, max(dim // reduction, 1), num_filters * dim)
        self.register_buffer("dct_h", dct_matrix(height), persistent=False)
        self.register_buffer("dct_w", dct_matrix(width), persistent=False)

    def spectrum_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``G``, ``(B, h, w, C)``: the filters mixed by ``softmax_k`` of weights generated from ``x``."""
        b, _, _, c = x.shape
        alpha = self.weight_generator(x.mean(dim=(1, 2))).view(b, self.num_filters, c).softmax(dim=1)
        return torch.einsum("bkc,khw->bhwc", alpha, self.filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.proj_in(x)
        spectrum = torch.einsum("ih,bhwc,jw->bijc", self.dct_h, v, self.dct_w)
        spectrum = spectrum * self.spectrum_weights(x)
        y = torch.einsum("ih,bijc,jw->bhwc", self.dct_h, spectrum, self.dct_w)
        return self.proj_out(y)


class SpectrumBlock(nn.Module):
    """``x + DropPath(SpectrumMixer(LN(x)))``, then ``x + DropPath(ChannelMLP(LN(x)))``.

    Shapes: ``(B, h, w, C) -> (B, h, w, C)``.
    """

    def __init__(
        self,
        dim: int,
        height: int,
        width: int,
        num_filters: int,
        reduction: int,
        mlp_ratio: float,
        drop_path: float,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.mixer = SpectrumMixer(dim, height, width, num_filters, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = channel_mlp.build(dim, int(mlp_ratio * dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Downsample(nn.Module):
    """``k × k`` stride-``k`` convolution then LayerNorm, channels-last in and out.

    Shapes: ``(B, H, W, C_in) -> (B, H/k, W/k, C_out)`` (the stem takes ``(B, C_in, H, W)``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, channels_first_input: bool = False):
        super().__init__()
        self.channels_first_input = channels_first_input
        self.proj = nn.Conv2d(in_channels, out_channels, stride, stride)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.channels_first_input:
            x = x.permute(0, 3, 1, 2)
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant({"embed_dim": 8, "depths": (1, 1, 1, 1), "drop_path_rate": 0.0, "patch_size": 2})
    },
    blocks=BlockLayout(SpectrumBlock, mixer=("mixer",), mlp=("mlp",)),
    source="own (no official code: mlplab's reading of the paper)",
)
class DynamicSpectrumMixer(FourStagePatchClassifier):
    """Dynamic Spectrum Mixer image classifier (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        num_filters: Learned spectral filters per mixer, chosen between by the dynamic weights.
        reduction: Channel reduction of the weight generator.
        **kwargs: The arguments of :class:`~mlplab.models.vision.common.FourStagePatchClassifier`:
            ``patch_size``, ``embed_dim`` (64), ``depths`` (2, 2, 6, 2), ``mlp_ratio``, ``drop_path_rate``,
            ``channel_mlp``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        num_filters: int = 4,
        reduction: int = 4,
        **kwargs: Any,
    ):
        require_positive("DynamicSpectrumMixer", num_filters=num_filters, reduction=reduction)
        super().__init__(input_shape, output_shape, **kwargs)
        channels, height, width = self.input_shape
        dims, patch = self.dims, self.patch_size
        self.stem = Downsample(channels, dims[0], patch, channels_first_input=True)
        side_h, side_w = height // patch, width // patch  # the token grid of the first stage
        self.stages = self.build_stages(
            lambda i, rate: SpectrumBlock(
                dims[i],
                side_h // 2**i,
                side_w // 2**i,
                num_filters,
                reduction,
                self.mlp_ratio,
                rate,
                self.channel_mlp,
            ),  # fmt: skip
            lambda i: Downsample(dims[i], dims[i + 1], 2),
        )
        self.norm = nn.LayerNorm(dims[3])
        self.head = nn.Linear(dims[3], self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x))).mean(dim=(1, 2))
