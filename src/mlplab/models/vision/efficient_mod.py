"""EfficientMod: efficient modulation blocks (context from a depthwise convolution × a projected feature).

Paper: Xu Ma, Xiyang Dai, Jianwei Yang, Bin Xiao, Yinpeng Chen, Yun Fu, Lu Yuan, "Efficient Modulation
for Vision Networks", ICLR 2024 (arXiv 2403.19963). Official code: github.com/ma-xu/EfficientMod
(``models/EfficientMod.py``: ``EfficientMod``, ``BasicBlock``, ``Mlp``, ``ContextLayer``,
``AttentionBlock``; variants ``efficientMod_xxs / xs / s``).

Network (as the official ``EfficientMod``, channels last throughout): a ``(2p-1) × (2p-1)`` stride-``p``
convolution with padding ``p - 1`` (the official 7/4/3 for ``p = 4``) and LayerNorm to ``dims[0]``; 4
stages, stage ``i`` holding ``depths[i]`` modulation blocks then ``attention_depths[i]`` attention
blocks at width ``dims[i]``, joined by ``3 × 3`` stride-2 convolutions (padding 1) followed by
LayerNorm; LayerNorm, mean over the positions, linear classifier.

Modulation block (the official ``BasicBlock`` around ``Mlp``): ``x + DropPath(γ ⊙ M(LN(x)))`` with
LayerScale ``γ`` and, for an expansion ratio ``r`` of the block,

    ctx = g(GELU(DWConv_k(f(x))))                   f: C -> C, g: C -> C (Linear), k × k depthwise
    v   = GELU(fc1(x))                              fc1: C -> rC (no GELU when r = 1)
    M(x) = fc2(v ⊙ repeat(ctx, r))                  fc2: rC -> C

The official variants give every stage the same alternating pattern of ratios (``1, 6, 1, 6, ...`` for
xxs and s, ``1, 4, ...`` for xs; ``mlp_ratios`` here, cycled over each stage's blocks) and set the
context width to ``rC / r = C``. Attention block (the official ``AttentionBlock``): a pre-norm ViT block,
``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` (MLP ratio ``attention_mlp_ratios[i]``), over the flattened
positions; no LayerScale. Its attention has ``num_heads`` heads of width ``max(C // num_heads, 32)``
(the official code's rule: wider than ``C / num_heads`` in the narrow stages), query-key-value without
bias.

Following the official code: Linear layers start from a truncated normal (std 0.02) and zero biases;
the convolutions keep PyTorch's initialisation (the official ``isinstance(m, nn.Linear or nn.Conv2d)``
tests for ``nn.Linear`` only). The attention blocks' MLP is a ``channel_mlp`` (conventional by default;
hourglass for the comparison); the modulation block's own MLP is the family's design and stays as it is.
EfficientMod-xxs (the smallest published ImageNet model): ``dims = (32, 64, 128, 256)``,
``depths = (2, 2, 6, 2)``, ``attention_depths = (0, 0, 1, 2)``, ``mlp_ratios = (1, 6)``,
``attention_mlp_ratios = (4, 4, 4, 4)`` (the first two unused), 4.7M parameters.

Shapes: ``(B, C, H, W) -> (B, H/p, W/p, dims[0]) -> ... -> (B, H/8p, W/8p, dims[3]) -> (B, dims[3])
-> (B, num_classes)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import (
    CONVENTIONAL,
    IMAGENET,
    PatchClassifier,
    drop_path_rates,
    init_linear_weights,
    require_four_stages,
)
from mlplab.nn import ChannelMLP


class ChannelsLastConv(nn.Module):
    """A strided convolution on a channels-last tensor, then LayerNorm: the stem and every downsampling.

    Shapes: ``(B, H, W, C_in) -> (B, H', W', C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel, stride, padding)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class Modulation(nn.Module):
    """The efficient modulation: ``fc2(GELU(fc1(x)) ⊙ repeat(context(x), r))`` (see the module docstring).

    Shapes: ``(B, H, W, C) -> (B, H, W, C)``.

    Args:
        dim: Channels C.
        ratio: Expansion r of the projected feature (an integer: the context is repeated r times).
        context_size: Kernel of the depthwise context convolution.
    """

    def __init__(self, dim: int, ratio: int, context_size: int):
        super().__init__()
        self.ratio = ratio
        self.f = nn.Linear(dim, dim)
        self.context = nn.Conv2d(dim, dim, context_size, padding=context_size // 2, groups=dim)
        self.g = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.fc2 = nn.Linear(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.f(x).permute(0, 3, 1, 2)
        context = self.g(F.gelu(self.context(context)).permute(0, 2, 3, 1))
        value = self.fc1(x)
        if self.ratio > 1:
            value = F.gelu(value)
            context = context.repeat(1, 1, 1, self.ratio)
        return self.fc2(value * context)


class ModulationBlock(nn.Module):
    """``x + DropPath(γ ⊙ Modulation(LN(x)))`` on channels-last tensors ``(B, H, W, C)``."""

    def __init__(
        self, dim: int, ratio: int, context_size: int, drop_path: float, layer_scale_init_value: float
    ):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.modulation = Modulation(dim, ratio, context_size)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.gamma * self.modulation(self.norm(x)))


class WideHeadAttention(nn.Module):
    """Multi-head self-attention whose heads are ``max(dim // num_heads, 32)`` wide (the official rule).

    Shapes: ``(B, N, C) -> (B, N, C)``.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = max(dim // num_heads, 32)
        self.qkv = nn.Linear(dim, 3 * num_heads * self.head_dim, bias=False)
        self.proj = nn.Linear(num_heads * self.head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class AttentionBlock(nn.Module):
    """A pre-norm Transformer block over the flattened positions of ``(B, H, W, C)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float, channel_mlp: ChannelMLP):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WideHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = channel_mlp.build(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        tokens = x.reshape(batch, height * width, channels)
        tokens = tokens + self.drop_path(self.attn(self.norm1(tokens)))
        tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        return tokens.reshape(batch, height, width, channels)


XXS = {
    "dims": (32, 64, 128, 256),
    "depths": (2, 2, 6, 2),
    "attention_depths": (0, 0, 1, 2),
    "mlp_ratios": (1, 6),
    "attention_mlp_ratios": (4.0, 4.0, 4.0, 4.0),
}


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant(
            {
                "patch_size": 2,
                "dims": (8, 16, 16, 32),
                "depths": (1, 1, 1, 1),
                "attention_depths": (0, 0, 0, 1),
                "mlp_ratios": (2,),
                "context_size": 3,
                "num_heads": 2,
                "layer_scale_init_value": 0.1,
            }
        ),
        "xxs": Variant(
            XXS,
            params=4_700_000,
            precision=100_000,
            shapes=IMAGENET,
            source="the official README's EfficientMod-xxs, 4.7M",
        ),
        "xs": Variant(
            {
                **XXS,
                "dims": (32, 64, 144, 288),
                "depths": (3, 3, 4, 2),
                "attention_depths": (0, 0, 3, 3),
                "mlp_ratios": (1, 4),
            },
            params=6_600_000,
            precision=100_000,
            shapes=IMAGENET,
            source="the official README's EfficientMod-xs, 6.6M",
        ),
        "s": Variant(
            {
                **XXS,
                "dims": (32, 64, 144, 312),
                "depths": (4, 4, 8, 4),
                "attention_depths": (0, 0, 4, 4),
                "attention_mlp_ratios": (4.0, 4.0, 4.0, 5.0),
                "drop_path_rate": 0.02,
            },
            params=12_900_000,
            precision=100_000,
            shapes=IMAGENET,
            source="the official README's EfficientMod-s, 12.9M",
        ),
    },
    blocks=BlockLayout((ModulationBlock, AttentionBlock), mixer=("modulation", "attn"), mlp=("mlp",)),
    source="own, weight for weight with the official code",
)
class EfficientMod(PatchClassifier):
    """EfficientMod image classifier (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Stride p of the stem (kernel ``2p - 1``); the image size must be divisible by ``8p``.
        dims: Width of each of the 4 stages.
        depths: Modulation blocks in each stage.
        attention_depths: Attention blocks after the modulation blocks of each stage.
        mlp_ratios: Expansion ratios (integers) of the modulation blocks, cycled over each stage's blocks.
        attention_mlp_ratios: MLP ratio of the attention blocks of each stage.
        context_size: Kernel of the depthwise context convolutions.
        num_heads: Attention heads (each ``max(dim // num_heads, 32)`` wide).
        layer_scale_init_value: Initial LayerScale of the modulation blocks.
        drop_path_rate: Stochastic depth, rising linearly from 0 over all the blocks.
        channel_mlp: The attention blocks' MLP: conventional or hourglass.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int = 4,
        dims: tuple[int, int, int, int] = (32, 64, 128, 256),
        depths: tuple[int, int, int, int] = (2, 2, 6, 2),
        attention_depths: tuple[int, int, int, int] = (0, 0, 1, 2),
        mlp_ratios: tuple[int, ...] = (1, 6),
        attention_mlp_ratios: tuple[float, float, float, float] = (4.0, 4.0, 4.0, 4.0),
        context_size: int = 7,
        num_heads: int = 8,
        layer_scale_init_value: float = 1e-4,
        drop_path_rate: float = 0.0,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        name = type(self).__name__
        require_four_stages(
            name,
            dims=dims,
            depths=depths,
            attention_depths=attention_depths,
            attention_mlp_ratios=attention_mlp_ratios,
        )
        if not mlp_ratios or any(int(r) != r or r < 1 for r in mlp_ratios):
            raise ConfigError(f"{name}: mlp_ratios must be positive integers, got {tuple(mlp_ratios)}")
        if any(d < 0 for d in (*depths, *attention_depths)) or sum(depths) + sum(attention_depths) == 0:
            raise ConfigError(f"{name}: depths and attention_depths must be >= 0 and not all 0")
        if context_size % 2 == 0:
            raise ConfigError(f"{name}: context_size must be odd, got {context_size}")
        require_positive(name, num_heads=num_heads, context_size=context_size, **{"every dim": min(dims)})
        super().__init__(input_shape, output_shape, patch_size, downsamplings=3)
        self.dims = tuple(dims)
        rates = iter(drop_path_rates(drop_path_rate, sum(depths) + sum(attention_depths)))
        self.stem = ChannelsLastConv(
            self.input_shape[0], dims[0], 2 * patch_size - 1, patch_size, patch_size - 1
        )
        stages = []
        for i in range(4):
            blocks: list[nn.Module] = [
                ModulationBlock(
                    dims[i],
                    int(mlp_ratios[j % len(mlp_ratios)]),
                    context_size,
                    next(rates),
                    layer_scale_init_value,
                )
                for j in range(depths[i])
            ]
            blocks += [
                AttentionBlock(dims[i], num_heads, attention_mlp_ratios[i], next(rates), channel_mlp)
                for _ in range(attention_depths[i])
            ]
            if i < 3:
                blocks.append(ChannelsLastConv(dims[i], dims[i + 1], 3, 2, 1))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[3])
        self.head = nn.Linear(dims[3], self.num_classes)
        self.apply(init_linear_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x.permute(0, 2, 3, 1)))
        return self.norm(x).mean(dim=(1, 2))
