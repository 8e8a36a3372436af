"""What the image families share: the task's shapes, size checks with one-line errors, the classifier bases.

Image families follow the family contract (``docs/architecture.md``): they are called as
``family(input_shape, output_shape, **args)`` with ``input_shape = (C, H, W)`` and, for classification,
``output_shape = (num_classes,)``. Families with spatial ``Linear`` layers (token-mixing MLPs, learned
spectral filters, position embeddings) are built for one image size; they check it when they are built
(the size must be divisible by the patch size and by every downsampling step) and when they run (a batch
of another size), and both checks raise :class:`~mlplab.errors.ConfigError` naming the sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from timm.layers import PatchEmbed, trunc_normal_
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.nn import ChannelMLP
from mlplab.nn.moe import MixtureOfExperts

#: The default ``channel_mlp`` of the families: the conventional ``d -> hidden -> d`` MLP.
CONVENTIONAL = ChannelMLP()

#: ImageNet-1k classification shapes, at which the published parameter counts are given.
IMAGENET = ((3, 224, 224), (1000,))
#: CIFAR-10 classification shapes.
CIFAR10 = ((3, 32, 32), (10,))


def image_shape(owner: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` from ``input_shape``, refusing anything else with a :class:`ConfigError`."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"{owner} takes images of shape (channels, height, width), got input shape {tuple(input_shape)}"
        )
    for axis in input_shape:
        require_positive(owner, **{"every size in input_shape": axis})
    channels, height, width = (int(axis) for axis in input_shape)
    return channels, height, width


def classification_shapes(
    owner: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """``(C, H, W, num_classes)`` of an image classifier; ``output_shape`` must be ``(num_classes,)``."""
    channels, height, width = image_shape(owner, input_shape)
    if len(output_shape) != 1:
        raise ConfigError(
            f"{owner} is an image classifier: output shape must be (num_classes,), got {tuple(output_shape)}"
        )
    require_positive(owner, num_classes=int(output_shape[0]))
    return channels, height, width, int(output_shape[0])


def size_text(height: int, width: int) -> str:
    """``32×32``: how messages write an image size."""
    return f"{height}×{width}"


def require_divisible(owner: str, height: int, width: int, divisor: int, what: str) -> None:
    """Raise :class:`ConfigError` unless both image sides are divisible by ``divisor``.

    Args:
        owner: The family, named in the message.
        height: Image height.
        width: Image width.
        divisor: What both sides must be divisible by.
        what: What ``divisor`` is, e.g. ``"patch size 4"`` or ``"patch size 4 × 3 downsamplings by 2"``.
    """
    if height % divisor or width % divisor:
        raise ConfigError(
            f"{owner}: the image size {size_text(height, width)} is not divisible by {divisor} "
            f"({what}); choose a patch size that divides it or resize the images"
        )


def require_four_stages(owner: str, **values: Sequence[Any]) -> None:
    """Raise :class:`ConfigError` unless each per-stage setting in ``values`` has 4 entries."""
    for key, value in values.items():
        if len(value) != 4:
            raise ConfigError(f"{owner} has 4 stages: {key} needs 4 values, got {tuple(value)}")


def check_batch(owner: str, x: torch.Tensor, input_shape: tuple[int, int, int]) -> None:
    """Raise :class:`ConfigError` unless ``x`` is a batch ``(B, *input_shape)``.

    Shapes are Python integers here, so the check costs no device synchronisation.
    """
    if tuple(x.shape[1:]) != tuple(input_shape):
        channels, height, width = input_shape
        got = tuple(x.shape)
        if x.ndim == 4 and x.shape[1] == channels:
            raise ConfigError(
                f"{owner} was built for {size_text(height, width)} images, got "
                f"{size_text(x.shape[2], x.shape[3])} (a batch of shape {got}); build it for that size"
            )
        raise ConfigError(
            f"{owner} was built for inputs of shape {tuple(input_shape)}, got a batch of shape {got}"
        )


def init_linear_weights(module: nn.Module) -> None:
    """For ``module.apply``: ``Linear`` weights truncated normal (std 0.02), biases zero.

    The mixture-of-experts channel MLPs' expert matrices too (``w1``, ``w2``), as linear layers.
    """
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, MixtureOfExperts):
        module.init_experts(trunc_normal_, 0.02)


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """Stochastic depth rising linearly from 0 to ``rate`` over ``blocks`` blocks (``torch.linspace``)."""
    return [rate * k / max(blocks - 1, 1) for k in range(blocks)]


def hierarchical_stages(
    depths: Sequence[int],
    drop_path_rate: float,
    block: Callable[[int, float], nn.Module],
    downsample: Callable[[int], nn.Module],
) -> nn.Sequential:
    """Stages of residual blocks joined by downsamplings, stochastic depth rising over all the blocks.

    Stage ``i`` is ``depths[i]`` blocks ``block(i, drop_path)`` followed, except for the last stage, by
    ``downsample(i)`` (from the width of stage ``i`` to that of stage ``i + 1``).
    """
    rates = drop_path_rates(drop_path_rate, sum(depths))
    stages = []
    for i, depth in enumerate(depths):
        first = sum(depths[:i])
        layers = [block(i, rates[first + j]) for j in range(depth)]
        if i < len(depths) - 1:
            layers.append(downsample(i))
        stages.append(nn.Sequential(*layers))
    return nn.Sequential(*stages)


class PatchClassifier(nn.Module):
    """Base of the image classifiers: the task's shapes, size checks, ``head(forward_features(x))``.

    Subclasses call this ``__init__`` first, build their layers, end with a linear ``self.head`` from
    the feature width to ``self.num_classes``, and implement :meth:`forward_features`. The image sides
    must be divisible by the patch size times ``2 ** downsamplings`` (one-line error otherwise), and a
    batch of another size than the one the family was built for is refused by :meth:`forward`.

    Shapes: ``(B, C, H, W) -> forward_features -> (B, D) -> head -> (B, num_classes)``.

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Stride of the stem (patch embedding).
        downsamplings: Stride-2 downsamplings after the stem (3 for a 4-stage hierarchy).
        square_only: Refuse images that are not square.
        stride_text: How the size message names the total stride; by default from the two above.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int,
        downsamplings: int = 0,
        square_only: bool = False,
        stride_text: str | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        require_positive(name, patch_size=patch_size)
        channels, height, width, num_classes = classification_shapes(name, input_shape, output_shape)
        if square_only and height != width:
            raise ConfigError(f"{name} needs square images, got {size_text(height, width)}")
        if stride_text is None:
            stride_text = f"patch size {patch_size}" + (
                f" × {downsamplings} downsamplings by 2" if downsamplings else ""
            )
        require_divisible(name, height, width, patch_size * 2**downsamplings, stride_text)
        self.input_shape = (channels, height, width)
        self.num_classes = num_classes
        self.head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, D)`` of images ``(B, C, H, W)`` (everything but the head)."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of pooled features."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(type(self).__name__, x, self.input_shape)
        return self.forward_head(self.forward_features(x))


