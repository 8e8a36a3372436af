"""Test helpers: checks every family must pass (gradients, loss going down) and a one-thread fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

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


def assert_padding_rows_are_left_out(
    task: Any, tensors: tuple[torch.Tensor, ...], batch_size: int, root: Any
) -> None:
    """``task``'s test metrics over process 1's padded share of ``tensors`` (2 processes, an odd count: its
    last batch ends with a padding row, as the CLI's loaders make it) equal those over its real rows."""
    import lightning as L

    from mlplab.data.common import TensorBatchLoader

    assert len(tensors[0]) % 2 == 1
    padded = TensorBatchLoader(tensors, batch_size=batch_size, rank=1, world_size=2, shards="pad")
    real = TensorBatchLoader(tuple(t[1::2] for t in tensors), batch_size=batch_size)
    assert padded.num_samples == real.num_samples + 1
    trainer = L.Trainer(default_root_dir=root, logger=False, enable_progress_bar=False)
    (logged,) = trainer.test(task, dataloaders=padded, verbose=False)
    (expected,) = trainer.test(task, dataloaders=real, verbose=False)
    assert logged.keys() == expected.keys() and "test/loss" in logged
    for name, value in expected.items():
        assert logged[name] == pytest.approx(value, rel=1e-6, abs=1e-7), name


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
