"""FunctionDataModule: formulas by name or expression, reproducible splits, refusals in one line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from mlplab.data import FunctionDataModule
from mlplab.data.functions import FORMULAS
from mlplab.errors import ConfigError


def test_named_formulas_are_the_kan_papers_and_evaluate():
    data = FunctionDataModule("exp_sin", num_train=50, num_val=20, num_test=30)
    assert data.num_inputs == 2 and data.num_outputs == 1
    data.setup()
    x, y = data.splits["train"]
    torch.testing.assert_close(y[:, 0], torch.exp(torch.sin(torch.pi * x[:, 0]) + x[:, 1] ** 2))
    assert (
        x.min() >= -1
        and x.max() <= 1
        and [len(data.splits[s][0]) for s in ("train", "val", "test")] == [50, 20, 30]
    )
    assert FunctionDataModule("exp_sin_sq_100d", num_train=2, num_val=2, num_test=2).num_inputs == 100
    bessel = FunctionDataModule("bessel", num_train=5, num_val=2, num_test=2)
    bessel.setup()
    from scipy.special import jv

    bx, by = bessel.splits["train"]
    np.testing.assert_allclose(by[:, 0].numpy(), jv(0, 20 * bx[:, 0].double().numpy()), rtol=1e-5, atol=1e-6)
    assert set(FORMULAS) >= {"bessel", "exp_sin", "product", "exp_sin_4d"}


def test_expressions_inputs_and_noise():
    data = FunctionDataModule("x1*x3", num_inputs=4, input_range=(0.0, 2.0), noise_std=0.1, seed=3,
                              num_train=400, num_val=10, num_test=10)  # fmt: skip
    assert data.num_inputs == 4
    data.setup()
    x, y = data.splits["train"]
    assert x.min() >= 0 and x.max() <= 2
    residual = y[:, 0] - x[:, 0] * x[:, 2]
    assert 0.07 < residual.std() < 0.13  # noise on the training targets only
    vx, vy = data.splits["val"]
    torch.testing.assert_close(vy[:, 0], vx[:, 0] * vx[:, 2])
    again = FunctionDataModule("x1*x3", num_inputs=4, input_range=(0.0, 2.0), noise_std=0.1, seed=3,
                               num_train=400, num_val=10, num_test=10)  # fmt: skip
    again.setup()
    assert torch.equal(again.splits["train"][0], x) and not torch.equal(data.splits["test"][0], vx)


@pytest.mark.parametrize(
    ("formula", "kwargs", "message"),
    [
        ("exp(", {}, r"cannot parse the formula 'exp\(' \("),
        ("x1 + y", {}, r"uses unknown names \['y'\]; its variables are x1..x1"),
        ("x1 * x3", {"num_inputs": 2}, "the formula uses x3 but num_inputs is 2"),
        ("log(x1)", {}, r"is not finite everywhere on \[-1.0, 1.0\]\^1"),
        ("x1", {"input_range": (1.0, 0.0)}, "input_range must be"),
        ("x1", {"seed": -1}, "seed must be non-negative, got -1"),  # once NumPy's traceback
    ],
)
def test_bad_formulas_are_refused_in_one_line(formula, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        data = FunctionDataModule(formula, num_train=50, num_val=5, num_test=5, **kwargs)
        data.setup()


def test_predict_writes_a_table_of_inputs_targets_and_predictions(cli, tmp_path):
    recipe = Path(__file__).resolve().parents[2] / "configs" / "kan" / "kan_exp_sin.yaml"
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    sizes = ["--data.num_train=64", "--data.num_val=32", "--data.num_test=40", "--data.eval_batch_size=16"]
    fit = [
        "--trainer.max_epochs=1",
        "--trainer.check_val_every_n_epoch=1",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert cli("fit", f"--config={recipe}", *fit, *sizes, *quiet) == 0
    run = tmp_path / "lightning_logs" / "version_0"
    assert cli("predict", f"--config={run / 'config.yaml'}", "--ckpt_path=best", *quiet) == 0
    saved = torch.load(tmp_path / "lightning_logs" / "version_1" / "predictions.pt", weights_only=True)
    with open(tmp_path / "lightning_logs" / "version_1" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["split", "index", "x1", "x2", "target", "prediction"] and len(rows) == 40
    assert [row["index"] for row in rows] == [str(i) for i in range(40)]
    data = FunctionDataModule("exp_sin", num_train=64, num_val=32, num_test=40)
    data.setup()
    x, y = data.splits["test"]
    np.testing.assert_allclose([float(row["x2"]) for row in rows], x[:, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose([float(row["target"]) for row in rows], y[:, 0].numpy(), rtol=1e-6)
    predicted = [float(row["prediction"]) for row in rows]
    np.testing.assert_allclose(predicted, saved["predictions"][:, 0].numpy(), rtol=1e-6)
