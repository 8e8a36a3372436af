"""MAXIM: a multi-axis gated MLP UNet for image restoration (denoising, super-resolution, ...).

Paper: Zhengzhong Tu, Hossein Talebi, Han Zhang, Feng Yang, Peyman Milanfar, Alan Bovik, Yinxiao Li,
"MAXIM: Multi-Axis MLP for Image Processing", CVPR 2022. Official code (JAX/Flax):
github.com/google-research/maxim (``maxim/models/maxim.py``). This is a PyTorch re-implementation of
that file's ``MAXIM`` with the same layers and parameter counts; tensors are channels-last inside.

Building blocks, on ``x`` of shape ``(B, H, W, C)``:

* **Multi-axis gated MLP block** (MAB, ``ResidualSplitHeadMultiAxisGmlpLayer``):
  ``x + Dense(concat(GridGmlp(u), BlockGmlp(v)))`` where ``u, v`` are the two halves of
  ``GELU(Dense(LN(x)))``. The *block* gMLP cuts the map into non-overlapping ``b × b`` blocks and gates
  within each block (local mixing); the *grid* gMLP cuts it into a ``g × g`` grid of cells and gates
  across the cells, mixing the tokens at the same offset of every cell (global, dilated mixing). Each
  gMLP is ``x + Dense(u' ⊙ (Dense_spatial(LN(v')) + 1))`` with ``u', v'`` the halves of
  ``GELU(Dense(LN(x)))`` and ``Dense_spatial`` a linear layer over the ``b²`` (or ``g²``) positions.
* **Cross-gating block** (CGB): two streams ``x`` and ``y`` each produce multi-axis spatial gating
  weights (the block and grid linear maps of the MAB, without the gating product), and each stream is
  gated by the other's weights: ``y' = y + Dense(y ⊙ G(x))``, ``x' = x + y' + Dense(x ⊙ G(y))``.
* **RCAB** (encoder/decoder): ``x + CA(Conv3(LeakyReLU(Conv3(LN(x)))))`` with squeeze-excitation
  channel attention ``CA``; **RDCAB** (bottleneck): ``x + CA(ChannelMLP(LN(x)))``, the channel MLP
  being ``Dense(C), GELU, Dense(C)`` (the family's ``channel_mlp``: conventional, hourglass or moe; the
  experts and router of a mixture of experts start as the official Dense layers, normal with std 0.02
  and zero biases).

Network (one stage): 3×3 input convolution; ``depth`` encoder levels (concatenate the multi-scale input,
1×1 convolution, ``num_groups`` × (MAB, RCAB) with a long skip, then a 4×4 stride-2 convolution); the
bottleneck (``num_bottleneck_blocks`` × (1×1 convolution, ``num_groups`` × (MAB, RDCAB), long skip));
cross-gating blocks that fuse the encoder features of every scale (resized, 1×1 convolutions) with the
global feature, from the coarsest level up; ``depth`` decoder levels (2×2 transposed convolution, then
an encoder-like block on the concatenation with the fused skips of every scale); a 3×3 output
convolution added to the input image. Later stages (``num_stages > 1``) take supervised-attention
features (SAM) from the previous stage through a CGB and cross-gate their encoders with the previous
stage's encoder and decoder features.

Checked weight for weight against the official Flax code run on the CPU with JAX (outputs of every
stage and scale and every weight's gradient: the whole S-1 and S-2 at 64×64, three S-1 block stacks,
and 2- and 3-stage models with 3 supervision scales at the smallest size holding every block type,
``benchmarks/vision_official_check.py --maxim``, results in ``docs/results.md``).

Following the official code: the low-resolution levels and the bottleneck use ``block_size_lr`` for the
grid too (the code passes it where ``grid_size_lr`` reads more naturally); the first encoder block takes
its input concatenated with itself; GELU is the tanh approximation (Flax's default); LayerNorm eps 1e-6;
the spatial gating weights' biases start at 1. The paper trains with multi-stage, multi-scale
supervision; mlplab's restoration task supervises the final output (last stage, full scale) only.

Restoration contract: ``MAXIM(input_shape, output_shape)`` maps ``(B, C, h, w)`` to ``(B, C, H, W)``. When
the output is larger (super-resolution ×s) the input is first upsampled bicubically by ``s``. The output
is the image predicted by the network (input plus a residual); in evaluation mode it is clamped to [0, 1]
(the official evaluation clips it too), in training mode it is left unclamped so gradients flow. With
``num_supervision_scales > 1`` the last stage's coarser output convolutions only feed the paper's
multi-scale loss (``forward_all``), so under the task's single-output loss they stay unused.

Sizes: at level ``i`` the map is ``H/2^i``; it must be divisible by the block size and by the grid size
of that level (``*_hr`` for the first ``high_res_stages`` levels, ``block_size_lr`` below them and at the
bottleneck, ``H/2^depth``). The spatial gating layers hold ``b² × b²`` and ``g² × g²`` maps, so the
parameter count does not depend on the image size. Official variants: ``S-1/2/3`` (``features=32``, here
``embed_dim``) and ``M-1/2/3`` (``features=64``) with ``depth=3, num_groups=2, num_bottleneck_blocks=2``
and 1/2/3 stages;
MAXIM-2S and -3S of the paper use 3 supervision scales.

Shapes: ``(B, C, h, w) -> (B, H, W, C) -> UNet stages -> (B, C, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.vision.common import CONVENTIONAL, check_batch, image_shape, size_text
from mlplab.nn import ChannelMLP
from mlplab.nn.moe import MixtureOfExperts

GELU = "gelu_tanh"  # Flax's nn.gelu is the tanh approximation


def dense(in_features: int, out_features: int, bias_init: float = 0.0) -> nn.Linear:
    """A linear layer initialised as the official code's Dense layers (normal, std 0.02)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.normal_(layer.weight, std=0.02)
    nn.init.constant_(layer.bias, bias_init)
    return layer


