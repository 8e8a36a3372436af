"""ForecastingTask: metrics on the standardised and original scales, figures, RevIN, horizon checks."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlplab.cli import MLPLabCLI
from mlplab.data import ETTDataModule
from mlplab.errors import ConfigError
from mlplab.models import DLinear
from mlplab.tasks import ForecastingTask
from tests.conftest import REPO, require_data
from tests.helpers import one_thread  # noqa: F401  (an autouse fixture: tiny models, one torch thread)

RECIPE = str(REPO / "configs" / "timeseries" / "dlinear_etth1_96.yaml")
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
QUICK = [
    "--trainer.max_epochs=2",
    "--trainer.limit_train_batches=20",
    "--trainer.log_every_n_steps=5",
    "--data.init_args.lookback=48",
    "--data.init_args.horizon=24",
    *QUIET,
]


def test_fit_logs_both_scales_and_a_forecast_figure_and_test_reproduces_the_metrics(cli, tmp_path):
    require_data("ETTh1.csv")
    assert (
        cli(
            "fit",
            "--config",
            RECIPE,
            *QUICK,
            "--model.original_scale_metrics=true",
            "--trainer.default_root_dir=run",
        )
        == 0
    )
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/mse", "val/mae", "val/loss", "val/mse_original", "val/mae_original"} <= scalars
    assert "val/forecasts" in events.Tags()["images"] and len(events.Images("val/forecasts")) == 2
    best = run / "checkpoints" / "best.ckpt"
    tested = MLPLabCLI(args=["test", "--config", str(run / "config.yaml"), f"--ckpt_path={best}", *QUIET])
    metrics = tested.trainer.callback_metrics

    # The same figures computed by hand over every test window (2880 + 48 rows -> 2857 windows).
    model, data = tested.model.eval(), tested.datamodule
    history, future, marks, _ = data.on_after_batch_transfer(
        tuple(t.clone() for t in data.windows("test")), 0
    )
    assert len(history) == 2880 - 24 + 1
    with torch.no_grad():
        predictions = model(history, marks)
    assert metrics["test/mse"].item() == pytest.approx(F.mse_loss(predictions, future).item(), rel=1e-4)
    assert metrics["test/mae"].item() == pytest.approx(F.l1_loss(predictions, future).item(), rel=1e-4)
    original = F.mse_loss(predictions * data.std + data.mean, future * data.std + data.mean)
    assert metrics["test/mse_original"].item() == pytest.approx(original.item(), rel=1e-4)


def test_predict_writes_forecasts_and_a_checkpoint_for_another_horizon_is_one_clear_line(
    cli, capsys, tmp_path
):
    require_data("ETTh1.csv")
    assert (
        cli("fit", "--config", RECIPE, *QUICK, "--trainer.max_epochs=1", "--trainer.default_root_dir=run")
        == 0
    )
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    capsys.readouterr()
    best = run / "checkpoints" / "best.ckpt"
    assert cli("predict", "--config", str(run / "config.yaml"), f"--ckpt_path={best}", *QUIET) == 0
    saved = torch.load(
        tmp_path / "run" / "lightning_logs" / "version_1" / "predictions.pt", weights_only=True
    )
    assert saved["predictions"].shape == saved["targets"].shape == (2880 - 24 + 1, 24, 7)
    assert saved["history"].shape == (2857, 48, 7)
    capsys.readouterr()
    status = cli(
        "test", "--config", str(run / "config.yaml"), f"--ckpt_path={best}", "--data.init_args.horizon=96"
    )
    assert status == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        "error: the checkpoint's model was built for horizon 24, the data now gives 96; "
        "set data.init_args.horizon: 24 (or train a model for 96)"
    )


def test_a_model_and_data_of_different_horizons_are_refused(tmp_path):
    folder = require_data("ETTh1.csv")
    task = ForecastingTask(DLinear, lookback=48, horizon=24, num_series=7)
    data = ETTDataModule(lookback=48, horizon=96, data_dir=str(folder))
    task.trainer = type("T", (), {"datamodule": data})()
    with pytest.raises(ConfigError, match="the model was built for horizon 24 but the data gives 96"):
        task.setup("fit")
    history, future = torch.randn(2, 48, 7), torch.randn(2, 96, 7)
    expected = "built for lookback 48 and horizon 24, but a batch has lookback 48 and horizon 96"
    with pytest.raises(ConfigError, match=expected):
        task.training_step((history, future, torch.zeros(2, 48, 4), torch.zeros(2, 96, 4)), 0)


def test_revin_makes_forecasts_shift_equivariant():
    torch.manual_seed(0)
    task = ForecastingTask(DLinear, lookback=32, horizon=8, num_series=3, revin=True, revin_affine=True)
    x = torch.randn(4, 32, 3)
    torch.testing.assert_close(task(x + 5.0), task(x) + 5.0, atol=1e-4, rtol=1e-4)
    plain = ForecastingTask(DLinear, lookback=32, horizon=8, num_series=3)
    assert plain.revin is None and sum(p.numel() for p in task.revin.parameters()) == 6


def test_time_features_reach_families_that_declare_them():
    from mlplab.models import TimeMixer

    task = ForecastingTask(TimeMixer, lookback=32, horizon=8, num_series=2, num_time_features=4)
    assert task.uses_time_features and task.backbone.num_time_features == 4
    assert task(torch.randn(2, 32, 2), torch.rand(2, 32, 4)).shape == (2, 8, 2)
    assert not ForecastingTask(DLinear, lookback=32, horizon=8, num_series=2).uses_time_features


def test_a_family_trained_with_time_features_refuses_a_history_without_them():
    # run.model(history) in a notebook used to forecast without the calendar features, silently otherwise
    from mlplab.models import TimeMixer

    task = ForecastingTask(TimeMixer, lookback=32, horizon=8, num_series=2, num_time_features=4).eval()
    history = torch.randn(2, 32, 2)
    for model in (task, task.inference_module()):
        with pytest.raises(ConfigError, match=r"trained with 4 calendar features.*time_features \(B, L, 4\)"):
            model(history)
    without = ForecastingTask(
        functools.partial(TimeMixer, use_time_features=False), lookback=32, horizon=8, num_series=2,
        num_time_features=4,
    )  # fmt: skip
    assert without(history).shape == (2, 8, 2)  # built without calendar features: nothing to give


def test_predict_says_when_a_forecast_depends_on_the_other_windows_of_its_batch():
    # TimeMixer's official pairing (the ETTh1 recipes): predict's forecasts changed with the batch, unsaid
    from mlplab.data import common
    from mlplab.models import TimeMixer

    common._said.difference_update({m for m in common._said if "other windows of its batch" in m})

    def predict(pairing: str) -> list[str]:
        family = functools.partial(TimeMixer, time_feature_pairing=pairing)
        task = ForecastingTask(family, lookback=32, horizon=8, num_series=2, num_time_features=4).eval()
        batch = (torch.randn(3, 32, 2), torch.randn(3, 8, 2), torch.rand(3, 32, 4), torch.rand(3, 8, 4))
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            task.predict_step(batch, 0)
        return [str(w.message) for w in caught if "other windows of its batch" in str(w.message)]

    assert predict("window") == []
    assert len(predict("official")) == 1


def test_time_features_reach_a_family_configured_from_yaml():
    require_data("ETTh1.csv")
    recipe = str(REPO / "configs" / "timeseries" / "timemixer_etth1_96.yaml")
    built = MLPLabCLI(args=["--config", recipe], run=False)  # jsonargparse hands over a partial
    assert built.model.uses_time_features and built.model.backbone.num_time_features == 4
    assert sum(p.numel() for p in built.model.backbone.parameters()) == 75_433  # with the timeF embedding
    plain = MLPLabCLI(args=["--config", RECIPE], run=False)
    assert not plain.model.uses_time_features


def _small_csv(path, header=("date", "x", "OT"), rows=400, nan_at=None):
    import numpy as np

    values = np.random.default_rng(0).normal(size=(rows, len(header) - 1))
    if nan_at is not None:
        values[nan_at, 0] = np.nan
    dates = np.datetime64("2021-01-01T00:00") + np.arange(rows) * np.timedelta64(1, "h")
    lines = [",".join(header)] + [
        ",".join([str(d).replace("T", " "), *(f"{v:.4f}" for v in row)]) for d, row in zip(dates, values)
    ]
    path.write_text("\n".join(lines) + "\n")


CSV_ERRORS = [
    ({"header": ("time", "x", "OT")}, [], "has no date column 'date' (its columns: time, x, OT)"),
    (
        {"header": ("date", "x", "y")},
        ["--data.target=OT"],
        "has no target 'OT' (its columns: date, x, y); set data.init_args.target",
    ),
    ({"nan_at": 10}, [], "1 missing values (NaN or empty), the first in column 'x' at data row 10"),
    ({"rows": 100}, ["--data.lookback=96"], "fewer than lookback + horizon = 96 + 24"),
]


@pytest.mark.parametrize(("csv_kwargs", "extra", "message"), CSV_ERRORS, ids=[m[:30] for *_, m in CSV_ERRORS])
def test_csv_user_errors_end_the_cli_with_one_line(cli, capsys, tmp_path, csv_kwargs, extra, message):
    _small_csv(tmp_path / "mine.csv", **csv_kwargs)
    config = tmp_path / "mine.yaml"
    config.write_text(
        "model:\n  class_path: ForecastingTask\n  init_args:\n    backbone: DLinear\n"
        "data:\n  class_path: CSVDataModule\n  init_args:\n    file: mine.csv\n    data_dir: .\n"
        "    lookback: 24\n    horizon: 24\ntrainer:\n  max_epochs: 1\n"
    )
    assert cli("fit", "--config", str(config), *extra, *QUIET) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)


# ------------------------------------------------------------------------------------- predict
def _write_config(tmp_path, file="mine.csv", extra=""):
    config = tmp_path / "forecast.yaml"
    config.write_text(
        "model:\n  class_path: ForecastingTask\n  init_args:\n    backbone: DLinear\n"
        f"data:\n  class_path: CSVDataModule\n  init_args:\n    file: {file}\n    data_dir: .\n"
        f"    lookback: 24\n    horizon: 12\n{extra}trainer:\n  max_epochs: 1\n  default_root_dir: run\n"
    )
    return str(config)


def _read_csv(path):
    import csv

    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return rows


def test_predict_writes_forecasts_in_the_data_units_with_dates_and_names(cli, tmp_path):
    import numpy as np

    _small_csv(tmp_path / "mine.csv", header=("date", "load", "OT"), rows=400)
    raw = _read_csv(tmp_path / "mine.csv")
    for row in raw:  # written as 2021-01-01 00:00, read back with the seconds
        row["date"] += ":00"
    assert cli("fit", "--config", _write_config(tmp_path), *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs"
    config = str(run / "version_0" / "config.yaml")
    assert cli("predict", "--config", config, "--ckpt_path=best", *QUIET) == 0
    rows = _read_csv(run / "version_1" / "predictions.csv")
    assert list(rows[0]) == ["origin", "date", "step", "load", "OT", "load_true", "OT_true"]
    assert len(rows) == (80 + 24 - 24 - 12 + 1) * 12  # test windows (20 % of 400 rows) x horizon
    by_date = {row["date"]: row for row in raw}
    first = rows[0]  # the first test window forecasts the rows after the first 320 (70 % + 10 %)
    assert (first["origin"], first["date"], first["step"]) == (raw[319]["date"], raw[320]["date"], "1")
    for row in rows[::97]:
        assert float(row["OT_true"]) == pytest.approx(float(by_date[row["date"]]["OT"]), abs=1e-4)
    saved = torch.load(run / "version_1" / "predictions.pt", weights_only=True)
    np.testing.assert_allclose(
        saved["predictions"].reshape(-1, 2).numpy(),
        [[float(row["load"]), float(row["OT"])] for row in rows],
        rtol=1e-5,
    )

    assert cli("predict", "--config", config, "--ckpt_path=best", "--data.predict_split=future", *QUIET) == 0
    future = _read_csv(run / "version_2" / "predictions.csv")
    assert [row["step"] for row in future] == [str(i) for i in range(1, 13)]
    assert future[0]["origin"] == raw[-1]["date"] and future[0]["date"] == "2021-01-17 16:00:00"
    assert future[-1]["date"] == "2021-01-18 03:00:00" and "OT_true" not in future[0]

    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    assert (
        cli("predict", "--config", config, "--ckpt_path=best", "--predictions.table_format=parquet", *QUIET)
        == 0
    )
    table = pq.read_table(run / "version_3" / "predictions.parquet").to_pydict()
    assert [float(v) for v in table["OT"][:5]] == pytest.approx([float(r["OT"]) for r in rows[:5]], rel=1e-6)
    assert str(table["date"][0]) == rows[0]["date"]


def test_predict_uses_the_checkpoint_scaler_when_the_file_has_grown(tmp_path):
    task = ForecastingTask(DLinear, lookback=8, horizon=4, num_series=2)
    task.series_mean.copy_(torch.tensor([10.0, -3.0]))
    task.series_std.copy_(torch.tensor([2.0, 0.5]))
    data = type("Data", (), {"mean": torch.tensor([11.0, -2.0]), "std": torch.tensor([3.0, 1.0])})()
    task._trainer = type("T", (), {"datamodule": data})()
    history = torch.randn(3, 8, 2)  # standardised with the data's statistics
    outputs = task.predict_step((history, torch.full((3, 4, 2), float("nan")), torch.zeros(3, 8, 0), None), 0)
    original = history * data.std + data.mean
    torch.testing.assert_close(outputs["history"], original)
    expected = task((original - task.series_mean) / task.series_std) * task.series_std + task.series_mean
    torch.testing.assert_close(outputs["predictions"], expected)
    assert torch.isnan(outputs["targets"]).all()


def test_test_and_validate_of_a_grown_file_use_the_checkpoint_scaler(tmp_path, caplog):
    # The file grows by 200 rows of larger values after training: its training split's statistics move.
    # test and validate standardise with the checkpoint's scaler, as predict does, and say once that the
    # rows differ.
    import logging

    import numpy as np

    _small_csv(tmp_path / "mine.csv", rows=400)
    built = MLPLabCLI(args=["fit", "--config", _write_config(tmp_path), *QUIET])
    assert built.trainer.checkpoint_callback.best_model_path
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    best = run / "checkpoints" / "best.ckpt"
    scaler = torch.load(best, weights_only=True)["CSVDataModule"]["preprocessing"]
    assert scaler["num_rows"] == 400
    grown = np.random.default_rng(1).normal(loc=5.0, scale=3.0, size=(200, 2))
    dates = np.datetime64("2021-01-01T00:00") + np.arange(400, 600) * np.timedelta64(1, "h")
    with open(tmp_path / "mine.csv", "a") as handle:
        for date, row in zip(dates, grown):
            handle.write(",".join([str(date).replace("T", " "), *(f"{v:.4f}" for v in row)]) + "\n")
    caplog.set_level(logging.INFO)
    for stage in ("test", "validate"):
        evaluated = MLPLabCLI(
            args=[stage, "--config", str(run / "config.yaml"), f"--ckpt_path={best}", *QUIET]
        )
        data, model = evaluated.datamodule, evaluated.model.eval()
        torch.testing.assert_close(data.mean, torch.tensor(scaler["mean"]))
        torch.testing.assert_close(data.std, torch.tensor(scaler["std"]))
        # by hand: the split's rows of the grown file, standardised with the checkpoint's mean and std
        rows = np.array(
            [
                [float(v) for v in line.split(",")[1:]]
                for line in (tmp_path / "mine.csv").read_text().split("\n")[1:]
                if line
            ]
        )
        split = "test" if stage == "test" else "val"
        start, stop = data.borders(600)[split]
        series = torch.tensor(
            (rows[start:stop] - scaler["mean"]) / np.array(scaler["std"]), dtype=torch.float32
        )
        history = series[:-12].unfold(0, 24, 1)[: stop - start - 24 - 12 + 1].transpose(1, 2)
        future = series[24:].unfold(0, 12, 1)[: stop - start - 24 - 12 + 1].transpose(1, 2)
        with torch.no_grad():
            expected = F.mse_loss(model(history), future).item()
        logged = evaluated.trainer.callback_metrics[f"{split}/mse"].item()
        assert logged == pytest.approx(expected, rel=1e-4)
    said = [r.getMessage() for r in caplog.records if "rows, 400 when the checkpoint" in r.getMessage()]
    assert said == [
        "mine.csv has 600 rows, 400 when the checkpoint's model was trained: the splits follow the file "
        "as it is now, standardised with the checkpoint's scaler (the training split's mean and std then)"
    ]


def test_a_checkpoint_trained_on_other_series_is_one_clear_line(cli, capsys, tmp_path):
    # Another target reorders the series (the target goes last): the model, and the checkpoint's scaler
    # in predict, would read each series as another one. Fewer series: the hint names the settings.
    _small_csv(tmp_path / "mine.csv", header=("date", "a", "b", "OT"))
    assert cli("fit", "--config", _write_config(tmp_path), *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    best = f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"
    for stage in ("test", "predict"):
        capsys.readouterr()
        assert cli(stage, "--config", str(run / "config.yaml"), best, "--data.target=a", *QUIET) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            "error: the checkpoint's model was trained on the series a, b, OT in this order, the data now "
            "gives b, OT, a; use the data settings it was trained with (file, columns, features, target)"
        )
    capsys.readouterr()
    assert cli("test", "--config", str(run / "config.yaml"), best, "--data.features=S", *QUIET) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: the checkpoint's model was trained on the series a, b, OT in this order, the data now "
        "gives OT; use the data settings it was trained with (file, columns, features, target)"
    )


def test_a_timemixer_recipe_smoke_run_too_short_for_its_one_cycle_is_one_line(cli, capsys, tmp_path):
    require_data("ETTh1.csv")
    recipe = str(REPO / "configs" / "timeseries" / "timemixer_etth1_96.yaml")
    assert (
        cli("fit", "--config", recipe, "--trainer.max_steps=5", "--trainer.default_root_dir=run", *QUIET) == 2
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: model.lr_scheduler: OneCycleLR cannot be built for a run of 5 optimiser steps (float "
        "division by zero); run more (or fewer) steps, or set its total_steps"
    )


def test_parquet_without_pyarrow_is_one_line(cli, capsys, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    _small_csv(tmp_path / "mine.csv")
    status = cli("fit", "--config", _write_config(tmp_path), "--predictions.table_format=parquet", *QUIET)
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: predictions.table_format parquet needs the pyarrow package, which is not installed: "
        "pip install 'mlplab[parquet]' (or pip install pyarrow), or use csv"
    )
