"""Test helpers: checks every family must pass (gradients, loss going down) and a one-thread fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn


def assert_every_trainable_parameter_gets_a_gradient(model: nn.Module, loss: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    loss.backward()
    starved = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)
    ]
    assert not starved, f"no gradient reached: {starved}"


def assert_steps_lower_the_loss(
    model: nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int = 20, lr: float = 1e-3
) -> None:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    first = None
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    final = loss_fn().item()
    assert final < 0.9 * first, f"loss went from {first:.4g} to {final:.4g} in {steps} steps"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread for the test (tiny models: one thread beats two contending ones).

    Import it into a test module or a folder's ``conftest.py``; being autouse, it then applies to every
    test there.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
