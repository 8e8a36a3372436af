"""Executing runs: each in its own process (two CPU devices included), locks, interruptions, engines."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import yaml
from filelock import FileLock

from mlplab.errors import ConfigError
from mlplab.tools.sweep import execute
from mlplab.tools.sweep.command import run_sweep
from mlplab.tools.sweep.execute import SlurmOptions, SweepLocked, execute_run
from mlplab.tools.sweep.plan import plan_sweep
from mlplab.tools.sweep.record import RESULT_FILE, RUN_FILE, read_record
from mlplab.tools.sweep.spec import load_sweep
from tests.tools.sweep.conftest import finish, quiet, read_csv, write_sweep

ONE_RUN = {
    "hourglass": {"class_path": "HourglassMLP", "grid": {"embed_dim": [64], "mlp_dim": [8], "depth": [1]}}
}


def fake_worker(calls: list[str], interrupt_at: int = 0):
    """A stand-in for the run's process: records a result in-process (Ctrl-C at call ``interrupt_at``)."""

    def launch(folder, cwd=""):
        calls.append(folder.name)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        record = read_record(folder / RUN_FILE)
        record.status, record.best_val, record.test, record.epochs = "ok", 10.0, 9.0, 1
        record.write(RESULT_FILE)
        return 0

    return launch


def test_a_run_with_two_cpu_devices_completes(tmp_path):
    # Lightning starts the second rank by running the run's process command again (a bare `mlplab`
    # with the in-process sweep of before): the run is a process of its own, so this works.
    spec = load_sweep(write_sweep(tmp_path, families=ONE_RUN, budgets=[9216]),
                      ["--trainer.devices", "2", "--trainer.strategy", "ddp"])  # fmt: skip
    (record,) = run_sweep(spec, tmp_path / "out", log=quiet)
    assert record.status == "ok" and record.best_val > 0 and record.test > 0, record.error
    config = yaml.safe_load((tmp_path / "out" / "runs" / record.run_id / "run.yaml").read_text())
    assert str(config["trainer"]["devices"]) == "2" and config["trainer"]["strategy"] == "ddp"
    log = (tmp_path / "out" / "runs" / record.run_id / "log.txt").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log


def test_an_interrupted_sweep_records_nothing_half_and_resumes(tmp_path, monkeypatch, mlplab, capsys):
    path = write_sweep(tmp_path)
    calls: list[str] = []
    monkeypatch.setattr(execute, "launch_worker", fake_worker(calls, interrupt_at=2))
    assert mlplab("sweep", "--config", str(path), "--out", "out") == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted: finished runs are in out/results.csv; run the same command again to go on"]
    assert len(read_csv(tmp_path / "out" / "results.csv")) == 1  # what finished is already recorded
    assert not (tmp_path / "out" / "runs" / calls[1] / RESULT_FILE).exists()

    resumed: list[str] = []
    monkeypatch.setattr(execute, "launch_worker", fake_worker(resumed))
    assert mlplab("sweep", "--config", str(path), "--out", "out") == 0
    assert calls[0] not in resumed and resumed[0] == calls[1] and len(resumed) == 2
    assert len(read_csv(tmp_path / "out" / "results.csv")) == 3


def test_failed_runs_are_read_back_unless_retried(tmp_path):
    plan = plan_sweep(load_sweep(write_sweep(tmp_path)), tmp_path / "out")
    finish(plan.runs[0], 1.0, status="failed")
    finish(plan.runs[1], 1.0)
    assert plan.pending() == plan.runs[2:]
    assert plan.pending(retry_failed=True) == [plan.runs[0], plan.runs[2]]


def test_a_second_sweep_on_the_same_folder_stops_in_one_line(tmp_path, monkeypatch, mlplab, capsys):
    path = write_sweep(tmp_path)
    (tmp_path / "out").mkdir()
    calls: list[str] = []
    monkeypatch.setattr(execute, "launch_worker", fake_worker(calls))
    with FileLock(str(tmp_path / "out" / "sweep.lock")):
        assert mlplab("sweep", "--config", str(path), "--out", "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [  # said at once, before minutes of counting shapes
        "error: another sweep is running in out (it holds out/sweep.lock): wait for it to finish, "
        "run again with --wait, or use another --out"
    ]
    assert not calls and not (tmp_path / "out" / "runs").exists()  # nothing trained, nothing recorded


