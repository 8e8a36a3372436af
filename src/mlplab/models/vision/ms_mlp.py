"""MS-MLP: mix-shift blocks, channel groups shifted by -2..+2 and mixed by growing depthwise kernels.

Paper: Huangjie Zheng, Pengcheng He, Weizhu Chen, Mingyuan Zhou, "Mixing and Shifting: Exploiting Global
and Local Dependencies in Vision MLPs", arXiv 2202.06510 (2022). Official code:
github.com/JegZheng/MS-MLP (``models/ms_mlp.py``, ``configs/msmlp_*_patch4_shift5_224.yaml``).

Network (as the official ``MS_MLP``): a ``p × p`` stride-``p`` convolution and LayerNorm to ``D``
channels; 4 stages of ``depths[i]`` mix-shift blocks at widths ``D, 2D, 4D, 8D``, joined by ``2 × 2``
stride-2 convolutions followed by LayerNorm; mean over the positions, LayerNorm, linear classifier.

Mix-shift block: the channels are cut into ``shift_size`` groups (``torch.chunk``: groups of
``ceil(C / shift_size)`` channels, the last one smaller). Group ``i`` is rolled (circularly) by
``shift_dist[i]`` positions along the width and, separately, along the height, each copy is mixed by a
depthwise convolution of kernel ``mix_size[stage][i]`` (one for each direction), and the two results
are summed: ``y = Σ_i DW_lr,i(roll_W(x_i)) + DW_td,i(roll_H(x_i))`` (concatenated over the groups).
Then ``x + DropPath(γ ⊙ ChannelMLP(LN(y)))`` with LayerScale ``γ`` (initialised to 1e-6) and the channel
MLP ``C -> 4C -> C`` (GELU). The larger the shift, the larger the kernel that mixes it.

Checked weight for weight against the official code (outputs and every weight's gradient, T,
``benchmarks/vision_official_check.py``, results in ``docs/results.md``).

Following the official code: the paper describes mixing and then shifting, the code rolls first and then
mixes (the same operation up to where the kernel is centred); the code is followed. Linear layers start
from a truncated normal (std 0.02). MS-MLP-T (the smallest published ImageNet model) is ``D = 96,
depths = (3, 3, 9, 3), shift_size = 5, shift_dist = (-2, -1, 0, 1, 2)``, ``mix_size`` =
``((1, 1, 3, 5, 7), (1, 3, 3, 5, 7), (1, 5, 5, 5, 7), (1, 7, 7, 7, 7))``.

The blocks are convolutional, so they would run at any size; the network is built and checked for one
image size (divisible by ``8p``), as the official patch embedding asserts.

Shapes: ``(B, C, H, W) -> (B, D, H/p, W/p) -> ... -> (B, 8D, H/8p, W/8p) -> (B, 8D) -> (B, num_classes)``.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import DropPath
from torch import nn

from mlplab.errors import ConfigError
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import CONVENTIONAL, IMAGENET, FourStagePatchClassifier, init_linear_weights
from mlplab.nn import ChannelMLP

TINY_MIX_SIZE = ((1, 1, 3, 5, 7), (1, 3, 3, 5, 7), (1, 5, 5, 5, 7), (1, 7, 7, 7, 7))


class ChannelsLastLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` tensor (eps 1e-6, as the official code)."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvEmbed(nn.Module):
    """A ``k × k`` stride-``k`` convolution followed by LayerNorm: the stem and every downsampling.

    Shapes: ``(B, C_in, H, W) -> (B, C_out, H/k, W/k)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, stride, stride)
        self.norm = ChannelsLastLayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class MixShiftBlock(nn.Module):
    """Shift channel groups along W and H, mix each by its depthwise kernel, then a LayerScaled channel MLP.

    Shapes: ``(B, C, S_h, S_w) -> (B, C, S_h, S_w)``.

    Args:
        dim: Channels C.
        shift_dist: Shift of each channel group (its length is the number of groups).
        mix_size: Depthwise kernel of each group (odd sizes).
        mlp_ratio: Hidden width of the conventional channel MLP as a multiple of C.
        drop_path: Stochastic depth rate.
        layer_scale_init_value: Initial LayerScale.
        channel_mlp: Conventional or hourglass channel MLP.
    """

    def __init__(
        self,
        dim: int,
        shift_dist: tuple[int, ...],
        mix_size: tuple[int, ...],
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        super().__init__()
        self.shift_dist = tuple(int(s) for s in shift_dist)
        size = -(-dim // len(shift_dist))  # torch.chunk's group size, the last group takes the rest
        chunks = [min(size, dim - start) for start in range(0, dim, size)]
        if len(chunks) != len(shift_dist):
            raise ConfigError(
                f"MSMLP: {dim} channels cannot be cut into {len(shift_dist)} groups by torch.chunk "
                f"(it makes {len(chunks)}); use a width that is a multiple of the number of shifts"
            )
        self.dwconv_lr = nn.ModuleList(
            nn.Conv2d(c, c, k, padding=k // 2, groups=c) for c, k in zip(chunks, mix_size)
        )
        self.dwconv_td = nn.ModuleList(
            nn.Conv2d(c, c, k, padding=k // 2, groups=c) for c, k in zip(chunks, mix_size)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = channel_mlp.build(dim, int(mlp_ratio * dim))
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.chunk(len(self.shift_dist), dim=1)
        along_w = [conv(g.roll(s, 3)) for g, s, conv in zip(groups, self.shift_dist, self.dwconv_lr)]
        along_h = [conv(g.roll(s, 2)) for g, s, conv in zip(groups, self.shift_dist, self.dwconv_td)]
        y = (torch.cat(along_w, dim=1) + torch.cat(along_h, dim=1)).permute(0, 2, 3, 1)
        y = self.gamma * self.mlp(self.norm(y))
        return x + self.drop_path(y.permute(0, 3, 1, 2))


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant(
            {
                "embed_dim": 10,
                "depths": (1, 1, 1, 1),
                "drop_path_rate": 0.0,
                "layer_scale_init_value": 0.1,
                "patch_size": 2,
            }
        ),
        "T": Variant(
            {
                "patch_size": 4,
                "embed_dim": 96,
                "depths": (3, 3, 9, 3),
                "shift_dist": (-2, -1, 0, 1, 2),
                "mix_size": TINY_MIX_SIZE,
            },
            params=28_656_232,
            shapes=IMAGENET,
            source="the official code's MS-MLP-T (the paper's \"28M\" truncates it, Table 1)",
        ),
    },
    # the shift-and-mix of a block is not a residual branch of its own: only the channel MLP is
    blocks=BlockLayout(MixShiftBlock, mlp=("mlp",)),
    source="own, weight for weight with the official code",
)
class MSMLP(FourStagePatchClassifier):
    """MS-MLP image classifier (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        embed_dim: Width D of the first stage (then 2D, 4D, 8D).
        depths: Blocks in each of the 4 stages.
        shift_dist: Shift of each channel group (5 groups: -2..2 in the paper).
        mix_size: Depthwise kernel of each group, one tuple per stage.
        layer_scale_init_value: Initial LayerScale of every block.
        **kwargs: The arguments of :class:`~mlplab.models.vision.common.FourStagePatchClassifier`:
            ``patch_size``, ``mlp_ratio``, ``drop_path_rate``, ``channel_mlp``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 96,
        depths: tuple[int, int, int, int] = (3, 3, 9, 3),
        shift_dist: tuple[int, ...] = (-2, -1, 0, 1, 2),
        mix_size: tuple[tuple[int, ...], ...] = TINY_MIX_SIZE,
        layer_scale_init_value: float = 1e-6,
        **kwargs: Any,
    ):
        if len(mix_size) != 4:
            raise ConfigError(f"MSMLP has 4 stages: mix_size needs 4 entries, got {len(mix_size)}")
        for kernels in mix_size:
            if len(kernels) != len(shift_dist) or any(k % 2 == 0 or k < 1 for k in kernels):
                raise ConfigError(
                    f"MSMLP: every mix_size entry needs one odd kernel per shift ({len(shift_dist)}), "
                    f"got {tuple(kernels)}"
                )
        super().__init__(input_shape, output_shape, embed_dim=embed_dim, depths=depths, **kwargs)
        dims = self.dims
        self.patch_embed = ConvEmbed(self.input_shape[0], dims[0], self.patch_size)
        self.stages = self.build_stages(
            lambda i, rate: MixShiftBlock(
                dims[i],
                shift_dist,
                mix_size[i],
                self.mlp_ratio,
                rate,
                layer_scale_init_value,
                self.channel_mlp,
            ),
            lambda i: ConvEmbed(dims[i], dims[i + 1], 2),
        )
        self.norm = nn.LayerNorm(dims[3], eps=1e-6)
        self.head = nn.Linear(dims[3], self.num_classes)
        self.apply(init_linear_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.patch_embed(x)).mean(dim=(2, 3)))
