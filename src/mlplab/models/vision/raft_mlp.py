"""RaftMLP: token mixing split into a vertical and a horizontal MLP over "rafts" of channels.

Paper: Yuki Tatsunami, Masato Taki, "RaftMLP: How Much Can Be Done Without Attention and with Less
Spatial Locality?", ACCV 2022 (arXiv 2108.04384). Official code: github.com/okojoalg/raft-mlp
(``libs/modules.py``: ``SerialPermutedLevel``, ``PermutedBlock``, ``CrossScaleMLPEmbedding``;
``libs/models.py``: ``RaftMLP``; ``configs/settings/imagenet-raft-mlp-cross-mlp-emb-{s,m,l}.yaml``).

Network: ``len(dims)`` levels. Each level embeds its input with a multi-kernel ("cross-scale") patch
embedding: unfolds of kernels ``k`` in ``embedding_kernels[i]`` at the stride ``patch_sizes[i]`` (and
padding ``(k - stride) / 2``), concatenated and projected linearly to ``dims[i]`` channels (computed here
as a sum of strided convolutions, the same map with the same parameters). Then ``depths[i]`` raft
blocks on the ``h × w`` token grid. The head is LayerNorm, mean over the tokens, linear classifier.

Raft block, on ``x`` of shape ``(B, h, w, C)`` with the channels cut into ``r`` rafts of ``C/r``
channels (channel ``a·C/r + o`` is member ``a`` of raft ``o``):

* Vertical mixing: ``x + DropPath(MLP_v(LN(x)))`` where ``MLP_v`` acts, for every column ``j`` and raft
  ``o``, on the ``r·h`` values ``x[:, j, a·C/r + o]`` (all rows, all raft members):
  ``r·h -> e·r·h -> r·h`` with GELU (``e``: token expansion).
* Horizontal mixing: the same along the rows, ``MLP_h: r·w -> e·r·w -> r·w``.
* Channel mixing: ``x + DropPath(ChannelMLP(LN(x)))``, ``C -> 4C -> C`` (conventional or hourglass).

Checked weight for weight against the official code (outputs and every weight's gradient, S,
``benchmarks/vision_official_check.py``, results in ``docs/results.md``). The official token-mixing
LayerNorms see the channels rearranged to the order ``(o, a)`` (its ``PermutedBlock``), so their
affine weights are stored in that order; here they are in channel order ``a·C/r + o`` (the same
function: an official checkpoint loads after permuting those two vectors of every token mixer).

Every LayerNorm normalises over the C channels at each position. Following the official code: the same
drop-path rate in every block, PyTorch's default initialisation, and the variant the published models use
(serial vertical-then-horizontal mixing, cross-scale embedding, no multi-level shortcut). The official
code resizes feature maps bicubically for other image sizes; here the network is built for one size,
divisible by the product of the patch sizes.

RaftMLP-S (the smallest published ImageNet model): ``dims = (64, 128, 256, 512)``, ``depths = (2, 2, 6,
2)``, ``patch_sizes = (4, 2, 2, 2)``, ``raft_size = 2``, ``embedding_kernels = ((4, 8), (2, 4), (2, 4),
(2,))``, token expansion 2, channel expansion 4.

Shapes: ``(B, C, H, W) -> (B, h_i, w_i, dims[i]) per level -> (B, dims[-1]) -> (B, num_classes)``.
"""

from __future__ import annotations

import math

import torch
from timm.layers import DropPath, Mlp
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import CONVENTIONAL, IMAGENET, PatchClassifier
from mlplab.nn import ChannelMLP