def layer_norm(channels: int) -> nn.LayerNorm:
    """Flax's LayerNorm (eps 1e-6)."""
    return nn.LayerNorm(channels, eps=1e-6)


class Conv(nn.Conv2d):
    """A 'SAME'-padded convolution on channels-last tensors ``(B, H, W, C)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        padding = (kernel_size - stride + 1) // 2 if stride > 1 else kernel_size // 2
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class UpConv(nn.ConvTranspose2d):
    """2×2 stride-2 transposed convolution on channels-last tensors: ``(B, H, W, C) -> (B, 2H, 2W, C')``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def block_images(x: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """``(B, gh·fh, gw·fw, C) -> (B, gh·gw, fh·fw, C)``: cut the map into ``fh × fw`` patches."""
    b, h, w, c = x.shape
    fh, fw = patch
    x = x.view(b, h // fh, fh, w // fw, fw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // fh) * (w // fw), fh * fw, c)


def unblock_images(x: torch.Tensor, grid: tuple[int, int], patch: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`block_images`."""
    b, _, _, c = x.shape
    (gh, gw), (fh, fw) = grid, patch
    return x.view(b, gh, gw, fh, fw, c).permute(0, 1, 3, 2, 4, 5).reshape(b, gh * fh, gw * fw, c)


class SpatialDense(nn.Module):
    """A linear layer over axis ``axis`` (-3: the grid cells, -2: the positions in a block).

    Shapes: ``(B, G, P, C) -> (B, G, P, C)``.
    """

    def __init__(self, size: int, axis: int, bias_init: float = 0.0):
        super().__init__()
        self.axis = axis
        self.linear = dense(size, size, bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.transpose(-1, self.axis)).transpose(-1, self.axis)


class GatedMlpLayer(nn.Module):
    """Grid (global) or block (local) gMLP: ``x + Dense(u ⊙ (SpatialDense(LN(v)) + 1))`` on blocked maps.

    Shapes: ``(B, H, W, C) -> (B, H, W, C)``.

    Args:
        channels: Channels C.
        size: ``(gh, gw)`` grid cells for ``mode="grid"``, ``(fh, fw)`` block size for ``mode="block"``.
        mode: ``grid`` mixes across the cells of a grid, ``block`` within each block.
        factor: Expansion of the input projection.
        dropout: Dropout after the output projection.
    """

    def __init__(
        self, channels: int, size: tuple[int, int], mode: str, factor: int = 2, dropout: float = 0.0
    ):
        super().__init__()
        self.size, self.mode = tuple(size), mode
        hidden = channels * factor
        self.norm = layer_norm(channels)
        self.in_project = dense(channels, hidden)
        self.gate_norm = layer_norm(hidden // 2)
        axis = -3 if mode == "grid" else -2
        self.gate = SpatialDense(self.size[0] * self.size[1], axis)
        self.out_project = dense(hidden // 2, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        if self.mode == "grid":
            grid, patch = self.size, (h // self.size[0], w // self.size[1])
        else:
            grid, patch = (h // self.size[0], w // self.size[1]), self.size
        x = block_images(x, patch)
        u, v = F.gelu(self.in_project(self.norm(x)), approximate="tanh").chunk(2, dim=-1)
        y = self.dropout(self.out_project(u * (self.gate(self.gate_norm(v)) + 1.0)))
        return unblock_images(x + y, grid, patch)


class MultiAxisGatedMlpBlock(nn.Module):
    """MAB: ``x + Dense(concat(GridGmlp(u), BlockGmlp(v)))``, ``u, v`` halves of ``GELU(Dense(LN(x)))``.

    Shapes: ``(B, H, W, C) -> (B, H, W, C)``.
    """

    def __init__(
        self,
        channels: int,
        block_size: tuple[int, int],
        grid_size: tuple[int, int],
        block_gmlp_factor: int = 2,
        grid_gmlp_factor: int = 2,
        input_proj_factor: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        hidden = channels * input_proj_factor
        self.norm = layer_norm(channels)
        self.in_project = dense(channels, hidden)
        self.grid_gmlp = GatedMlpLayer(hidden // 2, grid_size, "grid", grid_gmlp_factor, dropout)
        self.block_gmlp = GatedMlpLayer(hidden // 2, block_size, "block", block_gmlp_factor, dropout)
        self.out_project = dense(hidden, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = F.gelu(self.in_project(self.norm(x)), approximate="tanh").chunk(2, dim=-1)
        y = torch.cat([self.grid_gmlp(u), self.block_gmlp(v)], dim=-1)
        return x + self.dropout(self.out_project(y))


class ChannelAttention(nn.Module):
    """Squeeze-excitation: ``x ⊙ sigmoid(Conv1(ReLU(Conv1(mean_{H,W} x))))``. Shapes: ``(B, H, W, C)``."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.squeeze = nn.Linear(channels, channels // reduction)  # a 1×1 convolution on a 1×1 map
        self.excite = nn.Linear(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(1, 2), keepdim=True)
        return x * torch.sigmoid(self.excite(F.relu(self.squeeze(y))))


class RCAB(nn.Module):
    """Residual channel attention block: ``x + CA(Conv3(LeakyReLU(Conv3(LN(x)))))``."""

    def __init__(self, channels: int, reduction: int = 4, lrelu_slope: float = 0.2):
        super().__init__()
        self.norm = layer_norm(channels)
        self.conv1 = Conv(channels, channels, 3)
        self.conv2 = Conv(channels, channels, 3)
        self.slope = lrelu_slope
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(self.norm(x)), self.slope))
        return x + self.attention(y)


class RDCAB(nn.Module):
    """Residual dense channel attention block: ``x + CA(ChannelMLP(LN(x)))`` (the bottleneck's)."""

    def __init__(
        self, channels: int, reduction: int = 4, dropout: float = 0.0, channel_mlp: ChannelMLP = CONVENTIONAL
    ):
        super().__init__()
        self.norm = layer_norm(channels)
        if channel_mlp.kind == "conventional":
            self.mlp = Mlp(channels, channels, act_layer=nn.GELU, drop=dropout)
            self.mlp.act = nn.GELU(approximate="tanh")
            for layer in (self.mlp.fc1, self.mlp.fc2):
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        else:
            self.mlp = channel_mlp.build(channels, channels, activation=GELU, drop=dropout)
            for layer in self.mlp.modules():  # every kind's linear layers (and a router) are Dense layers
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=0.02)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)
            if isinstance(self.mlp, MixtureOfExperts):  # and the experts
                self.mlp.init_experts(nn.init.normal_, 0.02)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.mlp(self.norm(x)))


