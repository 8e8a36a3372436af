"""Shared pieces of the multi-process tests: commands of tiny runs, and the environment of their processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

#: Every run: quiet, on the CPU (gloo), ended by the watchdog within two minutes if it ever hangs.
QUIET = [
    "--trainer.accelerator", "cpu",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--watchdog.timeout_s", "120",
]  # fmt: skip
TWO_PROCESSES = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
#: The multi-GPU preset, on two CPU processes.
DDP_PRESET = ["--config", str(CONFIGS / "trainer" / "ddp.yaml"), "--trainer.devices", "2"]


def run_process(command: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``command`` in :func:`process_env` to its end, capturing its output."""
    env = process_env()
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def process_env() -> dict[str, str]:
    """The environment of a test's child processes: this checkout's mlplab and tests, one thread each."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    paths = [str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    env.pop("MLPLAB_DEBUG", None)
    return env


def mlplab_command(*args: str) -> list[str]:
    """The command line of ``mlplab`` in a process of its own."""
    return [sys.executable, "-m", "mlplab", *args]


def image_restoration(root: Path, mode: str, batch_size: int, *extra: str) -> list[str]:
    """A tiny Hourglass MLP on the offline digits (199 validation and 199 test images: odd on purpose)."""
    return [
        "fit", "--config", str(CONFIGS / "quickstart.yaml"),
        "--model.mode", mode,
        "--model.backbone.embed_dim", "64", "--model.backbone.mlp_dim", "8", "--model.backbone.depth", "1",
        "--data.batch_size", str(batch_size), "--data.num_val", "199", "--data.num_test", "199",
        "--trainer.default_root_dir", str(root), *QUIET, *extra,
    ]  # fmt: skip


def image_classification(root: Path, batch_size: int, *extra: str) -> list[str]:
    """A tiny MLP-Mixer (LayerNorm, no dropout) classifying the offline digits, one epoch.

    A family without BatchNorm: with BatchNorm every process normalises with its own batch's statistics
    unless ``trainer.sync_batchnorm`` (CUDA only) shares them.
    """
    return [
        "fit", "--config", str(CONFIGS / "image" / "mlp_mixer_cifar10.yaml"),
        "--model.backbone.depth", "1", "--model.backbone.embed_dim", "16",
        "--model.backbone.proj_drop_rate", "0.0",
        "--data", "DigitsDataModule", "--data.batch_size", str(batch_size),
        "--data.num_val", "199", "--data.num_test", "199",
        "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(root), *QUIET, *extra,
    ]  # fmt: skip


def text(root: Path, batch_size: int, batches_per_epoch: int, *extra: str) -> list[str]:
    """A tiny Transformer on CPython's help text (offline), one epoch, no dropout, no samples."""
    return [
        "fit", "--config", str(CONFIGS / "text" / "transformer_shakespeare.yaml"),
        "--data.corpus", "pydoc_topics", "--data.context_length", "32", "--data.val_fraction", "0.02",
        "--data.batch_size", str(batch_size), "--data.batches_per_epoch", str(batches_per_epoch),
        "--data.eval_batch_size", "64",
        "--model.backbone.embed_dim", "32", "--model.backbone.depth", "1", "--model.backbone.num_heads", "2",
        "--model.backbone.dropout", "0.0", "--model.sample_length", "0",
        "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(root), *QUIET, *extra,
    ]  # fmt: skip


def forecasting(root: Path, batch_size: int, *extra: str, preset: tuple[str, ...] = ()) -> list[str]:
    """DLinear on ETTh1 (lookback and horizon 96: 8,449 training windows), one epoch."""
    return [
        "fit", *preset, "--config", str(CONFIGS / "timeseries" / "dlinear_etth1_96.yaml"),
        "--data.batch_size", str(batch_size), "--data.eval_batch_size", "256",
        "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(root), *QUIET, *extra,
    ]  # fmt: skip


def assert_close_weights(first: dict, second: dict, atol: float) -> float:
    """Assert two state dicts hold the same keys and weights within ``atol``; the largest difference."""
    assert first.keys() == second.keys()
    largest = max(float((first[key].double() - second[key].double()).abs().max()) for key in first)
    assert largest <= atol, f"weights differ by up to {largest:.3g}"
    return largest


def epoch_metrics(record: dict) -> dict[str, float]:
    """The epoch-level metrics of a run's record: what every process must agree on."""
    kept = ("val/", "test/", "train/acc")
    return {key: value for key, value in record["metrics"].items() if key.startswith(kept)}
