"""The GPU benchmark scripts stay runnable: a tiny CPU smoke run of each loop they compare."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("model", ["hourglass", "bmlp"])
def test_throughput_benchmark_smoke(model, tmp_path):
    command = [sys.executable, str(REPO / "benchmarks" / "throughput.py"), f"--model={model}", "--small"]
    command += ["--device=cpu", "--no-compile", "--batch-size=32", "--steps=4", "--warmup=2", "--images=512"]
    command += [f"--scratch={tmp_path}", f"--out={tmp_path / 'out.jsonl'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert record["mlplab_samples_per_sec"] > 0 and record["handwritten_samples_per_sec"] > 0
    assert record["ratio"] == pytest.approx(
        record["mlplab_samples_per_sec"] / record["handwritten_samples_per_sec"], rel=0.01
    )
