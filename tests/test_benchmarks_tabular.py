"""The offline tabular benchmark stays runnable: one short run, a row in the CSV, resumable, a summary."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # two subprocesses, each importing Lightning: about half a minute on a busy CPU
def test_tabular_offline_benchmark_smoke(tmp_path):
    command = [sys.executable, str(REPO / "benchmarks" / "tabular_offline.py"), f"--out={tmp_path}",
               "--datasets", "wine", "--models", "mlp", "--seeds", "0", "--epochs", "2"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 1 and rows[0]["dataset"] == "wine" and rows[0]["score_name"] == "test/acc"
    assert 0 <= float(rows[0]["test_acc"]) <= 1 and int(rows[0]["epochs_run"]) == 2
    assert "| wine | acc | mlp |" in result.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and len(list(csv.DictReader(open(tmp_path / "results.csv")))) == 1
