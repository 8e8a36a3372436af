"""SpaRTAN: multi-order spatial mixing and a wave-based channel aggregation instead of a wide channel MLP.

Paper: Quan Bi Pay, Vishnu Monn Baskaran, Junn Yong Loo, KokSheik Wong, Simon See, "SpaRTAN: Spatial
Reinforcement Token-based Aggregation Network for Visual Recognition", IJCNN 2025 (arXiv 2507.10999).
Official code: github.com/henry-pay/SpaRTAN (``src/model/spartan.py``, ``src/config/model/spartan.yaml``).

Network (as the official ``SpaRTAN``): a stem of two ``3 × 3`` convolutions with BatchNorm and GELU
(``C -> dims[0]/2 -> dims[0]``, strides 2 and 2 for ``patch_size`` 4); 4 stages of ``depths[i]`` blocks at
width ``dims[i]``, joined by ``2 × 2`` stride-2 convolutions with BatchNorm and SiLU; mean over the
positions and a linear classifier (no final norm).

Block: ``x + DropPath(s1 ⊙ SMixer(LN(x)))`` then ``x + DropPath(s2 ⊙ CMixer(LN(x)))``, LayerScales
``s1, s2`` starting at 1e-5, LN a GroupNorm with one group (channel-wise affine).

* **SMixer** (spatial, multi-order): ``1 × 1`` to ``C/2``; ``x + γ (x - mean_HW(x))`` (γ from 1e-5);
  a high-frequency branch (``3 × 3`` convolution, BN, GELU, squeeze-excitation) and a low-frequency
  branch (a dilated ``3 × 3``, then a dilated ``3 × 3`` with BN, GELU, squeeze-excitation), concatenated
  and mixed by a ``1 × 1`` back to C.
* **CMixer** (channel, "wave-based"): with ``E = rC``, ``θ = GELU(1×1(x))`` and ``w = 1×1(x)`` (both
  ``C -> E``), ``i = argmax_c x`` per position, ``f = w θ + w_i θ_i``; ``f``'s channels taken in pairs as
  complex numbers are multiplied by a learned complex weight per pair (a rotation and scaling, in
  float32); then a ``3 × 3`` convolution with BN and GELU, squeeze-excitation (to ``C/4``), ``1 × 1``
  from E back to C.

The convolutions of the first two stages are dense (the SMixer's) or depthwise (the CMixer's ``3 × 3``
on E channels); from the third stage on, the SMixer's are depthwise and the CMixer's grouped in C groups,
as the official code decides by ``layer < num_layer // 2``. Following the official code: convolutions
start from ``N(0, 2 / fan_out)``, Linear from a truncated normal (std 0.02), every bias at zero; the
stochastic depth of block k (of K) is ``drop_path_rate · k / K``. SpaRTAN has no conventional channel
MLP (the CMixer replaces it), so it takes no ``channel_mlp``. The official configuration (the
published ImageNet model): ``dims = (32, 64, 128, 256)``, ``depths = (3, 3, 12, 2)``,
``mlp_ratios = (4, 4, 2, 2)``, ``drop_path_rate = 0.1``.

Shapes: ``(B, C, H, W) -> (B, dims[0], H/p, W/p) -> ... -> (B, dims[3], H/8p, W/8p) -> (B, dims[3])
-> (B, num_classes)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import IMAGENET, PatchClassifier, init_linear_weights, require_four_stages
from mlplab.nn.precision import autocast_off


class ConvBN(nn.Sequential):
    """Convolution (no bias), BatchNorm (eps 1e-6) and an optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = nn.GELU,
    ):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-6),
            activation() if activation is not None else nn.Identity(),
        )