class FourStagePatchClassifier(PatchClassifier):
    """A patch stem and 4 stages at widths D, 2D, 4D, 8D joined by stride-2 downsamplings.

    The scaffold and the hyper-parameters MS-MLP, Strip-MLP and Dynamic Spectrum Mixer share: the image
    size must be divisible by ``8 p``; the subclass builds its stem, its stages (:meth:`build_stages`,
    or its own wiring), a final norm and ``self.head`` from ``self.dims[3]`` features.

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Stride p of the stem; the image size must be divisible by ``8p``.
        embed_dim: Width D of the first stage (then 2D, 4D, 8D).
        depths: Blocks in each of the 4 stages.
        mlp_ratio: Hidden width of the channel MLP as a multiple of the stage width.
        drop_path_rate: Stochastic depth rate (rising linearly from 0 over the blocks, unless the
            family says otherwise).
        channel_mlp: The channel MLP of every block: conventional or hourglass.
    """

    #: Whether the family takes only square images.
    square_only = False

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int = 4,
        embed_dim: int = 64,
        depths: tuple[int, int, int, int] = (2, 2, 6, 2),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        name = type(self).__name__
        require_positive(name, embed_dim=embed_dim)
        if len(depths) != 4:
            raise ConfigError(f"{name} has 4 stages: depths needs 4 block counts, got {tuple(depths)}")
        if mlp_ratio <= 0:
            raise ConfigError(f"{name}: mlp_ratio must be positive, got {mlp_ratio}")
        super().__init__(input_shape, output_shape, patch_size, downsamplings=3, square_only=self.square_only)
        self.patch_size = patch_size
        self.dims = [embed_dim * 2**i for i in range(4)]
        self.depths = tuple(depths)
        self.mlp_ratio, self.drop_path_rate, self.channel_mlp = mlp_ratio, drop_path_rate, channel_mlp

    def build_stages(
        self, block: Callable[[int, float], nn.Module], downsample: Callable[[int], nn.Module]
    ) -> nn.Sequential:
        """The 4 stages: see :func:`hierarchical_stages`."""
        return hierarchical_stages(self.depths, self.drop_path_rate, block, downsample)


