"""Two GPU processes (NCCL): with sync_batchnorm a BatchNorm family trains like one GPU with the global batch.

Needs two CUDA devices (``pytest -m gpu tests/ddp``); not run yet (no multi-GPU machine so far).
"""

from __future__ import annotations

import pytest
import torch

from tests.ddp.conftest import (
    DDP_PRESET,
    assert_close_weights,
    image_restoration,
    mlplab_command,
    run_process,
)
from tests.ddp.runs import run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices"),
]

ON_GPU = ["--trainer.accelerator", "gpu", "--trainer.precision", "32-true"]


def test_sync_batchnorm_makes_two_gpus_train_like_one(tmp_path):
    # the Hourglass MLP normalises its blocks' inputs with BatchNorm: without sync_batchnorm each
    # process would use its own half batch's statistics
    torch.backends.cuda.matmul.allow_tf32 = False
    two = image_restoration(tmp_path / "two", "super_resolution", 32, "--trainer.max_epochs", "1")
    command = mlplab_command(*two, *DDP_PRESET, *ON_GPU, "--trainer.sync_batchnorm", "true")
    done = run_process(command, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = torch.load(
        tmp_path / "two" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False
    )
    one = run(
        image_restoration(tmp_path / "one", "super_resolution", 64, "--trainer.max_epochs", "1",
                          *ON_GPU, "--trainer.devices", "1")
    )  # fmt: skip
    assert saved["global_step"] == one["global_step"] == 1399 // 64
    assert_close_weights(saved["state_dict"], one["state_dict"], atol=1e-4)
