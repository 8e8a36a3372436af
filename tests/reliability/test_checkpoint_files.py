"""Checkpoint writes cannot leave an unreadable file; damaged files are refused before loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mlplab.callbacks import checkpoint as checkpoints
from mlplab.callbacks.checkpoint import (
    atomic_save,
    atomic_save_in_background,
    finish_checkpoint_writes,
    verify_checkpoint_archive,
)
from mlplab.errors import CheckpointError
from tests.conftest import REPO


@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked writers")
def test_killing_a_checkpoint_write_at_any_point_leaves_a_readable_last_ckpt(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.kill_writes", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["point"] for r in reports][-1] == "none" and len(reports) == 8
    held = []
    for report in reports:
        assert report["readable"], report
        assert report["killed"] == (report["point"] != "none"), report
        assert report["outside"] == [], report  # nothing written outside the checkpoint folder
        held.append(report["held"])
    # killed before the rename: the old checkpoint; after it: the new one
    assert held == [0, 0, 0, 0, 0, 0, 1, 2]
    # partial files of killed writes stay in the checkpoint folder until the next write removes them
    assert any(report["partial"] for report in reports[:6])
    assert reports[-1]["partial"] == []


def test_atomic_save_cleans_up_after_a_failed_write_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_save({"state_dict": {}, "step": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle this"):
        atomic_save({"state_dict": {}, "bad": Unpicklable()}, target)
    assert os.listdir(tmp_path) == ["last.ckpt"]
    assert torch.load(target, weights_only=True)["step"] == 1
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # an ordinary file, not mkstemp's 0600


def test_a_flipped_bit_in_the_weights_is_found(tmp_path):
    path = tmp_path / "w.ckpt"
    atomic_save({"state_dict": {"w": torch.arange(100_000.0)}}, path)
    verify_checkpoint_archive(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["state_dict"]["w"].shape == (100_000,)  # torch does not notice
    with pytest.raises(CheckpointError, match="fails its CRC-32 check"):
        verify_checkpoint_archive(path)


def test_a_background_write_holds_the_state_at_the_call_in_order_and_is_awaited_before_reading(tmp_path):
    path = tmp_path / "best.ckpt"
    weights = torch.zeros(50_000)
    atomic_save_in_background({"state_dict": {"w": weights}, "step": 1}, path)
    weights += 1  # training goes on while the file is written
    atomic_save_in_background({"state_dict": {"w": weights}, "step": 2}, path)
    weights += 1
    verify_checkpoint_archive(path)  # waits for the write in flight
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 2 and bool((saved["state_dict"]["w"] == 1).all())
    assert os.listdir(tmp_path) == ["best.ckpt"]
    finish_checkpoint_writes()  # nothing in flight: returns


def test_a_failed_background_write_is_raised_once_in_one_line_naming_the_file(tmp_path):
    (tmp_path / "taken").write_text("a file where the checkpoint folder should be")
    path = tmp_path / "taken" / "last.ckpt"
    atomic_save_in_background({"state_dict": {}}, path)  # the caller goes on
    with pytest.raises(CheckpointError, match=r"^writing the checkpoint .*taken/last.ckpt failed: "):
        finish_checkpoint_writes()
    finish_checkpoint_writes()  # reported once


def test_a_checkpoint_over_the_background_limit_is_written_before_the_call_returns(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "BACKGROUND_LIMIT_BYTES", 1000)
    path = tmp_path / "big.ckpt"
    atomic_save_in_background({"state_dict": {"w": torch.zeros(1000)}}, path)  # 4,000 bytes
    assert checkpoints._writes["thread"] is None
    assert torch.load(path, weights_only=True)["state_dict"]["w"].shape == (1000,)