class CrossScaleEmbedding(nn.Module):
    """Patches of several sizes around the same centres, projected to ``out_channels`` together.

    ``Linear(concat_k unfold_k(x))`` written as ``Σ_k Conv_k(x)`` (kernel ``k``, stride ``s``, padding
    ``(k - s) / 2``; only the first has a bias), which holds the same parameters.

    Shapes: ``(B, C_in, H, W) -> (B, H/s, W/s, out_channels)``.

    Args:
        in_channels: Input channels.
        out_channels: Embedding width.
        stride: Patch stride s (the first kernel must equal it, as in the official code).
        kernels: Patch sizes, multiples of ``s`` with ``k - s`` even.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernels: tuple[int, ...]):
        super().__init__()
        if not kernels or kernels[0] != stride or any(k % stride or (k - stride) % 2 for k in kernels):
            raise ConfigError(
                f"RaftMLP: embedding kernels {tuple(kernels)} must start with the patch size {stride} and be "
                "multiples of it, each k with k - patch size even"
            )
        self.projections = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, k, stride, padding=(k - stride) // 2, bias=i == 0)
            for i, k in enumerate(kernels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(projection(x) for projection in self.projections).permute(0, 2, 3, 1)


class RaftBlock(nn.Module):
    """Vertical raft mixing, horizontal raft mixing, channel mixing; each pre-LN and residual.

    Shapes: ``(B, h, w, C) -> (B, h, w, C)``.

    Args:
        dim: Channels C (divisible by ``raft_size``).
        height: Rows h of the token grid.
        width: Columns w of the token grid.
        raft_size: Channels per raft r.
        token_mlp_ratio: Hidden width of the token MLPs as a multiple of their input.
        mlp_ratio: Hidden width of the conventional channel MLP as a multiple of C.
        dropout: Dropout inside the MLPs.
        drop_path: Stochastic depth rate of each of the three branches.
        channel_mlp: Conventional or hourglass channel MLP.
    """

    def __init__(
        self,
        dim: int,
        height: int,
        width: int,
        raft_size: int,
        token_mlp_ratio: float = 2.0,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        super().__init__()
        self.raft_size = raft_size
        self.norm_vertical = nn.LayerNorm(dim)
        self.mix_vertical = Mlp(raft_size * height, int(token_mlp_ratio * raft_size * height), drop=dropout)
        self.norm_horizontal = nn.LayerNorm(dim)
        self.mix_horizontal = Mlp(raft_size * width, int(token_mlp_ratio * raft_size * width), drop=dropout)
        self.norm_channels = nn.LayerNorm(dim)
        self.mix_channels = channel_mlp.build(dim, int(mlp_ratio * dim), drop=dropout)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def mix_rafts(self, x: torch.Tensor, mlp: nn.Module) -> torch.Tensor:
        """``mlp`` over the ``r·h`` values of every (column, raft) of a ``(B, h, w, C)`` grid."""
        b, h, w, c = x.shape
        r = self.raft_size
        y = x.unflatten(-1, (r, c // r)).permute(0, 4, 2, 3, 1).reshape(b, c // r, w, r * h)
        y = mlp(y).view(b, c // r, w, r, h)
        return y.permute(0, 4, 2, 3, 1).reshape(b, h, w, c)

    def vertical(self, x: torch.Tensor) -> torch.Tensor:
        """``MLP_v`` over the ``r·h`` values of every (column, raft)."""
        return self.mix_rafts(x, self.mix_vertical)

    def horizontal(self, x: torch.Tensor) -> torch.Tensor:
        """``MLP_h`` over the ``r·w`` values of every (row, raft): the columns of the transposed grid."""
        return self.mix_rafts(x.transpose(1, 2), self.mix_horizontal).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.vertical(self.norm_vertical(x)))
        x = x + self.drop_path(self.horizontal(self.norm_horizontal(x)))
        return x + self.drop_path(self.mix_channels(self.norm_channels(x)))


class RaftLevel(nn.Module):
    """Cross-scale embedding, then raft blocks on the token grid.

    Shapes: ``(B, C_in, H, W) -> (B, H/s, W/s, dim)``.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        depth: int,
        grid: tuple[int, int],
        patch_size: int,
        kernels: tuple[int, ...],
        block_args: dict,
    ):
        super().__init__()
        self.embed = CrossScaleEmbedding(in_channels, dim, patch_size, kernels)
        self.blocks = nn.Sequential(*(RaftBlock(dim, *grid, **block_args) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.embed(x))


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant(
            {
                "dims": (8, 16),
                "depths": (1, 1),
                "patch_sizes": (4, 2),
                "embedding_kernels": ((4, 8), (2, 4)),
                "drop_path_rate": 0.0,
            }
        ),
        "S": Variant(
            {
                "dims": (64, 128, 256, 512),
                "depths": (2, 2, 6, 2),
                "patch_sizes": (4, 2, 2, 2),
                "embedding_kernels": ((4, 8), (2, 4), (2, 4), (2,)),
                "raft_size": 2,
            },
            params=9_868_768,
            shapes=IMAGENET,
            source="the official code's RaftMLP-S (the paper's 9.9M, Table 2)",
        ),
    },
    blocks=BlockLayout(RaftBlock, mixer=("mix_vertical", "mix_horizontal"), mlp=("mix_channels",)),
    renamed={"token_expansion": "token_mlp_ratio", "channel_expansion": "mlp_ratio"},
    source="own, weight for weight with the official code",
)
class RaftMLP(PatchClassifier):
    """RaftMLP image classifier (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        dims: Width of each level.
        depths: Raft blocks in each level.
        patch_sizes: Stride of each level's embedding; their product must divide the image size.
        embedding_kernels: Patch sizes of each level's cross-scale embedding (the first equals its stride).
        raft_size: Channels per raft r (divides every width).
        token_mlp_ratio: Hidden width of the token MLPs as a multiple of their input (token expansion).
        mlp_ratio: Hidden width of the conventional channel MLP as a multiple of the width (channel
            expansion).
        dropout: Dropout inside the MLPs.
        drop_path_rate: Stochastic depth rate of every branch (the same throughout, as the official code).
        channel_mlp: The channel MLP of every block: conventional or hourglass.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        dims: tuple[int, ...] = (64, 128, 256, 512),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        patch_sizes: tuple[int, ...] = (4, 2, 2, 2),
        embedding_kernels: tuple[tuple[int, ...], ...] = ((4, 8), (2, 4), (2, 4), (2,)),
        raft_size: int = 2,
        token_mlp_ratio: float = 2.0,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        drop_path_rate: float = 0.1,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        name = "RaftMLP"
        if not (len(dims) == len(depths) == len(patch_sizes) == len(embedding_kernels)) or not dims:
            raise ConfigError(
                f"{name}: dims, depths, patch_sizes and embedding_kernels need one entry per level, got "
                f"{len(dims)}, {len(depths)}, {len(patch_sizes)} and {len(embedding_kernels)}"
            )
        require_positive(name, raft_size=raft_size)
        if token_mlp_ratio <= 0 or mlp_ratio <= 0:
            raise ConfigError(
                f"{name}: token_mlp_ratio and mlp_ratio must be positive, got {token_mlp_ratio}, {mlp_ratio}"
            )
        for dim in dims:
            if dim % raft_size:
                raise ConfigError(
                    f"{name}: every width must be divisible by raft_size {raft_size}, got {tuple(dims)}"
                )
        stride_text = f"the product of the patch sizes {tuple(patch_sizes)}"
        super().__init__(input_shape, output_shape, math.prod(patch_sizes), stride_text=stride_text)
        channels, height, width = self.input_shape
        block_args = {
            "raft_size": raft_size,
            "token_mlp_ratio": token_mlp_ratio,
            "mlp_ratio": mlp_ratio,
            "dropout": dropout,
            "drop_path": drop_path_rate,
            "channel_mlp": channel_mlp,
        }
        levels, in_channels, grid = [], channels, (height, width)
        for dim, depth, patch, kernels in zip(dims, depths, patch_sizes, embedding_kernels):
            grid = (grid[0] // patch, grid[1] // patch)
            levels.append(RaftLevel(in_channels, dim, depth, grid, patch, tuple(kernels), block_args))
            in_channels = dim
        self.levels = nn.ModuleList(levels)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else x.permute(0, 3, 1, 2))
        return self.norm(x).mean(dim=(1, 2))