class SqueezeExcite(nn.Module):
    """``x ⊙ sigmoid(W2 ReLU(W1 mean_HW(x)))`` with ``1 × 1`` convolutions ``C -> squeeze -> C``."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.expand(F.relu(self.squeeze(x.mean(dim=(2, 3), keepdim=True)))))
        return x * scale


class SMixer(nn.Module):
    """The multi-order spatial mixer (see the module docstring). Shapes: ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, dim: int, grouped: bool):
        super().__init__()
        half = dim // 2
        groups = half if grouped else 1
        self.proj_in = nn.Conv2d(dim, half, 1)
        self.gamma = nn.Parameter(1e-5 * torch.ones(1, half, 1, 1))
        self.high = nn.Sequential(
            ConvBN(half, half, 3, padding=1, groups=groups), SqueezeExcite(half, half // 4)
        )
        self.low = nn.Sequential(
            nn.Conv2d(half, half, 3, padding=2, dilation=2, groups=groups, bias=False),
            ConvBN(half, half, 3, padding=2, dilation=2, groups=groups),
            SqueezeExcite(half, half // 4),
        )
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(x)
        x = x + self.gamma * (x - x.mean(dim=(2, 3), keepdim=True))
        return self.proj_out(torch.cat([self.high(x), self.low(x)], dim=1))


class CMixer(nn.Module):
    """The wave-based channel mixer (see the module docstring). Shapes: ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, dim: int, ratio: int, grouped: bool):
        super().__init__()
        wide = dim * ratio
        self.theta = nn.Conv2d(dim, wide, 1)
        self.proj = nn.Conv2d(dim, wide, 1)
        self.complex_weight = nn.Parameter(torch.randn(wide // 2, 2))
        self.conv = ConvBN(wide, wide, 3, padding=1, groups=dim if grouped else wide)
        self.excite = SqueezeExcite(wide, dim // 4)
        self.proj_out = nn.Conv2d(wide, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        index = x.argmax(dim=1, keepdim=True)
        theta = F.gelu(self.theta(x))
        weight = self.proj(x)
        feature = weight * theta + weight.gather(1, index) * theta.gather(1, index)
        with autocast_off(x):
            pairs = feature.float().permute(0, 2, 3, 1).reshape(batch, height, width, -1, 2).contiguous()
            waves = torch.view_as_complex(pairs) * torch.view_as_complex(self.complex_weight.float())
            feature = torch.view_as_real(waves).reshape(batch, height, width, -1).permute(0, 3, 1, 2)
        return self.proj_out(self.excite(self.conv(feature.to(x.dtype))))


class SpaRTANBlock(nn.Module):
    """``x + DropPath(s1 ⊙ SMixer(LN(x)))``, then ``x + DropPath(s2 ⊙ CMixer(LN(x)))``."""

    def __init__(self, dim: int, ratio: int, grouped: bool, drop_path: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim, eps=1e-6)
        self.smixer = SMixer(dim, grouped)
        self.scale1 = nn.Parameter(1e-5 * torch.ones(1, dim, 1, 1))
        self.norm2 = nn.GroupNorm(1, dim, eps=1e-6)
        self.cmixer = CMixer(dim, ratio, grouped)
        self.scale2 = nn.Parameter(1e-5 * torch.ones(1, dim, 1, 1))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.scale1 * self.smixer(self.norm1(x)))
        return x + self.drop_path(self.scale2 * self.cmixer(self.norm2(x)))


OFFICIAL = {
    "dims": (32, 64, 128, 256),
    "depths": (3, 3, 12, 2),
    "mlp_ratios": (4, 4, 2, 2),
    "drop_path_rate": 0.1,
}


@register_family(
    domains=("image_classification",),
    variants={
        "tiny": Variant(
            {
                "patch_size": 1,  # 2x2 positions in the last stage on 16x16 (1x1 has no spatial mean)
                "dims": (16, 16, 32, 32),
                "depths": (1, 1, 1, 1),
                "mlp_ratios": (2, 2, 2, 2),
                "drop_path_rate": 0.0,
            }
        ),
        "T": Variant(
            OFFICIAL,
            params=3_800_000,
            precision=100_000,
            shapes=IMAGENET,
            source="the official README and paper: 3.8M, ImageNet-1k 77.7%",
        ),
    },
    blocks=BlockLayout(SpaRTANBlock, mixer=("smixer",), mlp=("cmixer",)),
    source="own, weight for weight with the official code",
)
class SpaRTAN(PatchClassifier):
    """SpaRTAN image classifier (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Stride of the stem: 4 (official: two stride-2 convolutions), 2 or 1 (for small
            images); the image size must be divisible by ``8 × patch_size``.
        dims: Width of each of the 4 stages (the first is the stem's output; its half must be a
            multiple of 4, for the squeeze-excitations).
        depths: Blocks in each stage.
        mlp_ratios: Expansion of the CMixer of each stage (E = ratio × width; even widths E).
        drop_path_rate: Stochastic depth of the last block (block k of K: ``rate · k / K``).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int = 4,
        dims: tuple[int, int, int, int] = (32, 64, 128, 256),
        depths: tuple[int, int, int, int] = (3, 3, 12, 2),
        mlp_ratios: tuple[int, int, int, int] = (4, 4, 2, 2),
        drop_path_rate: float = 0.1,
    ):
        name = type(self).__name__
        require_four_stages(name, dims=dims, depths=depths, mlp_ratios=mlp_ratios)
        if patch_size not in (1, 2, 4):
            raise ConfigError(f"{name}: patch_size (the stem's stride) must be 1, 2 or 4, got {patch_size}")
        if any(d <= 0 or d % 8 for d in dims):
            raise ConfigError(
                f"{name}: every stage width must be a positive multiple of 8, got {tuple(dims)}"
            )
        if any(int(r) != r or r < 1 for r in mlp_ratios) or any(d < 1 for d in depths):
            raise ConfigError(
                f"{name}: mlp_ratios and depths must be positive integers, got {tuple(mlp_ratios)} and "
                f"{tuple(depths)}"
            )
        require_positive(name, patch_size=patch_size)
        super().__init__(input_shape, output_shape, patch_size, downsamplings=3)
        self.dims = tuple(dims)
        first_stride, second_stride = {4: (2, 2), 2: (2, 1), 1: (1, 1)}[patch_size]
        self.stem = nn.Sequential(
            ConvBN(self.input_shape[0], dims[0] // 2, 3, stride=first_stride, padding=1),
            ConvBN(dims[0] // 2, dims[0], 3, stride=second_stride, padding=1),
        )
        total, number, stages = sum(depths), 0, []
        for i in range(4):
            blocks: list[nn.Module] = []
            for _ in range(depths[i]):
                blocks.append(
                    SpaRTANBlock(dims[i], int(mlp_ratios[i]), i >= 2, drop_path_rate * number / total)
                )
                number += 1
            if i < 3:
                blocks.append(ConvBN(dims[i], dims[i + 1], 2, stride=2, activation=nn.SiLU))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(dims[3], self.num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        init_linear_weights(module)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))