class IsotropicPatchClassifier(PatchClassifier):
    """Patches embedded as ``N = (H/p)·(W/p)`` tokens of width d, residual blocks, mean over tokens, head.

    The scaffold, and the hyper-parameters, of NiNformer and Activator (the same authors' CIFAR protocol):
    a ``p × p`` stride-``p`` convolution (timm's ``PatchEmbed``) to ``embed_dim`` channels; the subclass
    builds ``depth`` blocks from the settings kept here and ends its ``__init__`` with :meth:`set_blocks`,
    which adds them and the linear head (no final norm).

    The papers' CIFAR-10 protocol (their ``train.py``, :attr:`cifar10_args`): 32×32, patch 4,
    ``d_model=256``, ``d_ffn=512``, 4 blocks, dropout 0.5, Adam at 1e-3, batch 128, 100 epochs, no
    augmentation.

    Shapes: ``(B, C, H, W) -> (B, N, d) -> blocks -> mean -> (B, d) -> (B, num_classes)``.

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Side p of the square patches; must divide the image size.
        embed_dim: Token width d (the papers' ``d_model``).
        mlp_dim: Hidden width of the blocks' MLPs (the papers' ``d_ffn``).
        depth: Number of blocks.
        dropout: Dropout inside the MLPs (0.5 in the official ``train.py``).
        channel_mlp: The channel MLPs of every block: conventional or hourglass.
    """

    #: The papers' CIFAR-10 configuration (the defaults), and a tiny one for tests.
    cifar10_args = {"patch_size": 4, "embed_dim": 256, "mlp_dim": 512, "depth": 4, "dropout": 0.5}
    tiny_args = {"embed_dim": 32, "mlp_dim": 64, "depth": 2, "dropout": 0.0}
    #: The arguments' former names (the papers' own), for the families' ``@register_family(renamed=...)``.
    renamed_args = {"d_model": "embed_dim", "d_ffn": "mlp_dim", "num_layers": "depth"}

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int = 4,
        embed_dim: int = 256,
        mlp_dim: int = 512,
        depth: int = 4,
        dropout: float = 0.5,
        channel_mlp: ChannelMLP = CONVENTIONAL,
    ):
        require_positive(type(self).__name__, embed_dim=embed_dim, mlp_dim=mlp_dim, depth=depth)
        super().__init__(input_shape, output_shape, patch_size)
        channels, height, width = self.input_shape
        self.embed_dim, self.mlp_dim, self.depth = embed_dim, mlp_dim, depth
        self.dropout_rate, self.channel_mlp = dropout, channel_mlp
        self.patch_embed = PatchEmbed((height, width), patch_size, channels, embed_dim)
        self.num_tokens = self.patch_embed.num_patches

    def set_blocks(self, blocks: Iterable[nn.Module]) -> None:
        """Add the residual blocks (each ``(B, N, d) -> (B, N, d)``), then the head."""
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(self.embed_dim, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.patch_embed(x)).mean(dim=1)
