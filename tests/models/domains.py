"""How the registry-driven tests exercise a family of each domain: example batches, loss, the domain contract.

A new domain (``mlplab.models.registry.register_domain``) adds its :class:`Harness` to :data:`HARNESSES`;
``tests/models/test_registry.py`` then tests every family of the domain with no other edit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError


@dataclass(frozen=True)
class Batch:
    """Positional and keyword inputs of the family, and the target of the loss."""

    args: tuple
    kwargs: dict
    target: torch.Tensor


@dataclass(frozen=True)
class Harness:
    """What the registry tests do with a family of one domain.

    Args:
        batch: ``batch(shapes, data_args)``: a small learnable batch for a family built for ``shapes``.
        loss: ``loss(output, target)``.
        steps: Optimiser steps in which the loss must fall by 10%.
        lr: Their Adam learning rate.
        contract: ``contract(model, shapes, data_args)``: the domain's promises (shapes, errors, causality).
    """

    batch: Callable[[tuple, dict], Batch]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    steps: int
    lr: float
    contract: Callable[[nn.Module, tuple, dict], None]


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# ------------------------------------------------------------------------------------ classification
def classification_batch(shapes: tuple, data_args: dict) -> Batch:
    image_shape, (num_classes,) = shapes
    generator = _generator()
    images = torch.randn(8, *image_shape, generator=generator)
    return Batch((images,), {}, torch.randint(0, num_classes, (8,), generator=generator))


def classification_contract(model: nn.Module, shapes: tuple, data_args: dict) -> None:
    (channels, height, width), (num_classes,) = shapes
    model.eval()
    assert model(torch.randn(3, channels, height, width)).shape == (3, num_classes)
    with pytest.raises(ConfigError, match="built for"):
        model(torch.randn(2, channels, 2 * height, 2 * width))  # an image size it was not built for


# ------------------------------------------------------------------------------------ restoration
def restoration_batch(shapes: tuple, data_args: dict) -> Batch:
    input_shape, output_shape = shapes
    generator = _generator()
    clean = torch.rand(8, *output_shape, generator=generator)
    degraded = F.interpolate(clean, size=input_shape[1:], mode="area")
    degraded = (degraded + 0.2 * torch.randn(degraded.shape, generator=generator)).clamp(0, 1)
    return Batch((degraded,), {}, clean)


def restoration_contract(model: nn.Module, shapes: tuple, data_args: dict) -> None:
    input_shape, output_shape = shapes
    model.eval()
    with torch.no_grad():
        restored = model(4 * torch.rand(3, *input_shape) - 2)
    assert restored.shape == (3, *output_shape)
    assert restored.min() >= 0 and restored.max() <= 1  # pixels in [0, 1] when evaluating
    channels, height, width = input_shape
    with pytest.raises(ConfigError, match="built for"):
        model(torch.rand(2, channels, 2 * height, 2 * width))


# ------------------------------------------------------------------------------------ forecasting
def sine_windows(batch: int, lookback: int, horizon: int, series: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sines of one period per series and a random phase per window: history and future."""
    phase = torch.rand(batch, 1, series, generator=_generator()) * 2 * math.pi
    period = 12 + 4 * torch.arange(series).view(1, 1, series)
    t = torch.arange(lookback + horizon).view(1, -1, 1)
    waves = torch.sin(2 * math.pi * t / period + phase)
    return waves[:, :lookback], waves[:, lookback:]


def forecasting_batch(shapes: tuple, data_args: dict) -> Batch:
    (lookback, series), (horizon, _) = shapes
    history, future = sine_windows(16, lookback, horizon, series)
    kwargs = {}
    if data_args.get("num_time_features"):
        kwargs["time_features"] = torch.rand(16, lookback, data_args["num_time_features"]) - 0.5
    return Batch((history,), kwargs, future)


def forecasting_contract(model: nn.Module, shapes: tuple, data_args: dict) -> None:
    (lookback, series), (horizon, _) = shapes
    model.eval()
    kwargs = {}
    if data_args.get("num_time_features"):
        kwargs["time_features"] = torch.rand(3, lookback, data_args["num_time_features"])
    assert model(torch.randn(3, lookback, series), **kwargs).shape == (3, horizon, series)
    with pytest.raises(ConfigError, match="built for histories of lookback"):
        model(torch.randn(3, 2 * lookback, series))


