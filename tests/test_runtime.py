"""The fit loop's per-step costs removed by :mod:`mlplab.runtime`, and that nothing else changes with them."""

from __future__ import annotations

import os

import pytest
import torch
from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler

from mlplab import runtime
from tests.conftest import REPO

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def unloadable(name: str) -> None:
    raise OSError(f"{name}: cannot open shared object file")


def test_the_nvml_check_is_dropped_only_where_nvml_cannot_load_and_cuda_answers_the_same(monkeypatch):
    monkeypatch.setenv(runtime.NVML_CHECK, "1")
    answer = torch.cuda.is_available()
    monkeypatch.setattr(runtime.ctypes, "CDLL", unloadable)
    assert runtime.skip_unusable_nvml_check()
    assert runtime.NVML_CHECK not in os.environ
    assert torch.cuda.is_available() == answer
    assert not runtime.skip_unusable_nvml_check()  # nothing left to drop


def test_the_nvml_check_stays_where_nvml_loads(monkeypatch):
    monkeypatch.setenv(runtime.NVML_CHECK, "1")
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: object())  # a library handle
    assert not runtime.skip_unusable_nvml_check()
    assert os.environ[runtime.NVML_CHECK] == "1"


def test_the_quiet_profiler_records_nothing_and_returns_one_shared_context():
    profiler = runtime.QuietProfiler()
    assert isinstance(profiler, PassThroughProfiler)
    with profiler.profile("[Callback]a.on_train_batch_end") as entered:
        assert entered is None
    assert profiler.profile("a") is profiler.profile("b")
    assert profiler.summary() == ""


@pytest.mark.parametrize(
    ("given", "expected"), [([], runtime.QuietProfiler), (["--trainer.profiler=simple"], SimpleProfiler)]
)
def test_the_cli_trainer_profiles_quietly_unless_a_profiler_is_configured(given, expected, tmp_path):
    from mlplab.cli import MLPLabCLI

    args = ["--config", QUICKSTART, f"--trainer.default_root_dir={tmp_path}", *given]
    run = MLPLabCLI(args=args, run=False)
    assert type(run.trainer.profiler) is expected


def test_setting_the_hook_name_skips_the_module_checks_and_nothing_else_does():
    from tests.tasks.test_base import make_task

    task = make_task()
    task._current_fx_name = "training_step"
    assert task._current_fx_name == "training_step" and "_current_fx_name" not in task._modules
    task.extra = torch.nn.Linear(2, 2)  # modules and parameters still register as submodules
    task.scale = torch.nn.Parameter(torch.ones(1))
    assert "extra" in task._modules and "scale" in task._parameters