class BottleneckBlock(nn.Module):
    """1×1 convolution, then ``num_groups`` × (MAB, RDCAB) with a long skip."""

    def __init__(self, in_channels: int, channels: int, size: tuple[int, int], settings: dict):
        super().__init__()
        self.input_proj = Conv(in_channels, channels, 1)
        self.layers = nn.Sequential()
        for _ in range(settings["num_groups"]):
            self.layers.append(
                MultiAxisGatedMlpBlock(channels, size, size, *settings["factors"], settings["dropout"])
            )
            self.layers.append(
                RDCAB(channels, settings["channels_reduction"], settings["dropout"], settings["channel_mlp"])
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(x)
        return x + self.layers(x)


class SpatialGatingWeights(nn.Module):
    """The multi-axis gating weights of a cross-gating block (MAB's spatial maps, biases start at 1).

    Shapes: ``(B, H, W, C) -> (B, H, W, C)``.
    """

    def __init__(
        self, channels: int, block_size: tuple[int, int], grid_size: tuple[int, int], dropout: float
    ):
        super().__init__()
        self.block_size, self.grid_size = tuple(block_size), tuple(grid_size)
        self.norm = layer_norm(channels)
        self.in_project = nn.Linear(channels, 2 * channels)
        self.grid_dense = SpatialDense(self.grid_size[0] * self.grid_size[1], -3, bias_init=1.0)
        self.block_dense = SpatialDense(self.block_size[0] * self.block_size[1], -2, bias_init=1.0)
        self.out_project = nn.Linear(2 * channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        u, v = F.gelu(self.in_project(self.norm(x)), approximate="tanh").chunk(2, dim=-1)
        grid, patch = self.grid_size, (h // self.grid_size[0], w // self.grid_size[1])
        u = unblock_images(self.grid_dense(block_images(u, patch)), grid, patch)
        grid, patch = (h // self.block_size[0], w // self.block_size[1]), self.block_size
        v = unblock_images(self.block_dense(block_images(v, patch)), grid, patch)
        return self.dropout(self.out_project(torch.cat([u, v], dim=-1)))


class CrossGatingBlock(nn.Module):
    """CGB: each of two streams is gated by the multi-axis spatial weights computed from the other.

    ``forward(x, y)`` returns ``(x', y')``, both ``(B, H, W, channels)``; with ``upsample_y`` the
    gating stream ``y`` comes at half the resolution and is upsampled first.
    """

    def __init__(
        self,
        x_channels: int,
        y_channels: int,
        channels: int,
        block_size: tuple[int, int],
        grid_size: tuple[int, int],
        upsample_y: bool,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.upsample = UpConv(y_channels, channels) if upsample_y else None
        self.x_proj = Conv(x_channels, channels, 1)
        self.y_proj = Conv(channels if upsample_y else y_channels, channels, 1)
        self.x_norm, self.y_norm = layer_norm(channels), layer_norm(channels)
        self.x_in, self.y_in = nn.Linear(channels, channels), nn.Linear(channels, channels)
        self.x_gate = SpatialGatingWeights(channels, block_size, grid_size, dropout)
        self.y_gate = SpatialGatingWeights(channels, block_size, grid_size, dropout)
        self.x_out, self.y_out = nn.Linear(channels, channels), nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.upsample is not None:
            y = self.upsample(y)
        x, y = self.x_proj(x), self.y_proj(y)
        shortcut_x, shortcut_y = x, y
        x = F.gelu(self.x_in(self.x_norm(x)), approximate="tanh")
        y = F.gelu(self.y_in(self.y_norm(y)), approximate="tanh")
        gate_x, gate_y = self.x_gate(x), self.y_gate(y)
        y = self.dropout(self.y_out(y * gate_x)) + shortcut_y
        x = self.dropout(self.x_out(x * gate_y)) + y + shortcut_x
        return x, y


class EncoderBlock(nn.Module):
    """UNet encoder (or decoder body) block: 1×1 convolution, (MAB, RCAB) × groups, long skip.

    Optionally cross-gated by the previous stage's features and followed by a 4×4 stride-2 convolution.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        block_size: tuple[int, int],
        grid_size: tuple[int, int],
        settings: dict,
        downsample: bool,
        cross_gating: bool = False,
    ):
        super().__init__()
        self.input_proj = Conv(in_channels, channels, 1)
        self.layers = nn.Sequential()
        for _ in range(settings["num_groups"]):
            if settings["use_global_mlp"]:
                self.layers.append(
                    MultiAxisGatedMlpBlock(
                        channels, block_size, grid_size, *settings["factors"], settings["dropout"]
                    )
                )
            self.layers.append(RCAB(channels, settings["channels_reduction"]))
        self.cross_gating = (
            CrossGatingBlock(channels, channels, channels, block_size, grid_size, False, settings["dropout"])
            if cross_gating
            else None
        )
        self.down = Conv(channels, channels, 4, stride=2) if downsample else None

    def forward(
        self,
        x: torch.Tensor,
        skip: torch.Tensor | None = None,
        enc: torch.Tensor | None = None,
        dec: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if skip is not None:
            x = torch.cat([x, skip], dim=-1)
        x = self.input_proj(x)
        x = x + self.layers(x)
        if self.cross_gating is not None:
            x, _ = self.cross_gating(x, enc + dec)
        return (self.down(x) if self.down is not None else x), x


class Resize(nn.Module):
    """``UpSampleRatio``: resize by ``ratio`` (bilinear, antialiased when shrinking), 1×1 convolution."""

    def __init__(self, in_channels: int, channels: int, ratio: float):
        super().__init__()
        self.ratio = ratio
        self.proj = Conv(in_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ratio != 1:
            _, h, w, _ = x.shape
            size = (int(h * self.ratio), int(w * self.ratio))
            x = F.interpolate(
                x.permute(0, 3, 1, 2),
                size=size,
                mode="bilinear",
                align_corners=False,
                antialias=self.ratio < 1,
            ).permute(0, 2, 3, 1)
        return self.proj(x)


class SupervisedAttention(nn.Module):
    """SAM (MPRNet): image ``Conv3(x) + input``, features ``x + Conv3(x) ⊙ σ(Conv3(image))``."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.features = Conv(channels, channels, 3)
        self.to_image = Conv(channels, out_channels, 3)
        self.attention = Conv(out_channels, channels, 3)
        self.add_input = out_channels == 3

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored = self.to_image(x) + image if self.add_input else self.to_image(x)
        return x + self.features(x) * torch.sigmoid(self.attention(restored)), restored


class MaximStage(nn.Module):
    """One UNet stage of MAXIM (see the module docstring); ``first`` stages take no previous features."""

    def __init__(self, in_channels: int, settings: dict, first: bool, last: bool):
        super().__init__()
        depth, features, scales = settings["depth"], settings["features"], settings["num_supervision_scales"]
        sizes = settings["sizes"]  # (block, grid) of every level
        width = [features * 2**i for i in range(depth)]
        dropout = settings["dropout"]
        self.first, self.last, self.depth, self.scales = first, last, depth, scales
        self.input_convs = nn.ModuleList(Conv(in_channels, width[i], 3) for i in range(scales))
        self.sam_fusion = (
            None
            if first
            else nn.ModuleList(
                CrossGatingBlock(width[i], width[i], width[i], *sizes[i], False, dropout)
                for i in range(scales)
            )
        )
        encoders, previous = [], width[0]
        for i in range(depth):
            skip = width[i] if i < scales else 0
            encoders.append(
                EncoderBlock(
                    previous + skip, width[i], *sizes[i], settings, downsample=True, cross_gating=not first
                )
            )
            previous = width[i]
        self.encoders = nn.ModuleList(encoders)
        bottleneck = width[-1]
        self.bottleneck = nn.Sequential(
            *(
                BottleneckBlock(bottleneck, bottleneck, settings["block_size_lr"], settings)
                for _ in range(settings["num_bottleneck_blocks"])
            )
        )
        self.skip_resizes = nn.ModuleList(
            nn.ModuleList(Resize(width[j], width[i], 2.0 ** (j - i)) for j in range(depth))
            for i in range(depth)
        )
        self.skip_gating = nn.ModuleList(
            CrossGatingBlock(
                depth * width[i],
                width[i + 1] if i + 1 < depth else bottleneck,
                width[i],
                *sizes[i],
                True,
                dropout,
            )
            for i in range(depth)
        )
        self.decoder_resizes = nn.ModuleList(
            nn.ModuleList(
                Resize(width[depth - 1 - j], width[i], 2.0 ** (depth - 1 - j - i)) for j in range(depth)
            )
            for i in range(depth)
        )
        self.decoder_ups = nn.ModuleList(
            UpConv(width[i + 1] if i + 1 < depth else bottleneck, width[i]) for i in range(depth)
        )
        self.decoders = nn.ModuleList(
            EncoderBlock((1 + depth) * width[i], width[i], *sizes[i], settings, downsample=False)
            for i in range(depth)
        )
        out_channels = settings["out_channels"]
        if last:
            self.outputs = nn.ModuleList(Conv(width[i], out_channels, 3) for i in range(scales))
        else:
            self.outputs = nn.ModuleList(SupervisedAttention(width[i], out_channels) for i in range(scales))

    def forward(
        self, shortcuts: list[torch.Tensor], previous: dict | None
    ) -> tuple[list[torch.Tensor], dict[str, list[torch.Tensor]]]:
        x_scales = []
        for i in range(self.scales):
            x_scale = self.input_convs[i](shortcuts[i])
            if previous is not None:
                x_scale, _ = self.sam_fusion[i](x_scale, previous["sam"][i])
            x_scales.append(x_scale)
        encs, x = [], x_scales[0]
        for i, encoder in enumerate(self.encoders):
            skip = x_scales[i] if i < self.scales else None
            enc, dec = (previous["encs"][i], previous["decs"][i]) if previous is not None else (None, None)
            x, bridge = encoder(x, skip=skip, enc=enc, dec=dec)
            encs.append(bridge)
        x = global_feature = self.bottleneck(x)
        skip_features = [None] * self.depth
        for i in reversed(range(self.depth)):
            signal = torch.cat([resize(enc) for resize, enc in zip(self.skip_resizes[i], encs)], dim=-1)
            skip_features[i], global_feature = self.skip_gating[i](signal, global_feature)
        by_coarseness = skip_features[::-1]  # the official order: coarsest first
        outputs, decs, sams = [None] * self.scales, [None] * self.depth, [None] * self.scales
        for i in reversed(range(self.depth)):
            signal = torch.cat(
                [resize(s) for resize, s in zip(self.decoder_resizes[i], by_coarseness)], dim=-1
            )
            x, _ = self.decoders[i](self.decoder_ups[i](x), skip=signal)
            decs[i] = x
            if i < self.scales:
                if self.last:
                    outputs[i] = self.outputs[i](x) + shortcuts[i]
                else:
                    sams[i], outputs[i] = self.outputs[i](x, shortcuts[i])
        return outputs, {"encs": encs, "decs": decs, "sam": sams}


MAXIM_SIZE = ((3, 256, 256), (3, 256, 256))
MAXIM_CODE = "the official code's own count (google-research/maxim, maxim/models/maxim.py, Model())"


def _maxim(features: int, stages: int, params: int, scales: int = 1, precision: int = 1) -> Variant:
    """An official variant (``depth=3, num_groups=2, num_bottleneck_blocks=2``) and its count."""
    args = {"embed_dim": features, "depth": 3, "num_stages": stages, "num_groups": 2,
            "num_bottleneck_blocks": 2, "num_supervision_scales": scales, "block_size_hr": (16, 16),
            "grid_size_hr": (16, 16), "block_size_lr": (8, 8)}  # fmt: skip
    source = MAXIM_CODE if scales == 1 else f"MAXIM-{stages}S in the paper's Table 1 and the official README"
    return Variant(args, params, precision, MAXIM_SIZE, source=source)


@register_family(
    domains=("image_restoration",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant(
            {
                "embed_dim": 8,
                "depth": 2,
                "num_stages": 2,
                "num_groups": 1,
                "num_bottleneck_blocks": 1,
                "num_supervision_scales": 1,
                "block_size_hr": (4, 4),
                "grid_size_hr": (4, 4),
                "block_size_lr": (2, 2),
                "channels_reduction": 1,
            }
        ),
        "S-1": _maxim(32, 1, 6_108_515),
        "S-2": _maxim(32, 2, 13_353_830),
        "S-3": _maxim(32, 3, 20_599_145),
        "M-1": _maxim(64, 1, 19_361_219),
        # the paper's 14.1M and 22.2M (3 supervision scales) are 0.5% and 0.06% below these layers'
        # 14,176,178 and 22,212,795, whose S/M counts above match the official code exactly
        "2S": _maxim(32, 2, 14_100_000, scales=3, precision=200_000),
        "3S": _maxim(32, 3, 22_200_000, scales=3, precision=200_000),
    },
    renamed={"features": "embed_dim"},
    source="own, weight for weight with the official JAX code",
)
class MAXIM(nn.Module):
    """MAXIM restoration backbone (see the module docstring); the default is the official ``S-2``.

    Args:
        input_shape: ``(C, h, w)`` of the degraded images; filled in by the task.
        output_shape: ``(C, H, W)`` of the restored images; ``H/h = W/w`` must be an integer ≥ 1.
        embed_dim: Width of the first level (then 2×, 4×, ...; the official ``features``).
        depth: Number of encoder/decoder levels.
        num_stages: Number of UNet stages.
        num_groups: (MAB, RCAB) pairs per encoder/decoder block and (MAB, RDCAB) pairs per bottleneck block.
        num_bottleneck_blocks: Bottleneck blocks.
        num_supervision_scales: Scales of the multi-scale input/output (the paper's models use 3).
        high_res_stages: Number of leading levels that use the ``*_hr`` block and grid sizes.
        block_size_hr: Block size of the high-resolution levels.
        grid_size_hr: Grid size of the high-resolution levels.
        block_size_lr: Block and grid size of the low-resolution levels and of the bottleneck.
        block_gmlp_factor: Expansion of the block gMLPs.
        grid_gmlp_factor: Expansion of the grid gMLPs.
        input_proj_factor: Expansion of the MAB input projections.
        channels_reduction: Reduction of the channel-attention layers.
        use_global_mlp: Use the multi-axis gated MLP blocks in the encoder and decoder.
        dropout: Dropout after the MLP projections.
        channel_mlp: The channel MLP of the bottleneck's RDCABs: conventional, hourglass or moe.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        embed_dim: int = 32,
        depth: int = 3,
        num_stages: int = 2,
        num_groups: int = 2,
        num_bottleneck_blocks: int = 2,
        num_supervision_scales: int = 1,
        high_res_stages: int = 2,
        block_size_hr: tuple[int, int] = (16, 16),
        grid_size_hr: tuple[int, int] = (16, 16),
        block_size_lr: tuple[int, int] = (8, 8),
        block_gmlp_factor: int = 2,
        grid_gmlp_factor: int = 2,
        input_proj_factor: int = 2,
        channels_reduction: int = 4,
        use_global_mlp: bool = True,
        dropout: float = 0.0,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        super().__init__()
        name = "MAXIM"
        require_positive(name, embed_dim=embed_dim, depth=depth, num_stages=num_stages, num_groups=num_groups)
        require_positive(name, num_supervision_scales=num_supervision_scales)
        channels, height, width = image_shape(name, input_shape)
        out_channels, out_height, out_width = image_shape(name, output_shape)
        if (
            out_channels != channels
            or out_height % height
            or out_width % width
            or out_height // height != (out_width // width)
        ):
            raise ConfigError(
                f"{name} restores images: the output {tuple(output_shape)} must have the input's channels "
                f"and an integer multiple of its size {tuple(input_shape)}"
            )
        if num_supervision_scales > depth:
            raise ConfigError(
                f"{name}: num_supervision_scales ({num_supervision_scales}) must not exceed depth ({depth})"
            )
        self.input_shape = (channels, height, width)
        self.output_shape = (out_channels, out_height, out_width)
        self.scale = out_height // height
        sizes = [
            (tuple(block_size_hr), tuple(grid_size_hr))
            if i < high_res_stages
            else (tuple(block_size_lr),) * 2
            for i in range(depth)
        ]
        levels = [*(sizes[i] for i in range(depth)), (tuple(block_size_lr),) * 2]
        for level, (block, grid) in enumerate(levels):
            side_h, side_w = out_height // 2**level, out_width // 2**level
            for what, size in (("block", block), ("grid", grid)):
                if side_h % size[0] or side_w % size[1]:
                    where = "the bottleneck" if level == depth else f"level {level}"
                    raise ConfigError(
                        f"{name}: at {where} the feature map is {size_text(side_h, side_w)}, not divisible "
                        f"by the {what} size {size_text(*size)}; use images divisible by "
                        f"{2**level * max(size)} or smaller block/grid sizes"
                    )
        settings = {
            "depth": depth,
            "features": embed_dim,
            "num_supervision_scales": num_supervision_scales,
            "sizes": sizes,
            "block_size_lr": tuple(block_size_lr),
            "num_groups": num_groups,
            "num_bottleneck_blocks": num_bottleneck_blocks,
            "factors": (block_gmlp_factor, grid_gmlp_factor, input_proj_factor),
            "channels_reduction": channels_reduction,
            "use_global_mlp": use_global_mlp,
            "dropout": dropout,
            "channel_mlp": channel_mlp,
            "out_channels": channels,
        }
        self.stages = nn.ModuleList(
            MaximStage(channels, settings, first=s == 0, last=s == num_stages - 1) for s in range(num_stages)
        )
        self.num_supervision_scales = num_supervision_scales

    def forward_all(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Every stage's restored images at every supervision scale, ``(B, H/2^i, W/2^i, C)``."""
        shortcuts = [x]
        for i in range(1, self.num_supervision_scales):
            size = (x.shape[1] // 2**i, x.shape[2] // 2**i)
            smaller = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="nearest-exact")
            shortcuts.append(smaller.permute(0, 2, 3, 1))
        outputs, previous = [], None
        for stage in self.stages:
            stage_outputs, previous = stage(shortcuts, previous)
            outputs.append(stage_outputs)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch("MAXIM", x, self.input_shape)
        if self.scale > 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        restored = self.forward_all(x.permute(0, 2, 3, 1))[-1][0].permute(0, 3, 1, 2)
        return restored if self.training else restored.clamp(0.0, 1.0)
