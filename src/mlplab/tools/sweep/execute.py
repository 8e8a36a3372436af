"""Running a sweep's runs: each in its own process, by one of three engines, never one run twice.

Every run is a process of its own (:mod:`mlplab.tools.sweep.worker`, started with the run's resolved
config), so a crash, an out-of-memory kill or a hang in one run cannot take the sweep down, and a run
may use several devices (Lightning starts its other ranks from that process's command). The engines
only decide where and how many of these processes run at once:

* ``sequential`` (default): one after the other, on this machine;
* ``ray``: Ray Tune trials, ``--workers`` at once, each with its CPUs and GPUs (``mlplab[ray]``);
* ``slurm``: a SLURM job array through submitit, ``--workers`` at once (``mlplab[slurm]``); submitit's
  ``local`` and ``debug`` executors run the same path without SLURM.

Two locks keep work from being done twice: ``OUT/sweep.lock`` is held by the sweep command for as long
as it runs (a second sweep on the same folder waits or stops with one line), and
``OUT/runs/<run id>/run.lock`` by whoever trains that run (a run still training, e.g. in a SLURM job
left from an interrupted sweep, is skipped rather than started twice).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from filelock import FileLock, Timeout

import mlplab
from mlplab.errors import ConfigError
from mlplab.tools.sweep.record import (
    ERROR_FILE,
    LOG_FILE,
    RESULT_FILE,
    RUN_CONFIG,
    RUN_FILE,
    RunRecord,
    read_result,
)

SWEEP_LOCK = "sweep.lock"
RUN_LOCK = "run.lock"
WORKER_MODULE = "mlplab.tools.sweep.worker"
ENGINES = ("sequential", "ray", "slurm")
#: How long a run's processes get to stop after an interruption before they are killed.
STOP_GRACE_S = 30.0

Log = Callable[[str], None]


class SweepLocked(ConfigError):
    """Another sweep is running in the same output folder."""


def check_not_locked(out: Path) -> None:
    """Raise :class:`SweepLocked` now when another sweep holds ``out`` (before minutes of planning)."""
    if (out / SWEEP_LOCK).is_file():
        with sweep_lock(out, wait=False, log=lambda line: None):
            pass


@contextmanager
def sweep_lock(out: Path, wait: bool, log: Log) -> Iterator[None]:
    """Hold ``OUT/sweep.lock`` while the body runs; wait for it, or raise :class:`SweepLocked`.

    The lock is an OS file lock, so it is released when its process ends in any way (no stale lock
    survives a kill).
    """
    lock = FileLock(str(out / SWEEP_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise SweepLocked(
                f"another sweep is running in {out} (it holds {out / SWEEP_LOCK}): wait for it to finish, "
                "run again with --wait, or use another --out"
            ) from None
        log(f"waiting for the other sweep running in {out} to finish ...")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------- one run
def prepare(run: RunRecord) -> None:
    """Write the run's resolved config (``run.yaml``, its folder as ``default_root_dir``) and ``run.json``."""
    folder = run.folder
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(run.config)
    config["trainer"] = {**(config.get("trainer") or {}), "default_root_dir": str(folder)}
    (folder / RUN_CONFIG).write_text(
        f"# mlplab sweep run {run.run_id}: `mlplab fit --config {folder / RUN_CONFIG}` trains it again\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    run.write(RUN_FILE)


def execute_run(run: RunRecord, retry_failed: bool = False) -> RunRecord | None:
    """Train one run in a process of its own and return its result (or why it failed).

    Returns ``None`` when another process holds the run's lock (it is training the run right now).
    A finished result found once the lock is held is returned as it is (another process finished the
    run since it was planned), unless it failed and ``retry_failed`` is set.

    Raises:
        KeyboardInterrupt: When the sweep is interrupted; the run's processes are stopped first and
            nothing is recorded, so the run starts again next time.
    """
    folder = run.folder
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    try:
        finished = read_result(folder)
        if finished is not None and (finished.status == "ok" or not retry_failed):
            return finished
        if not (folder / RUN_CONFIG).is_file() or not (folder / RUN_FILE).is_file():
            prepare(run)
        (folder / RESULT_FILE).unlink(missing_ok=True)
        (folder / ERROR_FILE).unlink(missing_ok=True)
        start = time.monotonic()
        code = launch_worker(folder, run.cwd)
        result = read_result(folder)
        if result is None:  # the process died without writing: killed, out of memory, a hard crash
            result = RunRecord.from_json({**run.to_json(), "config": {}})
            result.status, result.error = "failed", exit_reason(code, folder / LOG_FILE)
            log_tail = _tail(folder / LOG_FILE, 200)
            (folder / ERROR_FILE).write_text(f"{result.error}\n\nlast lines of {LOG_FILE}:\n{log_tail}")
        result.wall_time_s = round(time.monotonic() - start, 1)  # the whole process, its start included
        result.write(RESULT_FILE)
        return result
    finally:
        lock.release()


def worker_command(folder: Path) -> list[str]:
    """The command of a run's process."""
    return [sys.executable, "-m", WORKER_MODULE, f"--config={folder / RUN_CONFIG}"]


def launch_worker(folder: Path, cwd: str = "") -> int:
    """Run the worker of the run in ``folder`` to its end; return its exit status (negative: a signal).

    The worker starts a session of its own, so that everything it starts (the other ranks of a run
    with several devices) can be stopped together: on an interruption of the sweep they get SIGINT
    (Lightning's graceful stop), then SIGKILL after :data:`STOP_GRACE_S`; after the worker ends, any
    rank it left behind is killed.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    package_root = str(Path(mlplab.__file__).resolve().parents[1])  # the worker imports this mlplab
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    posix = os.name == "posix"
    with open(folder / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            worker_command(folder),
            cwd=cwd or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=posix,
        )
        try:
            return process.wait()
        except BaseException:
            _stop(process, posix)
            raise
        finally:
            if posix:
                _signal_group(process.pid, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(process: subprocess.Popen, posix: bool) -> None:
    """Stop a run's processes: SIGINT (SIGTERM off POSIX), then a kill after the grace period."""
    if posix:
        _signal_group(process.pid, signal.SIGINT)
    else:
        process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_ERROR_LINE = re.compile(r"^(error: .+|[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*)$")


def exit_reason(code: int, log: Path) -> str:
    """One line saying why a run's process ended without a result."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the run's process was killed by {name}{hint}"
    lines = [line.strip() for line in _tail(log, 200).splitlines()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    if errors:
        return f"the run's process ended with status {code}: {errors[-1]}"
    return f"the run's process ended with status {code} without a result"


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------- engines
def run_sequential(
    runs: list[RunRecord],
    retry_failed: bool,
    started: Callable[[RunRecord], None],
    done: Callable[[RunRecord, RunRecord | None], None],
) -> None:
    """Run one after the other: ``started(run)`` before each, ``done(run, result)`` after it.

    ``result`` is ``None`` when another process holds the run's lock (it is training it).
    """
    for run in runs:
        started(run)
        done(run, execute_run(run, retry_failed))


def _ray_trial(config: dict[str, Any]) -> dict[str, Any]:
    """One Ray Tune trial: a planned run, started from the Ray worker as a process of its own."""
    run = RunRecord.from_json(config["run"])
    os.chdir(run.cwd or ".")
    result = execute_run(run, config["retry_failed"])
    if result is None:
        return {"status": "locked"}
    return {key: getattr(result, key) for key in ("status", "best_val", "test", "wall_time_s")}


def run_with_ray(
    runs: list[RunRecord],
    out: Path,
    workers: int,
    cpus_per_run: float,
    gpus_per_run: float | None,
    retry_failed: bool,
) -> None:
    """Run the planned runs as Ray Tune trials, ``workers`` at a time (each writes its own result).

    Ray gives each trial ``gpus_per_run`` GPUs (it sets ``CUDA_VISIBLE_DEVICES``, which the run's
    process inherits); ``None`` shares the visible GPUs out, at most one per run.
    """
    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise ConfigError(
            "--engine ray needs Ray Tune: pip install 'mlplab[ray]' (or 'ray[tune]'), "
            "or use --engine sequential"
        ) from error
    if gpus_per_run is None:
        import torch

        gpus = torch.cuda.device_count()
        gpus_per_run = min(1.0, gpus / workers) if gpus else 0.0
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, configure_logging=False)
    space = [{**run.to_json(), "config": run.config} for run in runs]
    tuner = tune.Tuner(
        tune.with_resources(_ray_trial, {"cpu": cpus_per_run, "gpu": gpus_per_run}),
        param_space={"run": tune.grid_search(space), "retry_failed": retry_failed},
        tune_config=tune.TuneConfig(max_concurrent_trials=workers),
        run_config=tune.RunConfig(
            storage_path=str(out / "ray"), name=time.strftime("sweep-%Y%m%d-%H%M%S"), verbose=1
        ),
    )
    tuner.fit()


@dataclass
class SlurmOptions:
    """How ``--engine slurm`` submits the runs: one job array, one array task per run.

    Args:
        partition: The SLURM partition (default: the cluster's).
        time_min: Time limit of each run's job, in minutes.
        mem_gb: Memory of each run's job, in GB (default: the partition's).
        account: The SLURM account to charge (optional).
        qos: The SLURM quality of service (optional).
        additional: More sbatch options, e.g. {constraint: a100} (submitit's slurm_additional_parameters).
        cluster: slurm (sbatch on this machine), or submitit's local executor (processes on this
            machine) or debug executor (in this process, one at a time): both run the same path
            without SLURM.
        poll_s: How often the sweep checks its jobs, in seconds.
    """

    partition: str | None = None
    time_min: int = 240
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    additional: dict[str, Any] = field(default_factory=dict)
    cluster: Literal["slurm", "local", "debug"] = "slurm"
    poll_s: float = 10.0


def _slurm_task(run: RunRecord, retry_failed: bool) -> RunRecord | None:
    """One array task: rank 0 of the task's SLURM tasks executes the run; the others are its other ranks."""
    if int(os.environ.get("SLURM_PROCID", "0")) != 0:
        launch_worker(run.folder, run.cwd)  # Lightning's SLURM environment gives this process its rank
        return None
    return execute_run(run, retry_failed)


def run_with_slurm(
    runs: list[RunRecord],
    out: Path,
    options: SlurmOptions,
    workers: int,
    cpus_per_run: float,
    gpus_per_run: float | None,
    retry_failed: bool,
    log: Log,
    done: Callable[[RunRecord, RunRecord | None], None],
) -> None:
    """Submit the runs as one SLURM job array through submitit and collect the results as jobs end.

    Each array task gets ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs with one SLURM task per GPU
    (Lightning's SLURM layout, so a run with ``trainer.devices`` equal to it, or ``auto``, uses them
    all). Interrupting the sweep cancels the jobs that have not finished.
    """
    try:
        import submitit
    except ImportError as error:
        raise ConfigError(
            "--engine slurm needs submitit: pip install 'mlplab[slurm]' (or 'submitit'), "
            "or use --engine sequential"
        ) from error
    if options.cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError(
            "--engine slurm: no sbatch on this machine; run the sweep on a SLURM login node, or try the "
            "path here with --slurm.cluster local"
        )
    gpus = int(gpus_per_run or 0)
    if gpus_per_run is not None and gpus_per_run != gpus:
        raise ConfigError(f"--gpus-per-run: SLURM gives whole GPUs, got {gpus_per_run}")
    executor = submitit.AutoExecutor(folder=str(out / "slurm" / "%j"), cluster=options.cluster)
    parameters: dict[str, Any] = {
        "name": f"mlplab-sweep-{out.name}",
        "timeout_min": options.time_min,
        "cpus_per_task": max(1, int(cpus_per_run)),
        "tasks_per_node": max(1, gpus) if options.cluster == "slurm" else 1,
        "gpus_per_node": gpus,
        "slurm_array_parallelism": workers,
    }
    if options.mem_gb is not None:
        parameters["mem_gb"] = options.mem_gb
    for key, value in (("partition", options.partition), ("account", options.account), ("qos", options.qos)):
        if value is not None:
            parameters[f"slurm_{key}"] = value
    if options.additional:
        parameters["slurm_additional_parameters"] = dict(options.additional)
    executor.update_parameters(**parameters)
    for run in runs:
        prepare(run)  # the array tasks (and their other ranks) read the run's files
    with executor.batch():
        jobs = [executor.submit(_slurm_task, run, retry_failed) for run in runs]
    array = jobs[0].job_id.split("_")[0] if jobs else ""
    log(f"submitted {len(jobs)} runs as {options.cluster} jobs ({array}); "
        f"their logs are in {out / 'slurm'}")  # fmt: skip
    waiting = dict(zip(range(len(jobs)), zip(runs, jobs)))
    try:
        while waiting:
            for index, (run, job) in list(waiting.items()):
                if options.cluster != "debug" and not job.done():
                    continue
                del waiting[index]
                try:
                    result = job.result()
                except Exception as error:  # the job itself failed: cancelled, timed out, node failure
                    result = read_result(run.folder) or _job_failure(run, job, error)
                done(run, result)
            if waiting:
                time.sleep(options.poll_s)
    except BaseException:
        for _, job in waiting.values():
            try:
                job.cancel(check=False)
            except Exception:  # noqa: S110 - best effort: the job may be gone already
                pass
        raise


def _job_failure(run: RunRecord, job: Any, error: BaseException) -> RunRecord:
    """A failed record for a run whose job ended without a result."""
    result = RunRecord.from_json({**run.to_json(), "config": {}})
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    result.status, result.error = "failed", f"job {job.job_id} ended without a result: {reason}"
    (run.folder / ERROR_FILE).write_text(f"{result.error}\n\n{error}")
    result.write(RESULT_FILE)
    return result
