"""Checkpoint writes cannot leave an unreadable file; damaged files are refused before loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mlplab.callbacks.checkpoint import atomic_save, verify_checkpoint_archive
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
