"""The GPU benchmark scripts stay runnable: a tiny CPU smoke run of each loop they compare."""

from __future__ import annotations

import csv
import json
import runpy
import sys

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


def run_official_check(name: str, *args: str) -> None:
    """Run ``benchmarks/<name> ARGS`` in this process, letting its ``SystemExit`` through."""
    argv, path_entries = sys.argv[:], sys.path[:]
    path = REPO / "benchmarks" / name
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = argv, path_entries


@pytest.mark.parametrize(
    ("script", "option", "expected"),
    [
        ("vision_official_check.py", "--maxim", "github.com/google-research/maxim (maxim/models/maxim.py)"),
        ("vision_official_check.py", "--strip-mlp", "github.com/Med-Process/Strip_MLP (models/strip_mlp.py)"),
        ("sequence_official_check.py", "--nanogpt", "github.com/karpathy/nanoGPT (model.py)"),
        ("timeseries_official_check.py", "--dlinear", "github.com/cure-lab/LTSF-Linear (models/DLinear.py)"),
        (
            "tabular_official_check.py",
            "--finalmlp",
            "github.com/reczoo/FuxiCTR (model_zoo/FinalMLP/src/FinalMLP.py)",
        ),
        (
            "fields_official_check.py",
            "--siren",
            "github.com/vsitzmann/siren (explore_siren.ipynb, modules.py)",
        ),
        ("timemixer_official_check.py", "--official", "github.com/kwuking/TimeMixer (models/TimeMixer.py)"),
    ],
)
def test_official_check_names_a_bad_checkout(script, option, expected, tmp_path):
    # CI has no official code: a wrong path ends in one line naming the option, the path and what it needs
    missing = tmp_path / "nonexistent"
    with pytest.raises(SystemExit) as exit_:
        run_official_check(script, option, str(missing))
    assert str(exit_.value) == f"error: {option} {missing}: no such folder; expected a checkout of {expected}"


def test_official_check_names_the_missing_files(tmp_path):
    (tmp_path / "modules.py").write_text("")
    with pytest.raises(SystemExit) as exit_:
        run_official_check("fields_official_check.py", "--siren", str(tmp_path))
    assert str(exit_.value) == (
        f"error: --siren {tmp_path}: no explore_siren.ipynb there; expected a checkout of "
        "github.com/vsitzmann/siren (explore_siren.ipynb, modules.py)"
    )


def test_official_check_exit_status(capsys):
    official_code = runpy.run_path(str(REPO / "benchmarks" / "official_code.py"))
    rows = [{"family": "A", "variant": "x", "agree": True}, {"family": "B", "variant": "y", "agree": True}]
    official_code["exit_status"](rows, "agree")  # all agree: returns
    rows[1]["agree"] = False
    with pytest.raises(SystemExit) as exit_:
        official_code["exit_status"](rows, "agree")
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == "error: 1 comparison(s) missed their bound: B y"
