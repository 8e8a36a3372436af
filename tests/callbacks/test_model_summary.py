"""The model summary's FLOPs: counted on the meta device, equal to a real forward pass's count.

That the example inputs have the shapes of the training batches is checked for every recipe by
tests/test_configs.py; which summary the CLI adds, by tests/test_cli.py.
"""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary as Summary
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
from torch.nn.attention import SDPBackend, sdpa_kernel

from mlplab.callbacks import FlopsModelSummary, RichFlopsModelSummary
from mlplab.callbacks.model_summary import FlopsSummary
from mlplab.models.counting import count_forward_flops
from mlplab.models.registry import get, variant_args
from mlplab.tasks import ForecastingTask, ImageRestoration, LanguageModeling, TabularTask
from tests.helpers import one_thread  # noqa: F401  (an autouse fixture: tiny models, one torch thread)


def tiny(family: str) -> functools.partial:
    return functools.partial(get(family).cls, **variant_args(family))


TASKS = {
    "super-resolution": lambda: ImageRestoration(
        tiny("HourglassMLP"), image_shape=(1, 16, 16), num_classes=10, mode="super_resolution"
    ),
    "language": lambda: LanguageModeling(tiny("Transformer"), vocab_size=11, context_length=16),
    "forecasting with calendar features": lambda: ForecastingTask(
        tiny("TimeMixer"), lookback=32, horizon=8, num_series=3, num_time_features=4
    ),
    "tabular": lambda: TabularTask(tiny("TabM"), num_numeric=3, cardinalities=(4, 2), num_classes=3),
}


def random_like(example: torch.Tensor | None) -> torch.Tensor | None:
    if example is None:
        return None
    return torch.rand_like(example) if example.is_floating_point() else torch.randint_like(example, 2)


def real_inputs(task: L.LightningModule) -> object:
    """One sample of real (random) inputs of the example's shapes."""
    example = task.example_backbone_input(1)
    return tuple(map(random_like, example)) if isinstance(example, tuple) else random_like(example)


@pytest.mark.parametrize("name", TASKS)
def test_summary_flops_equal_a_real_forward_pass_of_one_sample_module_by_module(name):
    task = TASKS[name]()
    summary = FlopsSummary(task, max_depth=3)
    task.backbone.eval()
    # torch counts no FLOPs for its CPU flash-attention kernel: the real pass runs attention as matmuls
    with sdpa_kernel(SDPBackend.MATH):
        real = count_forward_flops(lambda: task.run_backbone(task.backbone, real_inputs(task)))
    root = type(task.backbone).__name__
    shown = {name: sum(counts.values()) for name, counts in summary.flop_counts.items()}
    expected = {
        layer: real.get(layer.replace("backbone", root, 1), 0) if layer.split(".")[0] == "backbone" else 0
        for layer in summary.layer_names
    }
    assert shown == expected
    assert summary.total_flops == real[root] > 0
    assert len([layer for layer in shown if shown[layer]]) > 2  # the backbone's parts have their counts


def test_the_calendar_features_are_counted():
    task = TASKS["forecasting with calendar features"]()
    assert task.uses_time_features
    without = ForecastingTask(tiny("TimeMixer"), lookback=32, horizon=8, num_series=3)
    assert task.forward_flops()["backbone"] > without.forward_flops()["backbone"]


def test_a_module_with_an_example_input_array_gets_lightnings_own_count():
    task = TASKS["language"]()
    task.example_input_array = torch.zeros(2, 16, dtype=torch.long)
    assert FlopsSummary(task).total_flops == Summary(task).total_flops > 0
    assert FlopsSummary(task).total_flops > FlopsSummary(TASKS["language"]()).total_flops  # two samples


def test_a_task_that_cannot_say_its_inputs_gets_lightnings_count():
    class NoInputs(ImageRestoration):
        def example_backbone_input(self, batch_size: int) -> None:
            return None

    task = NoInputs(tiny("HourglassMLP"), image_shape=(1, 16, 16), num_classes=10)
    assert task.forward_flops() is None
    assert FlopsSummary(task).total_flops == Summary(task).total_flops == 0


@pytest.mark.parametrize("callback", [FlopsModelSummary, RichFlopsModelSummary])
def test_the_printed_summary_shows_the_counted_total(callback, capsys, caplog):
    if callback is RichFlopsModelSummary:
        pytest.importorskip("rich")
    task = TASKS["super-resolution"]()
    trainer = L.Trainer(
        callbacks=[callback()],
        max_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    with caplog.at_level("INFO"):
        callback(max_depth=1).on_fit_start(trainer, task)
    printed = capsys.readouterr().out + caplog.text
    total = FlopsSummary(task).total_flops
    assert total > 0
    assert get_human_readable_count(total) in printed
    assert "FLOPs" in printed or "Flops" in printed
