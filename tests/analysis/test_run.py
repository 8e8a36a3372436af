"""``mlplab.analysis.run.load_run``: the task and DataModule of a run directory, as it was trained."""

from __future__ import annotations

import numpy as np
import torch

from mlplab.analysis.run import load_run

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def _write_csv(path, rows: int, loc: float) -> None:
    values = np.random.default_rng(rows).normal(loc=loc, size=(rows, 2))
    dates = np.datetime64("2021-01-01T00:00") + np.arange(rows) * np.timedelta64(1, "h")
    lines = ["date,x,OT"] + [
        f"{str(d).replace('T', ' ')},{a:.4f},{b:.4f}" for d, (a, b) in zip(dates, values)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_the_datamodule_of_a_grown_csv_standardises_with_the_checkpoint_scaler(cli, tmp_path):
    # The analysis loader built the DataModule from config.yaml alone, so a file grown since the fit was
    # standardised with statistics recomputed from it, not the scaler the model was trained with.
    _write_csv(tmp_path / "mine.csv", 300, 0.0)
    config = tmp_path / "run.yaml"
    config.write_text(
        "model:\n  class_path: ForecastingTask\n  init_args:\n    backbone: DLinear\n"
        "data:\n  class_path: CSVDataModule\n  init_args:\n    file: mine.csv\n    data_dir: .\n"
        "    lookback: 24\n    horizon: 12\n"
        "trainer:\n  max_epochs: 1\n  limit_train_batches: 2\n  limit_val_batches: 1\n"
        "  default_root_dir: run\n"
    )
    assert cli("fit", "--config", str(config), *QUIET) == 0
    _write_csv(tmp_path / "mine.csv", 500, 4.0)  # the file has grown, by larger values

    run = load_run("run/lightning_logs/version_0")
    run.datamodule.setup("test")
    trained = run.checkpoint["CSVDataModule"]["preprocessing"]
    torch.testing.assert_close(run.datamodule.mean, torch.tensor(trained["mean"]))
    torch.testing.assert_close(run.datamodule.std, torch.tensor(trained["std"]))
    assert run.datamodule.num_rows == 500 and trained["num_rows"] == 300