# ------------------------------------------------------------------------------------ sequence
def sequence_batch(shapes: tuple, data_args: dict) -> Batch:
    vocab_size, context_length = shapes
    tokens = torch.randint(0, vocab_size, (4, context_length), generator=_generator())
    return Batch((tokens,), {}, tokens.roll(1, dims=1))  # copy the previous token: every family can


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def assert_causal(model: nn.Module, vocab_size: int, context_length: int) -> None:
    """Output t depends on tokens 0..t only, and shorter inputs give the same prefix outputs."""
    model.eval()
    tokens = torch.randint(0, vocab_size, (3, context_length), generator=_generator())
    logits = model(tokens)
    assert logits.shape == (3, context_length, vocab_size)
    for t in (0, context_length // 2, context_length - 2):
        changed = tokens.clone()
        later = changed[:, t + 1 :]
        changed[:, t + 1 :] = (later + torch.randint(1, vocab_size, later.shape)) % vocab_size
        after = model(changed)
        torch.testing.assert_close(after[:, : t + 1], logits[:, : t + 1], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(after[:, t + 1 :], logits[:, t + 1 :])  # the change is seen later on
    shorter = model(tokens[:, :7])
    torch.testing.assert_close(shorter, logits[:, :7], atol=1e-5, rtol=1e-5)


def sequence_contract(model: nn.Module, shapes: tuple, data_args: dict) -> None:
    vocab_size, context_length = shapes
    assert_causal(model, vocab_size, context_length)
    with pytest.raises(ConfigError, match=f"built for contexts of up to {context_length} tokens"):
        model(torch.zeros(1, context_length + 6, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"takes token batches of shape \(B, T\)"):
        model(torch.zeros(context_length, dtype=torch.long))


# ------------------------------------------------------------------------------------ image fitting
def image_fitting_batch(shapes: tuple, data_args: dict) -> Batch:
    (_,), (channels,) = shapes
    coords = torch.rand(256, 2, generator=_generator()) * 2 - 1
    phase = torch.arange(channels).view(1, -1)
    colours = 0.5 + 0.4 * torch.sin(3 * coords[:, :1] + phase) * torch.cos(2 * coords[:, 1:])
    return Batch((coords,), {}, colours)


def image_fitting_contract(model: nn.Module, shapes: tuple, data_args: dict) -> None:
    (dims,), (channels,) = shapes
    model.eval()
    assert model(torch.rand(3, dims) * 2 - 1).shape == (3, channels)
    with pytest.raises(ConfigError, match="built for coordinates"):
        model(torch.rand(3, dims + 1))


# ------------------------------------------------------------------------------------ function fitting
def function_fitting_batch(shapes: tuple, data_args: dict) -> Batch:
    (inputs,), (outputs,) = shapes
    x = torch.rand(128, inputs, generator=_generator()) * 2 - 1
    y = torch.sin(math.pi * x[:, :1]) + x.pow(2).sum(-1, keepdim=True)
    return Batch((x,), {}, y.expand(-1, outputs))


def function_fitting_contract(model: nn.Module, shapes: tuple, data_args: dict) -> None:
    (inputs,), (outputs,) = shapes
    model.eval()
    assert model(torch.rand(3, inputs)).shape == (3, outputs)
    with pytest.raises(ConfigError, match="built for"):
        model(torch.rand(3, inputs + 1))


HARNESSES: dict[str, Harness] = {
    "image_classification": Harness(classification_batch, F.cross_entropy, 10, 3e-3, classification_contract),
    "image_restoration": Harness(restoration_batch, F.mse_loss, 20, 3e-3, restoration_contract),
    "forecasting": Harness(forecasting_batch, F.mse_loss, 30, 3e-3, forecasting_contract),
    "sequence": Harness(sequence_batch, sequence_loss, 15, 1e-2, sequence_contract),
    "image_fitting": Harness(image_fitting_batch, F.mse_loss, 20, 1e-2, image_fitting_contract),
    "function_fitting": Harness(function_fitting_batch, F.mse_loss, 20, 1e-2, function_fitting_contract),
}


# ------------------------------------------------------------------------------------ tabular
def tabular_batch(shapes: tuple, data_args: dict) -> Batch:
    num_numeric, cardinalities, num_outputs = shapes
    generator = _generator()
    x_num = torch.randn(32, num_numeric, generator=generator)
    x_cat = torch.stack([torch.randint(0, c, (32,), generator=generator) for c in cardinalities], 1)
    score = x_num[:, 0] + (x_cat[:, 0] == 1).float() - x_num[:, 1] * (x_cat[:, 1] > 2).float()
    classes = torch.bucketize(score, torch.quantile(score, torch.linspace(0, 1, num_outputs + 1)[1:-1]))
    return Batch((x_num, x_cat), {}, classes)


def tabular_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if outputs.ndim == 3:  # an ensemble: every member against the targets
        targets = targets.unsqueeze(1).expand(-1, outputs.shape[1])
    return F.cross_entropy(outputs.flatten(0, -2), targets.flatten())


def tabular_contract(model: nn.Module, shapes: tuple, data_args: dict) -> None:
    num_numeric, cardinalities, num_outputs = shapes
    model.eval()
    x_num = torch.randn(3, num_numeric)
    x_cat = torch.stack([torch.randint(0, c, (3,)) for c in cardinalities], 1)
    out = model(x_num, x_cat)
    assert out.shape[0] == 3 and out.shape[-1] == num_outputs and out.ndim in (2, 3)
    # code 0 (a category unseen in training) is accepted and keeps the output finite
    unseen = x_cat.clone()
    unseen[:, 0] = 0
    assert torch.isfinite(model(x_num, unseen)).all()
    with pytest.raises(ConfigError, match="built for"):
        model(torch.randn(3, num_numeric + 1), x_cat)


HARNESSES["tabular"] = Harness(tabular_batch, tabular_loss, 20, 1e-2, tabular_contract)
