"""A killed or interrupted run, resumed, is the same run: its final weights equal an uninterrupted run's."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.reliability.workspace import QUICKSTART, QUIET

SMALL = [
    "--config", str(QUICKSTART), "--model.backbone.embed_dim=128", "--model.backbone.mlp_dim=32",
    "--trainer.max_epochs=2", "--checkpoint.last_every_n_steps=5", *QUIET,
]  # fmt: skip
#: Classification with every source of randomness a task draws from: flips and crops (torch), mixup (NumPy).
AUGMENTED = [
    *SMALL, "--model=ImageClassification", "--model.backbone=HourglassMLP", "--model.backbone.embed_dim=128",
    "--model.backbone.mlp_dim=32", "--model.backbone.output_activation=none", "--model.mixup_alpha=0.4",
    "--data.normalize=true", "--data.horizontal_flip=true", "--data.crop_padding=1",
]  # fmt: skip


def run_dir(root: Path) -> Path:
    return root / "lightning_logs" / "version_0"


def weights(root: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(run_dir(root) / "checkpoints" / f"{name}.ckpt", weights_only=True)["state_dict"]


def assert_bit_identical(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"weights differ: {different}"


def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_weights(cli, tmp_path):
    assert cli("fit", *SMALL, "--trainer.default_root_dir=reference") == 0
    # 21 steps per epoch, 42 in all: killed at step 33 (epoch 1, batch 12); last.ckpt holds step 30 (batch 9),
    # or step 25 (batch 4) when the kill lands while step 30's background write is still in flight: then
    # the step-25 file is still whole, and any partial file of the cut-off write is left for the resumed fit
    # to remove
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]),
        "OMP_NUM_THREADS": str(torch.get_num_threads()),  # as in this process: the same sums, bit for bit
    }
    killed = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "fit", *SMALL, "--trainer.default_root_dir=killed",
         "--trainer.callbacks+=tests.reliability.callbacks.KillAtStep", "--trainer.callbacks.step=33"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    interrupted = torch.load(run_dir(tmp_path / "killed") / "checkpoints" / "last.ckpt", weights_only=True)
    step, position = interrupted["global_step"], {30: 9, 25: 4}.get(interrupted["global_step"])
    assert position is not None, f"last.ckpt holds step {step}"
    loader = interrupted["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader == [{"epoch": 1, "position": position, "batches": 21, "global_batch": 64}]

    assert cli("fit", *SMALL, "--trainer.default_root_dir=killed", "--ckpt_path=last") == 0
    assert_bit_identical(weights(tmp_path / "reference", "last"), weights(tmp_path / "killed", "last"))
    assert_bit_identical(weights(tmp_path / "reference", "best"), weights(tmp_path / "killed", "best"))
    # the resumed fit continued in the run's own folder, keeping the first part's config
    assert [p.name for p in (tmp_path / "killed" / "lightning_logs").iterdir()] == ["version_0"]
    kept, current = (yaml.safe_load((run_dir(tmp_path / "killed") / f).read_text())
                     for f in ("config.1.yaml", "config.yaml"))  # fmt: skip
    assert kept["ckpt_path"] is None and current["ckpt_path"].endswith("last.ckpt")
    assert not list((tmp_path / "killed").rglob("*.partial"))


def test_a_run_stopped_by_max_steps_and_extended_gives_the_uninterrupted_weights(cli, tmp_path):
    # a constant learning rate: a schedule sized to the first part's length would differ by design
    constant = [*SMALL, "--model.lr_scheduler=null"]
    assert cli("fit", *constant, "--trainer.default_root_dir=reference") == 0
    # 21 steps per epoch: max_steps 32 cuts epoch 1 after 11 of its batches, and last.ckpt is written at the
    # end of the fit (not at a multiple of 5). Lightning closes the cut epoch, so a resumed fit would start
    # epoch 2 without the cut epoch's 10 other batches
    assert cli("fit", *constant, "--trainer.default_root_dir=extended", "--trainer.max_steps=32") == 0
    cut = torch.load(run_dir(tmp_path / "extended") / "checkpoints" / "last.ckpt", weights_only=True)
    epochs = cut["loops"]["fit_loop"]["epoch_progress"]["total"]
    assert (cut["global_step"], epochs["started"], epochs["processed"], cut["epoch"]) == (32, 2, 1, 1)
    assert cli("fit", *constant, "--trainer.default_root_dir=extended", "--ckpt_path=last") == 0
    assert_bit_identical(weights(tmp_path / "reference", "last"), weights(tmp_path / "extended", "last"))


def test_ctrl_c_stops_after_the_step_and_the_resumed_run_is_the_same(cli, tmp_path):
    assert cli("fit", *AUGMENTED, "--trainer.default_root_dir=reference") == 0
    try:
        # Python's own Ctrl-C handler, also where pytest was started as a background job (SIGINT ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        status = cli(
            "fit", *AUGMENTED, "--trainer.default_root_dir=stopped",
            "--trainer.callbacks+=tests.reliability.callbacks.InterruptAtStep", "--trainer.callbacks.step=26",
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores Ctrl-C once it has one
    assert status == 1
    stopped = torch.load(run_dir(tmp_path / "stopped") / "checkpoints" / "last.ckpt", weights_only=True)
    assert stopped["global_step"] == 27  # Ctrl-C came inside step 27, which was finished and saved
    assert cli("fit", *AUGMENTED, "--trainer.default_root_dir=stopped", "--ckpt_path=last") == 0
    assert_bit_identical(weights(tmp_path / "reference", "last"), weights(tmp_path / "stopped", "last"))


def test_resume_from_an_end_of_fit_checkpoint_continues_the_epochs(cli, tmp_path):
    # a constant learning rate: a schedule over "the whole run" keeps the first part's length (and warns)
    base = [arg for arg in SMALL if not arg.startswith("--trainer.max_epochs")] + [
        "--model.lr_scheduler=null"
    ]
    assert cli("fit", *base, "--trainer.max_epochs=3", "--trainer.default_root_dir=reference") == 0
    assert cli("fit", *base, "--trainer.max_epochs=2", "--trainer.default_root_dir=resumed") == 0
    assert (
        cli("fit", *base, "--trainer.max_epochs=3", "--trainer.default_root_dir=resumed", "--ckpt_path=last")
        == 0
    )
    assert_bit_identical(weights(tmp_path / "reference", "last"), weights(tmp_path / "resumed", "last"))


def validation_rows(root: Path) -> list[tuple[str, str, str]]:
    """``(epoch, step, val/psnr)`` of every validation in the run's ``metrics.csv``."""
    with open(run_dir(root) / "metrics.csv") as file:
        rows = csv.DictReader(file)
        return [(row["epoch"], row["step"], row["val/psnr"]) for row in rows if row.get("val/psnr")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_fit_stopped_during_a_validation_runs_that_validation_when_resumed(cli, tmp_path, signum):
    # Lightning took the checkpoint written in the middle of epoch 0's validation for one written after
    # it: the resumed fit skipped that validation, whose metrics were then missing from the logs and
    # were never seen by best.ckpt or EarlyStopping
    csv_run = [*SMALL, "--model.lr_scheduler=null", "--config", str(REPO / "configs" / "logger" / "csv.yaml")]
    assert cli("fit", *csv_run, "--trainer.default_root_dir=reference") == 0
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        status = cli(
            "fit", *csv_run, "--trainer.default_root_dir=stopped",
            "--trainer.callbacks+=tests.reliability.callbacks.InterruptInValidation",
            "--trainer.callbacks.epoch=0", f"--trainer.callbacks.signum={int(signum)}",
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert status != 0
    assert validation_rows(tmp_path / "stopped") == []
    assert cli("fit", *csv_run, "--trainer.default_root_dir=stopped", "--ckpt_path=last") == 0
    reference = validation_rows(tmp_path / "reference")
    assert len(reference) == 2
    assert validation_rows(tmp_path / "stopped") == reference
    assert_bit_identical(weights(tmp_path / "reference", "last"), weights(tmp_path / "stopped", "last"))
    assert_bit_identical(weights(tmp_path / "reference", "best"), weights(tmp_path / "stopped", "best"))


def test_a_mid_epoch_resume_with_another_batch_size_is_one_line(cli, tmp_path, capsys):
    # the loader resumed at the old batch count with batches of the new size: samples skipped or repeated
    small = [*SMALL, "--model.backbone.embed_dim=32", "--model.backbone.mlp_dim=8"]
    stop = ["--trainer.callbacks+=tests.reliability.callbacks.InterruptAtStep", "--trainer.callbacks.step=7"]
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        assert cli("fit", *small, *stop) == 1
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    capsys.readouterr()
    assert cli("fit", *small, "--ckpt_path=last", "--data.batch_size=32") == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(
        "error: data.batch_size: the checkpoint was written 8 batches into epoch 0 with steps of 64"
    )
    assert cli("fit", *small, "--ckpt_path=last") == 0  # the same batch size resumes
