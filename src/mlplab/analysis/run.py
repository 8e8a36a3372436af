"""Read a run directory (its ``config.yaml`` and a checkpoint), evaluate it, and write what a command makes.

A run directory is what ``mlplab fit`` leaves (``<root>/lightning_logs/version_N``): ``config.yaml`` (the
resolved config) and ``checkpoints/best.ckpt`` / ``last.ckpt``. :func:`load_run` builds the task and the
DataModule from the config exactly as ``mlplab fit`` does and loads the checkpoint's weights into the
task; the checkpoint file is only read. Every problem with the folder, the config or the checkpoint is a
one-line :class:`~mlplab.errors.MLPLabError`.

The analysis commands write their outputs into ``<run>/analysis/<command>/`` (or a folder given):
tables, figures, TensorBoard events, and for the commands that change the model a new checkpoint with
the ``config.yaml`` that builds it (``mlplab test --config OUT/config.yaml --ckpt_path OUT/model.ckpt``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from mlplab.callbacks.checkpoint import atomic_save, verify_checkpoint_file
from mlplab.errors import CheckpointError, ConfigError

#: Keys of a saved ``fit`` config that belong to the subcommand, not to the run's classes.
SUBCOMMAND_KEYS = ("ckpt_path", "weights_only")


@dataclass
class LoadedRun:
    """A run directory with its task (weights loaded) and DataModule.

    Args:
        directory: The run directory.
        config: Its ``config.yaml``, as read.
        checkpoint_path: The checkpoint the weights come from.
        checkpoint: That checkpoint (read on the CPU).
        task: The task, with the checkpoint's weights.
        datamodule: The run's DataModule, with the checkpoint's data state (its training statistics).
    """

    directory: Path
    config: dict[str, Any]
    checkpoint_path: Path
    checkpoint: dict[str, Any]
    task: Any
    datamodule: L.LightningDataModule

    @property
    def family(self) -> str:
        """The backbone's class name."""
        return type(self.task.backbone).__name__

    @property
    def monitor(self) -> str:
        """The task's main metric on the test split (``test/psnr``)."""
        return "test/" + self.task.monitor.split("/", 1)[-1]


def checkpoint_in(directory: Path, checkpoint: str) -> Path:
    """The checkpoint ``best`` / ``last`` of a run directory, or the file ``checkpoint`` names."""
    if checkpoint in ("best", "last"):
        path = directory / "checkpoints" / f"{checkpoint}.ckpt"
        if not path.is_file():
            raise CheckpointError(
                f"--run {directory}: no checkpoints/{checkpoint}.ckpt there (name another with --ckpt)"
            )
        return path
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"--ckpt {checkpoint}: no such file")
    return path


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Keep Lightning's per-run chatter (devices, seeds, dataloader hints) off the command's output."""
    from mlplab.cli import plain_argv, quiet_loggers

    names = ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero")
    with quiet_loggers(*names, level=logging.ERROR), plain_argv(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(num_workers|does not have many workers).*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def _build(config_file: Path, directory: Path) -> tuple[Any, L.LightningDataModule]:
    """The task and DataModule of a config, built as ``mlplab fit`` builds them (no Trainer)."""
    from mlplab.cli import MLPLabCLI, condense_parser_error, find_user_error

    class BuildOnly(MLPLabCLI):
        def instantiate_trainer(self, **kwargs: Any) -> None:
            return None

    try:
        cli = BuildOnly(
            args=["--config", str(config_file)], run=False, parser_kwargs={"exit_on_error": False}
        )
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is not None:
            raise user_error from error
        reason = condense_parser_error(str(error)) if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"--run {directory}: cannot build the run from its config.yaml ({reason})"
        ) from error
    return cli.model, cli.datamodule


def load_run(directory: str | os.PathLike, checkpoint: str = "best") -> LoadedRun:
    """Build a run directory's task and DataModule and load a checkpoint's weights into the task.

    Args:
        directory: The run directory (``lightning_logs/version_N``).
        checkpoint: ``best``, ``last`` (in ``checkpoints/``) or the path of a checkpoint file.

    Raises:
        ConfigError: When the folder is not a run directory or its config cannot be built.
        CheckpointError: When the checkpoint is missing, damaged or does not fit the model.
    """
    from mlplab.cli import check_config_file

    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"--run {directory}: no such folder")
    config_path = directory / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(
            f"--run {directory}: no config.yaml there; a run directory is what `mlplab fit` writes "
            "(<root>/lightning_logs/version_N)"
        )
    check_config_file(config_path)
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    checkpoint_path = checkpoint_in(directory, checkpoint)
    verify_checkpoint_file(checkpoint_path)
    with tempfile.TemporaryDirectory(prefix="mlplab-analysis-") as scratch, _quiet_lightning():
        run_config = {
            key: copy.deepcopy(value) for key, value in config.items() if key not in SUBCOMMAND_KEYS
        }
        trainer_config = run_config.get("trainer") or {}
        trainer_config.pop("callbacks", None)  # early stopping and the like play no part here
        scratch_config = Path(scratch) / "config.yaml"
        scratch_config.write_text(yaml.safe_dump(run_config, sort_keys=False), encoding="utf-8")
        task, datamodule = _build(scratch_config, directory)
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    task.on_load_checkpoint(state)  # renames legacy keys; one line when the weights do not fit
    task.load_state_dict(state["state_dict"])
    data_state = state.get(type(datamodule).__qualname__)  # the key Lightning saves it under
    if data_state is not None:  # the training statistics (normalisation, scaler), as `mlplab test` uses
        datamodule.load_state_dict(data_state)
    task._rng_states_to_restore = None  # an analysis draws nothing it must reproduce
    return LoadedRun(directory, config, checkpoint_path, state, task, datamodule)


def trainer(accelerator: str = "auto", **kwargs: Any) -> L.Trainer:
    """A Trainer for one evaluation or a short fine-tune: one device, no checkpoints, no progress bars.

    Raises:
        ConfigError: When ``accelerator`` is not a name Lightning knows or not usable on this machine.
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    kwargs.setdefault("logger", False)
    with _quiet_lightning():
        try:
            return L.Trainer(
                accelerator=accelerator,
                devices=1,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                **kwargs,
            )
        except (ValueError, ModuleNotFoundError, MisconfigurationException) as error:  # not on this machine
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(f"--accelerator {accelerator}: {reason}") from error


