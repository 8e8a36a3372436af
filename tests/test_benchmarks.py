"""The GPU benchmark scripts stay runnable: a tiny CPU smoke run of each loop they compare."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import REPO, run_script


@pytest.mark.parametrize("model", ["hourglass", "bmlp"])
def test_throughput_benchmark_smoke(model, tmp_path):
    command = [f"--model={model}", "--small", "--device=cpu", "--no-compile", "--batch-size=32", "--steps=4"]
    command += ["--warmup=2", "--images=512", f"--scratch={tmp_path}", f"--out={tmp_path / 'out.jsonl'}"]
    run_script(REPO / "benchmarks" / "throughput.py", *command)
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert record["mlplab_samples_per_sec"] > 0 and record["handwritten_samples_per_sec"] > 0
    assert record["ratio"] == pytest.approx(
        record["mlplab_samples_per_sec"] / record["handwritten_samples_per_sec"], rel=0.01
    )


def run_benchmark(name: str, *args: str) -> str:
    """Run ``benchmarks/<name> ARGS`` in this process (the script as a user runs it); its stdout."""
    return run_script(REPO / "benchmarks" / name, *args)


def test_sequence_scans_benchmark_smoke():
    stdout = run_benchmark("sequence_scans.py", "--device=cpu", "--batch=2", "--length=16", "--d-model=8",
                           "--repeats=1", "--warmup=0")  # fmt: skip
    record = json.loads(stdout.strip().splitlines()[-1])
    assert set(record["mamba"]) == {"sequential", "parallel", "parallel_recompute", "chunked"}  # no kernels
    assert set(record["gla"]) == {"recurrent", "chunkwise", "chunked"}
    for form in [*record["mamba"].values(), *record["gla"].values()]:
        assert form["max_abs_difference"] < 1e-4 and form["seconds"] > 0
        assert form["saved_mib"] >= 0 and form["peak_mib"] >= 0
    assert record["mamba_chunked_speedup_over_parallel_recompute"] > 0
    assert record["gla_chunked_speedup_over_chunkwise"] > 0


def test_sequence_shakespeare_benchmark_smoke(tmp_path):
    tiny = [
        "--trainer.limit_val_batches=1",
        "--model.init_args.sample_length=2",
        "--model.backbone.embed_dim=16",
        "--model.backbone.num_heads=2",
    ]  # fmt: skip  (passed through to the CLI)
    run_benchmark("sequence_shakespeare.py", f"--out={tmp_path}", "--device=cpu", "--corpus=pydoc_topics",
                  "--max-steps=2", "--context=16", "--families", "transformer", *tiny)  # fmt: skip
    table = (tmp_path / "shakespeare.md").read_text()
    assert "| transformer | -: torch |" in table and "| cpu |" in table
    with open(tmp_path / "shakespeare.csv") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["peak_memory_gib"]) > 0 and int(row["train_flops_per_token"]) > 0
    assert int(row["train_tokens_per_sec"]) > 0


def test_sequence_mqar_benchmark_smoke(tmp_path):
    run_benchmark("sequence_mqar.py", f"--out={tmp_path}", "--device=cpu", "--preset=64x4", "--widths", "16",
                  "--lrs", "0.001", "--epochs=1", "--train-examples=32", "--test-examples=8", "--families",
                  "transformer", "mamba", "--backend=torch")  # fmt: skip
    table = (tmp_path / "mqar.md").read_text()
    assert "| transformer | 0." in table and "| mamba (torch: torch) |" in table
    assert "| mamba (torch: torch) | 16 |" in table  # the cost table: tokens/s, memory, FLOPs


def test_sequence_memory_benchmark_smoke(tmp_path):
    tiny = ["--data.init_args.preset=64x4", "--data.init_args.num_train_examples=16",
            "--data.init_args.num_test_examples=8", "--data.init_args.batch_size=4",
            "--model.backbone.init_args.embed_dim=8"]  # fmt: skip
    recipe = str(REPO / "configs" / "text" / "transformer_mqar.yaml")
    run_benchmark("sequence_memory.py", f"--out={tmp_path}", "--recipes", recipe, "--threads=1", "--", *tiny)
    run_benchmark("sequence_memory.py", f"--out={tmp_path}", "--recipes", recipe, "--label=guarded",
                  "--limit-gib=0.2", "--", *tiny)  # fmt: skip
    with open(tmp_path / "memory.csv") as handle:
        finished, guarded = list(csv.DictReader(handle))
    assert finished["status"] == "ok" and float(finished["peak_rss_gib"]) > 0.2 and finished["threads"] == "1"
    assert len(finished["train_step_seconds"].split()) == 2  # fast_dev_run 2: two training steps
    assert guarded["status"] == "killed: resident set passed 0.2 GiB"