def test_a_second_sweep_waits_with_wait_and_trains_nothing_twice(tmp_path, monkeypatch):
    spec = load_sweep(write_sweep(tmp_path))
    plan = plan_sweep(spec, tmp_path / "out")
    calls: list[str] = []
    monkeypatch.setattr(execute, "launch_worker", fake_worker(calls))
    (tmp_path / "out").mkdir()
    holding, lines = threading.Event(), []

    def first_sweep():  # holds the folder; while the second waits, finishes two of the three runs
        with FileLock(str(tmp_path / "out" / "sweep.lock")):
            holding.set()
            deadline = time.monotonic() + 60
            while not any(line.startswith("waiting for") for line in lines) and time.monotonic() < deadline:
                time.sleep(0.05)
            finish(plan.runs[0], 1.0)
            finish(plan.runs[1], 2.0)

    thread = threading.Thread(target=first_sweep)
    thread.start()
    holding.wait(30)
    with pytest.raises(SweepLocked):
        run_sweep(spec, tmp_path / "out", log=quiet)
    records = run_sweep(spec, tmp_path / "out", wait=True, log=lines.append)
    thread.join()
    assert any(line.startswith("waiting for the other sweep running in") for line in lines)
    assert calls == [plan.runs[2].run_id] and len(records) == 3


def test_a_run_locked_by_another_process_is_skipped_not_trained(tmp_path, monkeypatch):
    plan = plan_sweep(load_sweep(write_sweep(tmp_path, families=ONE_RUN, budgets=[9216])), tmp_path / "out")
    (run,) = plan.runs
    calls: list[str] = []
    monkeypatch.setattr(execute, "launch_worker", fake_worker(calls))
    run.folder.mkdir(parents=True)
    with FileLock(str(run.folder / "run.lock")):
        assert execute_run(run) is None
    assert not calls and not (run.folder / RESULT_FILE).exists()
    assert execute_run(run).status == "ok" and len(calls) == 1
    assert execute_run(run).status == "ok" and len(calls) == 1  # finished meanwhile: read back, not repeated


def test_slurm_without_sbatch_says_so(tmp_path):
    if shutil.which("sbatch"):
        pytest.skip("this machine has SLURM")
    pytest.importorskip("submitit")
    spec = load_sweep(write_sweep(tmp_path, families=ONE_RUN, budgets=[9216]))
    with pytest.raises(ConfigError, match="--engine slurm: no sbatch on this machine"):
        run_sweep(spec, tmp_path / "out", engine="slurm", log=quiet)


@pytest.mark.parametrize("cluster", ["debug", pytest.param("local", marks=pytest.mark.slow)])
def test_submitit_runs_the_same_sweep(tmp_path, cluster):
    pytest.importorskip("submitit")
    spec = load_sweep(write_sweep(tmp_path, families=ONE_RUN, budgets=[9216]))
    options = SlurmOptions(cluster=cluster, poll_s=0.2, time_min=10)
    (record,) = run_sweep(spec, tmp_path / "out", engine="slurm", slurm=options, log=quiet)
    assert record.status == "ok" and record.best_val > 0, record.error
    assert read_csv(tmp_path / "out" / "results.csv")[0]["run_id"] == record.run_id
    assert run_sweep(spec, tmp_path / "out", engine="slurm", slurm=options, log=quiet) == [record]  # resumed


@pytest.mark.slow
def test_ray_engine_runs_the_same_sweep(tmp_path):
    pytest.importorskip("ray.tune")
    spec = load_sweep(write_sweep(tmp_path))
    records = run_sweep(spec, tmp_path / "out", engine="ray", workers=2, log=quiet)
    assert len(records) == 3 and {r.status for r in records} == {"ok"}
    assert run_sweep(spec, tmp_path / "out", engine="ray", log=quiet) == records  # resumed: nothing to run


@pytest.mark.gpu
def test_a_run_on_the_gpu_sees_it_from_its_own_process(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    spec = load_sweep(write_sweep(tmp_path, families=ONE_RUN, budgets=[9216]),
                      ["--trainer.accelerator=gpu", "--trainer.devices=1"])  # fmt: skip
    (record,) = run_sweep(spec, tmp_path / "out", log=quiet)
    assert record.status == "ok", record.error
    assert (
        "GPU available: True (cuda), used: True"
        in (tmp_path / "out" / "runs" / record.run_id / "log.txt").read_text()
    )
