"""A checkpoint meets the command line: evaluation settings given are honoured, architecture changes are
refused, what is not given comes from the checkpoint, and the new run records what was applied."""

from __future__ import annotations

import pytest
import yaml

from mlplab.cli import MLPLabCLI
from tests.reliability.workspace import QUICKSTART, QUIET

TRAIN = [
    "--config", str(QUICKSTART), "--model.backbone.embed_dim=128", "--model.backbone.mlp_dim=32",
    "--trainer.max_epochs=1", "--trainer.default_root_dir=runs", *QUIET,
]  # fmt: skip


@pytest.fixture
def trained(cli, tmp_path):
    assert cli("fit", *TRAIN) == 0
    return tmp_path / "runs" / "lightning_logs" / "version_0"


def recorded(run) -> tuple[dict, str]:
    config = yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]
    return config, (run / "hparams.yaml").read_text()


def test_evaluation_settings_given_are_honoured_and_recorded(trained, tmp_path):
    args = [
        "--config",
        str(trained / "config.yaml"),
        "--ckpt_path=best",
        "--trainer.default_root_dir=runs",
        *QUIET,
    ]
    at_training_noise = MLPLabCLI(args=["test", *args]).trainer.callback_metrics["test/psnr_input"].item()
    noisier = MLPLabCLI(args=["test", *args, "--model.noise_std=0.5"])
    assert noisier.model.noise_std == 0.5
    # σ = 0.5 instead of the checkpoint's 0.2: the noisy inputs are much worse (about 9 dB against 16 dB)
    assert noisier.trainer.callback_metrics["test/psnr_input"].item() < at_training_noise - 5
    config, hparams = recorded(tmp_path / "runs" / "lightning_logs" / "version_2")
    assert config["noise_std"] == 0.5 and "noise_std: 0.5" in hparams


def test_what_the_command_leaves_out_comes_from_the_checkpoint(trained, tmp_path):
    minimal = ["--model=ImageRestoration", "--model.backbone=HourglassMLP", "--data=DigitsDataModule",
               "--data.normalize=false", f"--ckpt_path={trained / 'checkpoints' / 'best.ckpt'}"]  # fmt: skip
    tested = MLPLabCLI(args=["test", *minimal, "--trainer.default_root_dir=runs", *QUIET])
    assert tested.model.noise_std == 0.2  # the checkpoint's, not the task's default of 0.25
    config, _ = recorded(tmp_path / "runs" / "lightning_logs" / "version_1")
    assert (
        config["backbone"]["init_args"]["embed_dim"] == 128
        and config["backbone"]["init_args"]["mlp_dim"] == 32
    )
    assert config["noise_std"] == 0.2


def test_architecture_changes_are_refused_naming_both_values(trained, cli, capsys):
    args = [
        "test",
        "--config",
        str(trained / "config.yaml"),
        "--ckpt_path=best",
        "--trainer.default_root_dir=runs",
    ]
    capsys.readouterr()
    assert cli(*args, "--model.backbone.mlp_dim=64", "--model.backbone.depth=2") == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith(
        "error: model.backbone.mlp_dim: the checkpoint best.ckpt was trained with 32, this run gives 64"
    )
    assert "(and 1 more: model.backbone.depth)" in line


def test_a_resumed_fit_honours_evaluation_settings_and_refuses_a_new_optimiser(
    trained, cli, capsys, tmp_path
):
    resume = ["fit", "--config", str(trained / "config.yaml"), "--ckpt_path=last", "--trainer.max_epochs=2"]
    capsys.readouterr()
    assert cli(*resume, "--model.optimizer.lr=0.01") == 2
    assert "a resumed fit continues with the checkpoint's optimiser" in capsys.readouterr().err
    assert cli(*resume, "--model.noise_std=0.3") == 0
    config, hparams = recorded(trained)  # the resumed fit continued in its own run directory
    assert config["noise_std"] == 0.3 and "noise_std: 0.3" in hparams
    assert yaml.safe_load((trained / "config.1.yaml").read_text())["model"]["init_args"]["noise_std"] == 0.2
    assert "noise_std: 0.2" in (trained / "hparams.1.yaml").read_text()
