"""A stuck multi-process run ends in one line; Ctrl-C and SIGTERM stop every process.

Each test starts ``mlplab fit --trainer.devices 2`` (Lightning's launcher: rank 0 starts rank 1) on a
tiny Hourglass MLP and the offline digits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.ddp.conftest import TWO_PROCESSES, image_restoration, mlplab_command, process_env

STALL = "tests.ddp.callbacks.StallOnRank"
SLOW = "tests.ddp.callbacks.SlowSteps"


def start(root: Path, *extra: str) -> subprocess.Popen:
    """A 2-process fit of many epochs, in a session of its own (to be signalled as a terminal does)."""
    fit = image_restoration(root / "run", "denoise", 32, "--trainer.max_epochs", "1000", *TWO_PROCESSES)
    command = mlplab_command(*fit, *extra)
    return subprocess.Popen(
        command, cwd=root, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def processes_of(root: Path) -> list[str]:
    """The processes still running a command that names ``root`` (none once a run has ended)."""
    found = subprocess.run(["pgrep", "-f", str(root / "run")], capture_output=True, text=True)
    return found.stdout.split()


def wait_for(paths: list[Path], process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_stalled_process_ends_the_run_in_one_line_naming_rank_and_step(tmp_path):
    # rank 1 stops making progress at step 2: rank 0 waits for it in the step's first collective
    run = start(tmp_path, "--watchdog.timeout_s", "3", f"--trainer.callbacks+={STALL}",
                "--trainer.callbacks.step=2")  # fmt: skip
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 1
    (line,) = error_lines(stderr)
    where = "at training step 2 (epoch 0, batch 2):"  # in its forward pass: DDP broadcasts BatchNorm buffers
    assert line.startswith(f"error: rank 0 of 2 made no progress for 3 s {where}")
    assert "stopping every process" in line
    assert "Traceback" not in stderr
    assert processes_of(tmp_path) == []


def test_sigterm_to_rank_0_stops_every_process_at_one_step_with_a_checkpoint(tmp_path):
    run = start(tmp_path, f"--trainer.callbacks+={SLOW}", f"--trainer.callbacks.folder={tmp_path}")
    wait_for([tmp_path / "pid.rank0", tmp_path / "pid.rank1"], run)
    time.sleep(1.0)
    os.kill(int((tmp_path / "pid.rank0").read_text()), signal.SIGTERM)  # as `timeout` or a scheduler does
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "SIGTERM: every process stops at the end of this step and writes last.ckpt" in stderr
    assert error_lines(stderr) == [] and "Traceback" not in stderr
    (last,) = (tmp_path / "run").rglob("last.ckpt")
    assert torch.load(last, weights_only=False)["global_step"] > 0
    assert processes_of(tmp_path) == []


@pytest.mark.slow
def test_ctrl_c_stops_a_stalled_run_after_the_grace_period(tmp_path):
    run = start(tmp_path, "--watchdog.timeout_s", "600", "--watchdog.signal_grace_s", "3",
                f"--trainer.callbacks+={STALL}", "--trainer.callbacks.step=2",
                f"--trainer.callbacks+={SLOW}", f"--trainer.callbacks.folder={tmp_path}")  # fmt: skip
    wait_for([tmp_path / "pid.rank0", tmp_path / "pid.rank1"], run)
    time.sleep(5.0)  # rank 1 is stalled at step 2, rank 0 waits for it in the all-reduce
    began = time.monotonic()
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal: every process of the group
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 128 + signal.SIGINT
    assert time.monotonic() - began < 60
    (line,) = error_lines(stderr)
    assert line.startswith("error: rank 0 of 2 stopped by Ctrl-C: no progress for 3 s")
    assert processes_of(tmp_path) == []