def evaluate(
    run: LoadedRun, stage: str = "test", batches: int | None = None, accelerator: str = "auto"
) -> dict:
    """The task's metrics of ``stage`` (``test`` or ``val``) on the run's data, as plain floats.

    Args:
        run: The loaded run (its task as it is now: dropped or pruned).
        stage: ``test`` (the test split) or ``val``.
        batches: Evaluate this many batches only (``None``: all).
        accelerator: Lightning's accelerator (``auto``, ``cpu``, ``gpu``).
    """
    limit = {f"limit_{'test' if stage == 'test' else 'val'}_batches": batches if batches else 1.0}
    evaluator = trainer(accelerator, **limit)
    with _quiet_lightning():
        run_stage = evaluator.test if stage == "test" else evaluator.validate
        results = run_stage(run.task, datamodule=run.datamodule, verbose=False)
    return {key: float(value) for key, value in (results[0] if results else {}).items()}


def output_folder(run: LoadedRun, out: str | os.PathLike | None, name: str) -> Path:
    """``out``, or ``<run>/analysis/<name>``; refused in one line when it is a file or cannot be written."""
    folder = Path(out) if out is not None else run.directory / "analysis" / name
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {folder}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"--out {folder}: cannot write in {parent} (no permission)")
            break
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_model(run: LoadedRun, folder: Path, model_args: dict[str, Any], note: dict[str, Any]) -> Path:
    """Write the task's current weights as ``folder/model.ckpt`` and the config that builds them.

    The checkpoint holds the weights and the task's hyper-parameters (the original ones with
    ``model_args`` on top), not the optimiser or loop state: it is for ``validate`` / ``test`` /
    ``predict`` (``--config folder/config.yaml --ckpt_path folder/model.ckpt``). ``config.yaml`` is the
    run's with ``model_args`` set under ``model.init_args``. ``note`` goes into the checkpoint under
    ``mlplab_analysis`` (what was done, from which checkpoint).
    """
    hyper_parameters = {**run.checkpoint.get("hyper_parameters", {}), **model_args}
    checkpoint = {
        "state_dict": run.task.state_dict(),
        "hyper_parameters": hyper_parameters,
        "epoch": run.checkpoint.get("epoch", 0),
        "global_step": run.checkpoint.get("global_step", 0),
        "pytorch-lightning_version": run.checkpoint.get("pytorch-lightning_version", L.__version__),
        "mlplab_analysis": {**note, "source": str(run.checkpoint_path)},
    }
    path = folder / "model.ckpt"
    atomic_save(checkpoint, path)
    config = {key: copy.deepcopy(value) for key, value in run.config.items() if key not in SUBCOMMAND_KEYS}
    model = config.setdefault("model", {})
    model.setdefault("init_args", {}).update(model_args)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


__all__ = ["LoadedRun", "checkpoint_in", "evaluate", "load_run", "output_folder", "trainer", "write_model"]
