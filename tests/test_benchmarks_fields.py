"""The neural-field and KAN benchmark scripts stay runnable: tiny CPU runs of each (slow tier)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_script(name: str, *args: str) -> None:
    command = [sys.executable, str(REPO / "benchmarks" / name), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_fields_image_benchmark_smoke(tmp_path):
    run_script("fields_image.py", f"--out={tmp_path}", "--image=china", "--size=8", "--steps=4",
               "--val-every=2", "--families", "siren", "siren_fresh", "--levels", "5", "60")  # fmt: skip
    with open(tmp_path / "results.csv") as handle:
        rows = {row["family"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"siren", "siren_fresh"} and rows["siren"]["image"] == "china (3, 8, 12)"
    assert json.loads(rows["siren"]["seconds_to"])["60"] is None and float(rows["siren"]["final_psnr"]) > 0
    assert float(rows["siren_fresh"]["fresh_scale"]) in (10, 20, 30, 40, 60, 80, 120)
    assert "| siren_fresh |" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_kan_formulas_benchmark_smoke(tmp_path):
    run_script("kan_formulas.py", f"--out={tmp_path}", "--formulas", "product", "--epochs=10")
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["family"], r["epochs"]) for r in rows] == [("kan", "10"), ("skan", "10")]
    assert all(0 < float(r["test_rmse"]) < 1 for r in rows)
