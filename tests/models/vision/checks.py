"""Checks shared by the image-classification family tests: shapes, gradients, training, size errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError
from tests.helpers import assert_every_trainable_parameter_gets_a_gradient, assert_steps_lower_the_loss


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_count(family, *args, **kwargs) -> int:
    """Parameters of ``family(*args, **kwargs)`` built on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        return parameter_count(family(*args, **kwargs))


def check_classifier_trains(
    family, image_shape=(3, 16, 16), num_classes=5, steps=10, lr=3e-3, train=True, **kwargs
) -> nn.Module:
    """Output shape, a few Adam steps that lower the loss, then a gradient for every trainable parameter.

    With ``train=False`` only the shape and the gradients are checked (and a step is taken first).

    The gradient check comes after the steps because some families start with a zero classifier (timm's
    MLP-Mixer initialisation), which passes no gradient back until it has taken a step.
    """
    torch.manual_seed(0)
    model = family(image_shape, (num_classes,), **kwargs)
    x = torch.randn(8, *image_shape)
    labels = torch.randint(0, num_classes, (8,))
    logits = model(x)
    assert logits.shape == (8, num_classes)
    steps = steps if train else 1
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    if train:
        assert_steps_lower_the_loss(model, lambda: F.cross_entropy(model(x), labels), steps=steps, lr=lr)
    else:  # one step, so that zero-initialised classifiers pass gradients back
        F.cross_entropy(logits, labels).backward()
        optimizer.step()
    assert_every_trainable_parameter_gets_a_gradient(model, F.cross_entropy(model(x), labels))
    return model


def check_size_errors(family, built_for=(3, 16, 16), not_divisible=(3, 18, 18), **kwargs) -> None:
    """An image size the family cannot take is refused, naming the sizes, when built and when run."""
    _, h, w = not_divisible
    with pytest.raises(ConfigError, match=rf"image size {h}×{w} is not divisible by"):
        family(not_divisible, (10,), **kwargs)
    model = family(built_for, (10,), **kwargs)
    _, bh, bw = built_for
    with pytest.raises(ConfigError, match=rf"built for {bh}×{bw} images, got {2 * bh}×{2 * bw}"):
        model(torch.randn(2, built_for[0], 2 * bh, 2 * bw))
