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


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "benchmarks" / name), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_sequence_scans_benchmark_smoke():
    result = run_script("sequence_scans.py", "--device=cpu", "--batch=2", "--length=16", "--d-model=8",
                        "--repeats=1", "--warmup=0")  # fmt: skip
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["mamba_max_abs_difference"] < 1e-4 and record["gla_max_abs_difference"] < 1e-4
    assert record["mamba_speedup"] > 0 and record["gla_speedup"] > 0


def test_sequence_shakespeare_benchmark_smoke(tmp_path):
    tiny = [
        "--trainer.limit_val_batches=1",
        "--model.init_args.sample_length=2",
        "--model.backbone.embed_dim=16",
        "--model.backbone.num_heads=2",
    ]  # fmt: skip  (passed through to the CLI)
    run_script("sequence_shakespeare.py", f"--out={tmp_path}", "--device=cpu", "--corpus=pydoc_topics",
               "--max-steps=2", "--context=16", "--families", "transformer", *tiny)  # fmt: skip
    table = (tmp_path / "shakespeare.md").read_text()
    assert "| transformer |" in table and "| cpu |" in table


def test_sequence_mqar_benchmark_smoke(tmp_path):
    run_script("sequence_mqar.py", f"--out={tmp_path}", "--device=cpu", "--preset=64x4", "--widths", "16",
               "--lrs", "0.001", "--epochs=1", "--train-examples=32", "--test-examples=8", "--families",
               "transformer", "gated_conv")  # fmt: skip
    table = (tmp_path / "mqar.md").read_text()
    assert "| transformer | 0." in table and "| gated_conv |" in table
