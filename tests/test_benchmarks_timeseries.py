"""The ETTh1 reproduction script stays runnable: one short DLinear run, resumable, a row in the CSV."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from tests.conftest import REPO, require_data


@pytest.mark.slow  # two subprocess runs, about a minute on a busy 2-core CPU
def test_etth1_reproduction_script_smoke(tmp_path):
    require_data("ETTh1.csv")
    command = [sys.executable, str(REPO / "benchmarks" / "timeseries_etth1.py"), f"--out={tmp_path}",
               "--families", "dlinear", "--horizons", "96", "--epochs", "1", "--tag", "smoke",
               "--set", "trainer.limit_train_batches=20", "--set", "trainer.limit_val_batches=5"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 1 and rows[0]["family"] == "dlinear" and rows[0]["horizon"] == "96"
    assert 0 < float(rows[0]["test_mse"]) < 1.5 and float(rows[0]["published_mse"]) == 0.386
    assert int(rows[0]["epochs_run"]) == 1 and float(rows[0]["train_samples_per_sec"]) > 0
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and len(list(csv.DictReader(open(tmp_path / "results.csv")))) == 1  # resumed


def test_timemixer_official_check_says_what_it_needs(tmp_path):
    # The check itself needs a kwuking/TimeMixer checkout (not shipped); without one it says so in one line.
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "timemixer_official_check.py"),
        f"--official={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: --official {tmp_path}: no models/TimeMixer.py there; expected a checkout of "
        "github.com/kwuking/TimeMixer (models/TimeMixer.py)"
    )
