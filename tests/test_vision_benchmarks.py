"""The vision GPU benchmarks stay runnable: tiny CPU smoke runs of each script and mode."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, require_data, run_script

THROUGHPUT = [REPO / "benchmarks" / "vision_throughput.py", "--small", "--device=cpu"]
THROUGHPUT += ["--no-compile", "--steps=2", "--warmup=1", "--images=128", "--batch-size=16"]


def run(command: list, tmp_path) -> list[dict]:
    """Run the script ``command[0]`` with ``command[1:]`` in this process (as a user runs it); its records."""
    run_script(command[0], *command[1:])
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]


def test_family_throughput_smoke(tmp_path):
    command = [*THROUGHPUT, "--families", "Activator", "MAXIM", "--restoration-batch-size=2"]
    records = run([*command, f"--scratch={tmp_path}", f"--out={tmp_path / 'out.jsonl'}"], tmp_path)
    assert [(r["family"], r["recipe"]) for r in records] == [
        ("Activator", "activator_cifar10"), ("MAXIM", "maxim_cifar10"), ("MAXIM", "maxim_cifar10_denoise")
    ]  # fmt: skip
    assert records[1]["task"] == "ImageRestoration"
    assert all(r["mlplab_samples_per_sec"] > 0 and r["params"] > 0 for r in records)


def test_mixer_against_handwritten_loop_smoke(tmp_path):
    records = run(
        [*THROUGHPUT, "--mode=mixer", f"--scratch={tmp_path}", f"--out={tmp_path / 'out.jsonl'}"], tmp_path
    )
    (record,) = records
    assert record["handwritten_samples_per_sec"] > 0 and record["mlplab_samples_per_sec"] > 0
    assert record["ratio"] == pytest.approx(
        record["mlplab_samples_per_sec"] / record["handwritten_samples_per_sec"], rel=0.01
    )


def test_cifar10_table_smoke(tmp_path):
    archive = require_data("cifar10-jpg.tar.gz") / "cifar10-jpg.tar.gz"
    command = [
        REPO / "benchmarks" / "vision_cifar10.py",
        "--recipes",
        "activator_cifar10",
    ]
    command += [
        "--smoke",
        "--device=cpu",
        f"--jpeg={archive}",
        f"--root={tmp_path}",
        f"--out={tmp_path / 'out.jsonl'}",
    ]
    (record,) = run(command, tmp_path)
    assert record["family"] == "Activator" and record["params"] == 2_650_890
    assert 0 <= record["test_acc"] <= 100 and record["train_seconds"] > 0
