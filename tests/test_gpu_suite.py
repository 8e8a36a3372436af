"""The GPU suite cannot rot: every section runs at toy size on the CPU, and its time caps hold."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_data_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_prepare  # noqa: E402
import gpu_suite  # noqa: E402

DATA_SECTIONS = {"hourglass_mnist", "cifar10"}


def read_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "gpu_suite.jsonl").read_text().splitlines()]


def test_smoke_runs_every_section(tmp_path, capsys):
    gpu_suite.main(["--out", str(tmp_path / "out"), "--smoke", "--scratch", str(tmp_path / "runs")])
    rows = read_rows(tmp_path / "out")
    assert rows[0]["section"] == "environment" and rows[0]["smoke"] is True
    assert all({"device", "torch", "lightning", "commit"} <= row.keys() for row in rows)
    sections = {row["section"] for row in rows}
    assert sections == {"environment", *gpu_suite.SECTION_NAMES}
    have_data = shared_data_dir() is not None
    for row in rows[1:]:
        expected = "skipped" if row["section"] in DATA_SECTIONS and not have_data else "ok"
        assert row["status"] == expected, row
    by_section = {}
    for row in rows:
        by_section.setdefault(row["section"], []).append(row)
    assert by_section["ceilings"][0]["bf16_matmul_tflops"] >= 0
    assert {row["model"] for row in by_section["fit_loop"]} == {"hourglass", "bmlp", "mlp_mixer"}
    assert all(row["mlplab_samples_per_sec"] > 0 and row["ratio"] > 0 for row in by_section["fit_loop"])
    assert by_section["nanogpt"][0]["steps"] == 4 and by_section["nanogpt"][0]["validations"]
    families = [row["family"] for row in by_section["sequence"]]
    assert families == gpu_suite.SEQUENCE_FAMILIES  # no kernel library on a CPU: each family once
    assert all(row["backend_used"] == "torch" for row in by_section["sequence"])
    assert all(row["tokens_per_sec"] and row["params"] > 0 for row in by_section["sequence"])
    if have_data:
        assert all(row["test_psnr"] > 0 for row in by_section["hourglass_mnist"])
        assert 0 <= by_section["cifar10"][0]["test_acc"] <= 100
        runs = tmp_path / "runs"
        assert not list(runs.rglob("*.ckpt")), "measured runs' checkpoints are deleted"
        assert (runs / "cifar10").is_dir() and (runs / "hourglass_mnist").is_dir()
    table = (tmp_path / "out" / "gpu_suite.md").read_text()
    assert table.count("\n| fit_loop |") == 3 and table in capsys.readouterr().out


def test_time_caps_and_failures_do_not_stop_the_suite(tmp_path, monkeypatch):
    def sleeps(suite, deadline):
        with gpu_suite.hard_limit(0.5):
            time.sleep(5)

    def fails(suite, deadline):
        raise RuntimeError("CUDA out of memory (simulated)")

    def works(suite, deadline):
        assert 0 < deadline.left() <= suite.budget_s
        suite.record("works", status="ok", left=round(deadline.left()))

    monkeypatch.setattr(
        gpu_suite, "SECTIONS", [("sleeps", 1, sleeps), ("fails", 1, fails), ("works", 1, works)]
    )
    monkeypatch.setattr(gpu_suite, "SECTION_NAMES", ["sleeps", "fails", "works"])
    start = time.monotonic()
    gpu_suite.main(["--out", str(tmp_path), "--smoke", "--budget-s", "30"])
    assert time.monotonic() - start < 5
    statuses = {row["section"]: row["status"] for row in read_rows(tmp_path)}
    assert statuses == {"environment": "ok", "sleeps": "timeout", "fails": "error", "works": "ok"}
    assert "simulated" in next(row for row in read_rows(tmp_path) if row["section"] == "fails")["error"]


def test_recorder_stops_at_the_deadline_between_epochs():
    class Trainer:
        should_stop = False

    recorder = gpu_suite.Recorder("cpu", gpu_suite.Deadline(time.monotonic() + 1.0), whole_epochs=True)
    trainer = Trainer()
    recorder.on_train_epoch_start(trainer, None)
    time.sleep(0.6)  # an epoch of 0.6 s leaves 0.4 s: the next one would not end in time
    recorder.on_train_epoch_end(trainer, None)
    assert trainer.should_stop and recorder.stopped_early


def test_only_runs_the_named_sections_and_refuses_unknown_ones(tmp_path, capsys):
    gpu_suite.main(["--out", str(tmp_path), "--smoke", "--only", "ceilings"])
    assert [row["section"] for row in read_rows(tmp_path)] == ["environment", "ceilings"]
    with pytest.raises(SystemExit) as raised:
        gpu_suite.main(["--out", str(tmp_path), "--only", "everything"])
    assert raised.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_prepared_command_fits_the_device_tool(tmp_path):
    command = gpu_prepare.device_command(450)
    assert len(command) < 2000 and "--budget-s 450" in command and "MLPLAB_DATA=$PWD/.gpu/data" in command
    (tmp_path / "SHA256SUMS").write_text(
        "abc123  mnist/t10k-labels-idx1-ubyte.gz\ndef456 *tinyshakespeare.txt\n"
    )
    assert gpu_prepare.known_checksums(tmp_path) == {
        "mnist/t10k-labels-idx1-ubyte.gz": "abc123",
        "tinyshakespeare.txt": "def456",
    }


def test_the_gpu_tests_command_fits_and_names_files_with_gpu_tests():
    command = gpu_prepare.tests_command()
    assert len(command) < 2000 and "-m gpu" in command and "$OUT/gpu_tests.log" in command
    for path in gpu_prepare.GPU_TESTS:
        assert path in command and "@pytest.mark.gpu" in (REPO / path).read_text(), path


def test_families_with_an_installed_kernel_library_run_with_both_backends(monkeypatch):
    only_fla = lambda module: None if module.startswith("fla") else "missing"  # noqa: E731
    monkeypatch.setattr(gpu_suite, "import_problem", only_fla)
    cases = gpu_suite.sequence_cases("cuda")
    assert ("gla", "torch") in cases and ("gla", "fla") in cases and ("mamba", None) in cases
    assert len(cases) == len(gpu_suite.SEQUENCE_FAMILIES) + 1
    assert gpu_suite.sequence_cases("cpu") == [(family, None) for family in gpu_suite.SEQUENCE_FAMILIES]
