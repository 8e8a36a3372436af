"""The README's quickstart, end to end, in a fresh process: it must clear its PSNR bar."""

from __future__ import annotations

import subprocess
import sys
import time

import torch

from tests.conftest import REPO


def test_quickstart_reaches_20_db(tmp_path):
    start = time.monotonic()
    command = [sys.executable, "cli.py", "fit", "--config", "configs/quickstart.yaml"]  # the README's command
    command += [f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "lightning_logs" / "version_0"
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    state = next(v for k, v in checkpoint["callbacks"].items() if "BestCheckpoint" in k)
    assert state["monitor"] == "val/psnr"
    best_psnr = float(state["best_model_score"])
    print(f"quickstart: best val/psnr {best_psnr:.2f} dB in {seconds:.0f} s")
    assert best_psnr >= 20.0
    assert seconds < 120
