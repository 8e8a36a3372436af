"""What the image families share: reading the task's shapes, size checks with one-line errors.

Image families follow the family contract (``docs/architecture.md``): they are called as
``family(input_shape, output_shape, **args)`` with ``input_shape = (C, H, W)`` and, for classification,
``output_shape = (num_classes,)``. Families with spatial ``Linear`` layers (token-mixing MLPs, learned
spectral filters, position embeddings) are built for one image size; they check it when they are built
(the size must be divisible by the patch size and by every downsampling step) and when they run (a batch
of another size), and both checks raise :class:`~mlplab.errors.ConfigError` naming the sizes.
"""

from __future__ import annotations

import torch

from mlplab.errors import ConfigError, require_positive
from mlplab.nn import ChannelMLP

#: The default ``channel_mlp`` of the families: the conventional ``d -> hidden -> d`` MLP.
CONVENTIONAL = ChannelMLP()

#: ImageNet-1k classification shapes, at which the published parameter counts are given.
IMAGENET = ((3, 224, 224), (1000,))


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
