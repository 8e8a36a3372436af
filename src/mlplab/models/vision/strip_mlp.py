"""Strip-MLP: token mixing across adjacent strips of rows and columns, plus a local strip branch.

Paper: Guiping Cao, Shengda Luo, Wenjian Huang, Xiangyuan Lan, Dongmei Jiang, Yaowei Wang, Jianguo
Zhang, "Strip-MLP: Efficient Token Interaction for Vision MLP", ICCV 2023. Official code:
github.com/Med-Process/Strip_MLP (``models/strip_mlp.py``, ``configs/*.yaml``).

Network (4 stages, as the official ``StripMLPNet``): a bias-free ``p × p`` stride-``p`` convolution to
``D`` channels, stages of ``layers[i]`` blocks at widths ``D, 2D, 4D, 8D`` and resolutions ``R, R/2, R/4,
R/8`` (``R = H/p``) joined by bias-free stride-2 ``2 × 2`` convolutions; two extra depthwise stride-2
paths carry stage-1 and stage-2 features to the inputs of stages 3 and 4; BatchNorm, mean over the
positions, linear classifier.

Block: ``x + DropPath(TokenMixing(x))``, then ``x + DropPath(ChannelMixing(x))``.

* Token mixing: BN, GELU, depthwise 3×3 convolution; a 1×1 convolution with BN and GELU; then the
  channels are split in half.

  - First half, the **Cascade Group Strip Mixing Module** (CGSMM): the ``C/2`` channels are cut into
    ``C1`` groups of ``G`` channels. A *Strip MLP layer* mixes every row of tokens: a linear map over the
    ``W`` tokens of a row whose weights depend on the channel within the group (``G`` different maps,
    shared by the ``C1`` groups) and which also reads the two adjacent rows (a ``(1, 3)`` grouped
    convolution over the row axis), i.e. tokens interact across neighbouring strips. Learned relative
    position embeddings are added before it; its output is concatenated with its input and fused by a
    1×1 convolution, BN, GELU. A second Strip MLP layer then mixes the columns the same way, and a 1×1
    convolution fuses it with the module's input.
  - Second half, the **Local Strip Mixing Module** (LSMM): depthwise ``3 × 7`` and ``7 × 3``
    convolutions and the identity, weighted per channel by a softmax over the three, computed from the
    pooled sum of the three by a small MLP.

  A 1×1 convolution fuses the two halves.
* Channel mixing: depthwise 7×7 convolution, LayerNorm, then the channel MLP. The conventional one is
  the official ``Linear (C -> alpha·C), GELU, GRN, Linear`` (timm's ``GlobalResponseNormMlp``); an
  hourglass ``channel_mlp`` replaces it.

Checked weight for weight against the official code (outputs and every weight's gradient, T* and T,
``benchmarks/vision_official_check.py``, results in ``docs/results.md``).

Following the official code (where it is more specific than the paper): ``C1`` is 2 when the block
width is a multiple of 80 and 4 otherwise (so ``G = C / (2·C1)``); the drop-path rate is the same in
every block (0.1); images must be square. Strip MLP layers hold ``W × W`` maps, so the network is built
for one image size, which must be divisible by ``8p``. Strip-MLP-T* (the smallest published ImageNet
model) is ``D = 80, layers = (2, 2, 6, 2), alpha = 3`` (here ``embed_dim``, ``depths``, ``mlp_ratio``).

Shapes: ``(B, C, H, W) -> (B, D, R, R) -> ... -> (B, 8D, R/8, R/8) -> (B, 8D) -> (B, num_classes)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, GlobalResponseNormMlp, Mlp, trunc_normal_
from torch import nn

from mlplab.errors import ConfigError
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import CONVENTIONAL, IMAGENET, FourStagePatchClassifier
from mlplab.nn import ChannelMLP


class RelativePosition(nn.Module):
    """Learned embeddings of the clipped offset ``w - h`` between a row index and a column index.

    Returns ``(1, units, size, size)``: entry ``[0, :, h, w]`` is the embedding of ``clip(w - h)``.

    Args:
        units: Embedding width (channels).
        size: Side of the square feature map.
    """

    def __init__(self, units: int, size: int):
        super().__init__()
        self.table = nn.Parameter(torch.empty(2 * size + 1, units))
        trunc_normal_(self.table, std=0.02)
        offsets = torch.arange(size)[None, :] - torch.arange(size)[:, None]
        self.register_buffer("index", offsets.clamp(-size, size) + size, persistent=False)

    def forward(self) -> torch.Tensor:
        return self.table[self.index].permute(2, 0, 1).unsqueeze(0)


class StripMixing(nn.Module):
    """The token mixer of a Strip-MLP block: CGSMM on half of the channels, LSMM on the other half.

    Shapes: ``(B, C, S, S) -> (B, C, S, S)``.

    Args:
        channels: Block width C (even, divisible by ``2·C1``).
        size: Side S of the square feature map.
    """

    def __init__(self, channels: int, size: int):
        super().__init__()
        half = channels // 2
        self.strips = 2 if channels % 80 == 0 else 4  # C1, the official rule
        if half % self.strips:
            raise ConfigError(
                f"StripMLP: a block width of {channels} cannot be cut into {self.strips} strip groups "
                f"of equal size; use a width divisible by {2 * self.strips}"
            )
        self.group = half // self.strips  # G channels per strip group
        self.local = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        )
        self.mix_in = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.GELU())
        # CGSMM: strip MLP layers over rows (proj_h) and columns (proj_w), G maps of S -> S tokens each
        self.proj_h = nn.Conv2d(
            size * self.group, size * self.group, (1, 3), padding=(0, 1), groups=self.group
        )
        self.proj_w = nn.Conv2d(
            size * self.group, size * self.group, (1, 3), padding=(0, 1), groups=self.group
        )
        self.fuse_h = nn.Conv2d(channels, half, 1, bias=False)
        self.fuse_w = nn.Conv2d(channels, half, 1, bias=False)
        self.norm_h = nn.BatchNorm2d(half)
        self.pos_h = RelativePosition(half, size)
        self.pos_w = RelativePosition(half, size)
        # LSMM: local strips 3x7 and 7x3, re-weighted per channel
        self.local_h = nn.Conv2d(half, half, (3, 7), padding=(1, 3), groups=half, bias=False)
        self.local_w = nn.Conv2d(half, half, (7, 3), padding=(3, 1), groups=half, bias=False)
        self.reweight = Mlp(half, half // 2, half * 3, use_conv=True)
        self.fuse = nn.Conv2d(channels, channels, 1, bias=False)

    def cascade_group_strip_mixing(self, x: torch.Tensor) -> torch.Tensor:
        """CGSMM on ``(B, C/2, S, S)``: row strip MLP, fuse, column strip MLP, fuse."""
        b, c, h, w = x.shape
        strips, group = self.strips, self.group
        rows = (x + self.pos_h()).view(b, strips, group, h, w)
        rows = rows.permute(0, 2, 4, 1, 3).reshape(b, group * w, strips, h)  # (B, G·W, C1, H)
        rows = self.proj_h(rows)  # every row's W tokens mixed, reading the rows h-1, h, h+1
        rows = rows.view(b, group, w, strips, h).permute(0, 3, 1, 4, 2).reshape(b, c, h, w)
        rows = F.gelu(self.norm_h(self.fuse_h(torch.cat([rows, x], dim=1)))) + self.pos_w()
        cols = rows.view(b, strips, group, h, w).permute(0, 2, 3, 1, 4).reshape(b, group * h, strips, w)
        cols = self.proj_w(cols)  # every column's H tokens mixed, reading the columns w-1, w, w+1
        cols = cols.view(b, group, h, strips, w).permute(0, 3, 1, 2, 4).reshape(b, c, h, w)
        return self.fuse_w(torch.cat([x, cols], dim=1))

    def local_strip_mixing(self, x: torch.Tensor) -> torch.Tensor:
        """LSMM on ``(B, C/2, S, S)``: ``3 × 7``, ``7 × 3`` and identity, softmax-weighted per channel."""
        along_w, along_h = self.local_h(x), self.local_w(x)
        pooled = F.adaptive_avg_pool2d(along_h + along_w + x, 1)
        weights = self.reweight(pooled).view(x.shape[0], x.shape[1], 3, 1, 1).softmax(dim=2)
        return along_h * weights[:, :, 0] + along_w * weights[:, :, 1] + x * weights[:, :, 2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix_in(self.local(x))
        first, second = x.chunk(2, dim=1)
        return self.fuse(
            torch.cat([self.cascade_group_strip_mixing(first), self.local_strip_mixing(second)], 1)
        )


class ChannelMixing(nn.Module):
    """Depthwise 7×7 convolution, LayerNorm, channel MLP (conventional: with GRN, the official one).

    Shapes: ``(B, C, S, S) -> (B, C, S, S)``.

    Args:
        channels: Block width C.
        mlp_ratio: Hidden width of the channel MLP as a multiple of C (the paper's alpha).
        channel_mlp: Conventional (official, with GRN) or hourglass.
    """

    def __init__(self, channels: int, mlp_ratio: float, channel_mlp: ChannelMLP = CONVENTIONAL):
        super().__init__()
        self.spatial = nn.Conv2d(channels, channels, 7, padding=3, groups=channels, bias=False)
        self.norm = nn.LayerNorm(channels)
        if channel_mlp.kind == "conventional":
            self.mlp = GlobalResponseNormMlp(channels, int(mlp_ratio * channels))
        else:
            self.mlp = channel_mlp.build(channels, int(mlp_ratio * channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.spatial(x).permute(0, 2, 3, 1))
        return self.mlp(x).permute(0, 3, 1, 2)


class StripBlock(nn.Module):
    """``x + DropPath(StripMixing(x))``, then ``x + DropPath(ChannelMixing(x))``.

    Args:
        channels: Block width C.
        size: Side S of the square feature map.
        mlp_ratio: Channel MLP ratio (alpha).
        drop_path: Stochastic depth rate.
        channel_mlp: Conventional or hourglass channel MLP.
    """

    def __init__(
        self,
        channels: int,
        size: int,
        mlp_ratio: float,
        drop_path: float,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        super().__init__()
        self.token_mixing = StripMixing(channels, size)
        self.channel_mixing = ChannelMixing(channels, mlp_ratio, channel_mlp)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.token_mixing(x))
        return x + self.drop_path(self.channel_mixing(x))


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant({"embed_dim": 16, "depths": (1, 1, 1, 1), "drop_path_rate": 0.0, "patch_size": 2}),
        "T*": Variant(
            {"patch_size": 4, "embed_dim": 80, "depths": (2, 2, 6, 2), "mlp_ratio": 3.0},
            params=18_243_920,
            shapes=IMAGENET,
            source="the official code's StripMLPNet (the paper's \"18M\", Table 2)",
        ),
        "T": Variant(
            {"patch_size": 4, "embed_dim": 80, "depths": (2, 2, 12, 2), "mlp_ratio": 3.0},
            params=25_000_000,
            precision=1_000_000,
            shapes=IMAGENET,
            source='the paper\'s "25M" (Table 2)',
        ),
    },
    blocks=BlockLayout(StripBlock, mixer=("token_mixing",), mlp=("channel_mixing",)),
    renamed={"layers": "depths", "alpha": "mlp_ratio"},
    source="own, weight for weight with the official code",
)
class StripMLP(FourStagePatchClassifier):
    """Strip-MLP image classifier (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` of square images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        embed_dim: Width D of the first stage (then 2D, 4D, 8D).
        mlp_ratio: Hidden width of the channel MLP as a multiple of the stage width (the paper's alpha).
        **kwargs: The arguments of :class:`~mlplab.models.vision.common.FourStagePatchClassifier`:
            ``patch_size``, ``depths`` (the official ``layers``), ``drop_path_rate`` (the same in every
            block, as the official code), ``channel_mlp`` (conventional: the official one, with GRN).
    """

    #: The official strip layers take square images only.
    square_only = True

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 80,
        mlp_ratio: float = 3.0,
        **kwargs: Any,
    ):
        super().__init__(input_shape, output_shape, embed_dim=embed_dim, mlp_ratio=mlp_ratio, **kwargs)
        channels, height, _ = self.input_shape
        size, dims = height // self.patch_size, self.dims
        self.patch_embed = nn.Conv2d(channels, dims[0], self.patch_size, self.patch_size, bias=False)
        self.stages = nn.ModuleList(
            nn.Sequential(
                *(
                    StripBlock(dims[i], size // 2**i, mlp_ratio, self.drop_path_rate, self.channel_mlp)
                    for _ in range(self.depths[i])
                )
            )
            for i in range(4)
        )
        self.merges = nn.ModuleList(nn.Conv2d(dims[i], dims[i + 1], 2, 2, bias=False) for i in range(3))
        # depthwise stride-2 shortcuts: stage-1 features to stages 3 and 4, stage-2 features to stage 4
        self.skip_1_to_3 = nn.Conv2d(dims[1], dims[2], 2, 2, groups=dims[1], bias=False)
        self.skip_1_to_4 = nn.Conv2d(dims[2], dims[3], 2, 2, groups=dims[2], bias=False)
        self.skip_2_to_4 = nn.Conv2d(dims[2], dims[3], 2, 2, groups=dims[2], bias=False)
        self.norm = nn.BatchNorm2d(dims[3])
        self.head = nn.Linear(dims[3], self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages[0](self.patch_embed(x))
        x = self.merges[0](x)
        from_1_at_3 = self.skip_1_to_3(x)
        from_1_at_4 = self.skip_1_to_4(from_1_at_3)
        x = self.merges[1](self.stages[1](x))
        from_2_at_4 = self.skip_2_to_4(x)
        x = self.merges[2](self.stages[2](x + from_1_at_3))
        x = self.stages[3](x + from_1_at_4 + from_2_at_4)
        return self.norm(x).mean(dim=(2, 3))
