"""A diverging run stops with one error line, exit status 1, and never saves a non-finite checkpoint."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tests.reliability.workspace import QUICKSTART, QUIET

FIT = [
    "fit",
    "--config",
    str(QUICKSTART),
    "--model.backbone.embed_dim=128",
    "--model.backbone.mlp_dim=32",
    *QUIET,
]


def checkpoints_are_finite(root) -> list[str]:
    """Names of the checkpoints under ``root``; each one is asserted to hold finite weights only."""
    found = []
    for path in sorted(root.rglob("*.ckpt")):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), path
        found.append(path.name)
    return found


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_learning_rate_1e6_stops_with_one_line_and_saves_nothing_non_finite(cli, capsys, tmp_path):
    assert (
        cli(*FIT, "--trainer.max_epochs=3", "--model.optimizer.lr=1e6", "--trainer.default_root_dir=run") == 1
    )
    (line,) = error_lines(capsys)
    assert line.startswith("error: training diverged: the training loss became nan at step ")
    assert "(epoch 0, batch " in line and "learning rate" in line
    assert checkpoints_are_finite(tmp_path / "run") == []  # it diverged before the first validation
    # the run's summary.json says so (there was none: compare left the run out)
    summary = json.loads(next((tmp_path / "run").rglob("summary.json")).read_text())
    step = int(re.search(r"became nan at step (\d+) ", line).group(1))
    assert summary["status"] == "diverged" and summary["diverged"]["step"] == step
    assert summary["diverged"]["value"] == "nan" and summary["diverged"]["error"] == line[len("error: ") :]


def test_the_line_names_the_learning_rate_of_the_step_that_diverged(cli, capsys):
    """It gave the rate in force when the host looked: at the end of a short run, 0."""
    assert (
        cli(*FIT, "--trainer.max_steps=10", "--model.optimizer.lr=1e6", "--trainer.default_root_dir=run") == 1
    )
    (line,) = error_lines(capsys)
    step = int(re.search(r"became nan at step (\d+) ", line).group(1))
    # LinearWarmupDecay over the run's 10 steps: optimiser step `step` ran at 1e6 * (1 - (step - 1) / 10)
    assert f"learning rate {1e6 * (1 - (step - 1) / 10):g};" in line, line


def test_a_good_last_checkpoint_is_not_replaced_by_a_diverged_state(cli, capsys, tmp_path):
    status = cli(
        *FIT, "--trainer.max_epochs=2", "--checkpoint.last_every_n_steps=5", "--trainer.default_root_dir=run",
        "--trainer.callbacks+=tests.reliability.callbacks.PoisonAtStep", "--trainer.callbacks.step=25",
    )  # fmt: skip
    assert status == 1
    (line,) = error_lines(capsys)
    assert "the weights backbone." in line and "became non-finite by step 25 (epoch 1)" in line
    assert sorted(checkpoints_are_finite(tmp_path / "run")) == ["best.ckpt", "last.ckpt"]
    last = next((tmp_path / "run").rglob("last.ckpt"))
    assert torch.load(last, weights_only=True)["global_step"] == 20  # the last state before the NaN


def test_early_stopping_on_a_nan_metric_says_so(cli, capsys, tmp_path):
    status = cli(
        *FIT, "--trainer.max_epochs=3", "--model.optimizer.lr=1e6", "--divergence.enabled=false",
        "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val/loss",
        "--trainer.default_root_dir=run",
    )  # fmt: skip
    assert status == 1
    (line,) = error_lines(capsys)
    assert "val/loss became nan at epoch 0 and EarlyStopping stopped the run" in line
    assert "no best.ckpt was written" in line
    assert "best.ckpt" not in checkpoints_are_finite(tmp_path / "run")
    diverged = json.loads(next((tmp_path / "run").rglob("summary.json")).read_text())["diverged"]
    assert (diverged["epoch"], diverged["value"]) == (0, "nan")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_the_guard_names_the_first_non_finite_step(value):
    from types import SimpleNamespace

    from mlplab.callbacks import DivergenceGuard
    from mlplab.errors import TrainingDivergedError

    guard = DivergenceGuard(check_every_n_steps=10)
    module = torch.nn.Linear(2, 2)
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all: decision)
    trainer = SimpleNamespace(global_step=0, current_epoch=0, strategy=strategy, optimizers=[])
    guard.on_train_start(trainer, module)
    for step, loss in enumerate([1.0, 0.5, float(value), 0.7, float("nan")], start=1):
        trainer.global_step = step
        guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, step - 1)
    with pytest.raises(TrainingDivergedError, match=f"the training loss became {value} at step 3 "):
        guard.check(trainer, module)
