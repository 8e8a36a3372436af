"""The direction (min / max) told from a metric's name, for every metric mlplab's tasks log."""

from __future__ import annotations

import pytest

from mlplab.metrics import metric_mode

#: Every metric name a task logs (``val/`` shown; ``test/`` is the same), with the way it improves.
LOGGED_METRICS = {
    # image classification
    "val/acc": "max", "val/acc_top5": "max", "val/loss": "min", "train/acc": "max", "train/loss": "min",
    # image restoration and fitting
    "val/psnr": "max", "val/ssim": "max", "val/psnr_input": "max", "train/seconds_to_psnr": "min",
    # forecasting
    "val/mse": "min", "val/mae": "min", "val/mse_original": "min", "val/mae_original": "min",
    # language modelling and associative recall
    "val/bpc": "min", "val/ppl": "min",
    # tabular and function fitting
    "val/auroc": "max", "val/logloss": "min", "val/rmse": "min", "val/r2": "max",
    # every task
    "train/aux_loss": "min", "train/density_loss": "min",
}  # fmt: skip


@pytest.mark.parametrize(("metric", "mode"), LOGGED_METRICS.items())
def test_every_logged_metric_is_judged_in_its_direction(metric, mode):
    # train/seconds_to_psnr was "max" (psnr in its name: the slowest fit judged best), and val/auroc and
    # val/logloss, the tabular task's own metrics, told no direction (a monitor of them was refused)
    assert metric_mode(metric) == mode


@pytest.mark.parametrize(
    "metric",
    ["val/score", "val/density", "train/device/tokens_per_sec", "val/acc_loss", "perf/steps_per_second"],
)
def test_a_name_of_no_known_direction_or_of_both_tells_none(metric):
    assert metric_mode(metric) is None


def test_each_task_monitors_its_metric_in_the_direction_its_name_tells():
    from mlplab import tasks

    for name in ("AssociativeRecall", "ForecastingTask", "FunctionFitting", "ImageClassification",
                 "ImageFitting", "ImageRestoration", "LanguageModeling"):  # fmt: skip
        task = getattr(tasks, name)
        assert metric_mode(task.monitor) == task.monitor_mode, name
    for monitor, mode in (("val/acc", "max"), ("val/rmse", "min")):  # TabularTask's, set per objective
        assert metric_mode(monitor) == mode
