"""Checkpoints that survive kills and are never silently damaged: best by the task's metric, latest beside it.

* :func:`atomic_save` writes a checkpoint to a temporary file in the target's folder, flushes and
  fsyncs it, then renames it over the target: a kill at any moment leaves the old file or the new one.
* :func:`verify_checkpoint_file` checks a checkpoint before it is loaded (the zip's CRC of every
  record, then its structure) and names what is wrong in one line.
* :func:`atomic_save_in_background` does the same with the file part in a thread (the state is
  serialised at the call), so that training goes on while the checkpoint is written and fsynced.
* :class:`AtomicCheckpointIO` makes every checkpoint the trainer writes or reads go through them.
* :class:`BestCheckpoint` keeps ``best.ckpt`` by the task's main metric and ``last.ckpt`` at an
  interval, at the end of fit, on an exception and on Ctrl-C (which then stops at the end of the
  current step, so that the saved state resumes exactly).
"""

from __future__ import annotations

import io
import math
import os
import signal
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from mlplab.callbacks.watchdog import is_collective_failure
from mlplab.errors import CheckpointError, ConfigError, TrainingDivergedError
from mlplab.metrics import metric_mode

PARTIAL_SUFFIX = ".partial"


def rerun_cut_validation(checkpoint: dict[str, Any]) -> None:
    """Record a validation that a checkpoint cut short as one to run again, from its first batch, in place.

    Lightning takes a checkpoint written at the end of the training batch that a validation follows
    (Lightning 2.6: its loop counters say the batch is complete) as written after that validation, and
    a fit resumed from it skips the validation: its metrics were never logged, ``best.ckpt`` and
    ``EarlyStopping`` never saw them. Counting the validation as restarted in the middle of a batch with
    no batch of it done makes Lightning run it again, whole, before training goes on.
    """
    fit_loop = checkpoint.get("loops", {}).get("fit_loop") or {}
    progress = fit_loop.get("epoch_loop.val_loop.batch_progress")
    if not progress:
        return
    done = progress["total"]["completed"]
    progress["total"].update(ready=done + 1, started=done + 1, processed=done, completed=done)
    progress["current"].update(ready=0, started=0, processed=0, completed=0)
    progress["is_last_batch"] = False


# ------------------------------------------------------------------------------------------ files
def _partial_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_partial_files(path: Path) -> None:
    """Delete the temporary files that writes of ``path`` killed before their rename left behind."""
    for stale in path.parent.glob(f"{_partial_prefix(path)}*{PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms and file systems cannot open folders
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's umask, read once: reading it means setting it, which a writing thread must not do.
_UMASK = _umask()


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_partial_files(target)
    descriptor, temporary = tempfile.mkstemp(
        prefix=_partial_prefix(target), suffix=PARTIAL_SUFFIX, dir=target.parent
    )
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp creates 0600; a checkpoint is an ordinary file
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def atomic_save(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a partial file at ``path``.

    The checkpoint goes to ``.<name>.<random>.partial`` in the same folder, which is flushed and
    fsynced and then renamed over ``path`` (an atomic replacement on POSIX and Windows); the folder is
    fsynced so that the rename survives a power cut. Partial files of earlier, killed writes of the
    same name are removed first; a failing write removes its own.
    """
    _atomic_write(path, lambda handle: torch.save(checkpoint, handle))


# ------------------------------------------------------------------------------ background writes
#: Checkpoints up to this size (their tensors' bytes) are written in the background.
BACKGROUND_LIMIT_BYTES = 512 * 2**20

#: The write in flight and the error of one that failed (both set and read by the training thread,
#: the error also by the writing thread).
_writes: dict[str, Any] = {"thread": None, "error": None}


def _tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in nested dicts, lists and tuples (where a checkpoint keeps them)."""
    if isinstance(value, torch.Tensor):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def finish_checkpoint_writes() -> None:
    """Wait for the background checkpoint write in flight, if any; raise the error of one that failed."""
    thread, _writes["thread"] = _writes["thread"], None
    if thread is not None:
        thread.join()
    failed, _writes["error"] = _writes["error"], None
    if failed is not None:
        path, error = failed
        raise CheckpointError(f"writing the checkpoint {path} failed: {error}") from error


def atomic_save_in_background(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """:func:`atomic_save`, with the file written, fsynced and renamed by a thread while the caller goes on.

    The checkpoint is serialised at once, so the file holds the state as it is at the call. One write
    is in flight at a time, in the order of the calls; :func:`finish_checkpoint_writes` waits for it
    (reading, removing and verifying checkpoints do, and so does the end of every fit). A checkpoint
    larger than ``BACKGROUND_LIMIT_BYTES`` is written in the foreground, streamed without a copy in
    memory.
    """
    if _tensor_bytes(checkpoint) > BACKGROUND_LIMIT_BYTES:
        finish_checkpoint_writes()
        atomic_save(checkpoint, path)
        return
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    finish_checkpoint_writes()  # the one before, first

    def write() -> None:
        try:
            _atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))
        except BaseException as error:  # raised by the next finish_checkpoint_writes()
            _writes["error"] = (path, error)

    thread = threading.Thread(target=write, name="mlplab-checkpoint-write")  # not a daemon: exit waits
    _writes["thread"] = thread
    thread.start()


def verify_checkpoint_archive(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError`, in one line, unless ``path`` is a complete, undamaged checkpoint file.

    Waits for a background write in flight first (:func:`finish_checkpoint_writes`). Checks that the
    file exists and is a complete zip archive (PyTorch's format) whose every record matches its CRC-32:
    ``torch.load`` itself does not check them, so a flipped bit in the weights would load silently.
    Reading the records costs about as much as loading them.
    """
    finish_checkpoint_writes()
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if file.stat().st_size == 0:
        raise CheckpointError(f"the checkpoint {path} is empty (0 bytes): a write of it was cut off")
    try:
        with zipfile.ZipFile(file) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile as error:
        raise CheckpointError(
            f"cannot read the checkpoint {path}: damaged, cut off, or not a PyTorch checkpoint ({error})"
        ) from error
    except OSError as error:
        raise CheckpointError(f"cannot read the checkpoint {path} ({error})") from error
    if damaged is not None:
        raise CheckpointError(
            f"the checkpoint {path} is damaged: its record {damaged} fails its CRC-32 check"
        )


def verify_checkpoint_file(path: str | os.PathLike) -> None:
    """:func:`verify_checkpoint_archive`, then check that the file loads safely and holds a ``state_dict``.

    The safe load (``weights_only``) is what the CLI uses to read a checkpoint's hyper-parameters.
    """
    verify_checkpoint_archive(path)
    file = Path(path)
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises many types for files it cannot unpickle
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"cannot read the checkpoint {path}: not a PyTorch checkpoint mlplab can load "
            f"({type(error).__name__}: {reason})"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict in it)")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, writing with :func:`atomic_save_in_background`, checking before reading.

    Lightning's own writer serialises to memory and lets fsspec move a temporary file from the system's
    temporary folder into place: not fsynced, not atomic across file systems, and a kill leaves the
    temporary file outside the run folder. This one writes atomically and durably, the file part in
    a background thread; reading and removing a checkpoint, and the strategy's teardown at the end of
    every fit, validate, test and predict, wait for the write in flight and raise its error if it failed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_save_in_background(checkpoint, path)

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        verify_checkpoint_archive(path)
        return super().load_checkpoint(path, *args, **kwargs)

    def remove_checkpoint(self, path: Any) -> None:
        finish_checkpoint_writes()
        super().remove_checkpoint(path)

    def teardown(self) -> None:
        finish_checkpoint_writes()


# ----------------------------------------------------------------------------------- finiteness
def non_finite_weights(module: torch.nn.Module) -> list[str]:
    """Names of the parameters and floating-point buffers of ``module`` holding NaN or infinity."""
    tensors = [(n, t) for n, t in module.named_parameters()]
    tensors += [(n, t) for n, t in module.named_buffers() if t.is_floating_point()]
    if not tensors:
        return []
    # x * 0 is 0 for every finite x and NaN for NaN and ±inf, so a tensor's sum of them is finite exactly
    # when the tensor is (and cannot overflow): one reduction per tensor, 8x faster than isfinite().all()
    with torch.no_grad():
        sums = torch.stack([(t.detach() * 0).sum(dtype=torch.float32) for _, t in tensors])
    finite = torch.isfinite(sums).cpu()
    return [name for (name, _), ok in zip(tensors, finite.tolist()) if not ok]


def _is_nan(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isnan(value).any())
    return isinstance(value, float) and math.isnan(value)


# ----------------------------------------------------------------------------------- the callback
class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt`` by the task's main metric and ``last.ckpt`` to resume from, written so they survive.

    **best.ckpt**: when ``monitor`` is not set, the task's main validation metric (``monitor``, e.g.
    ``val/psnr``) and whether larger is better (``monitor_mode``) are picked up at setup, so a recipe
    never spells them out. A ``monitor`` given without ``mode`` gets the task's mode when it is the
    task's metric, else the mode its name tells (:func:`mlplab.metrics.metric_mode`: ``val/acc`` max,
    ``val/bpc`` min); a name that tells none ends the run with one line asking for ``mode``. A
    ``monitor`` that names no metric the run logs ends the run with one
    error line right after the sanity check, before training (or at the first validation when
    ``num_sanity_val_steps`` is 0). A NaN metric or non-finite weights are never saved.

    **last.ckpt** holds the latest state, for ``--ckpt_path last``: it is written every
    ``last_every_n_steps`` training steps and/or every ``last_every_minutes`` of training, at the end of
    fit, and when training stops on an exception (not a divergence) or on Ctrl-C. The first Ctrl-C
    stops training at the end of the current step (a second one stops at once), so that the saved
    state resumes exactly; so does ``SIGTERM`` (Lightning stops after the step). With several processes
    the :class:`~mlplab.callbacks.DistributedWatchdog` handles both, so that every process stops at the
    same step, and nothing is written after a failed collective (writing needs every process). A
    ``last.ckpt`` is never replaced by one with non-finite weights.

    Every checkpoint the trainer writes goes through :class:`AtomicCheckpointIO` (temporary file,
    fsync, rename) when the strategy uses Lightning's default checkpoint I/O.

    Built in Python (``BestCheckpoint()`` in ``Trainer(callbacks=...)``) it writes the same two files as
    the command line's, ``best.ckpt`` and ``last.ckpt``, which :func:`mlplab.load_run` and
    ``ckpt_path="best"`` / ``"last"`` of a resumed fit look for.

    Args:
        filename: Name of the best checkpoint, without ``.ckpt`` (``None``: Lightning's
            ``epoch=E-step=S``).
        save_last: Write ``last.ckpt`` too (``False``: only the best checkpoint).
        mode: ``min`` or ``max``: whether a lower or a higher ``monitor`` is better (default: as above,
            never Lightning's silent ``min``).
        last_every_n_steps: Write ``last.ckpt`` every this many training steps (``None``: not by steps).
        last_every_minutes: Write ``last.ckpt`` when this many minutes of training have passed since the
            last write (``None``: not by time). A kill (``kill -9``, power loss) loses at most this much.
        *args: ``ModelCheckpoint``'s arguments.
        **kwargs: ``ModelCheckpoint``'s arguments; checkpoints go to ``<run dir>/checkpoints`` unless
            ``dirpath`` is set.
    """

    def __init__(
        self,
        *args: Any,
        filename: str | None = "best",
        save_last: bool | Literal["link"] | None = True,
        mode: str | None = None,
        last_every_n_steps: int | None = None,
        last_every_minutes: float | None = 10.0,
        **kwargs: Any,
    ):
        super().__init__(*args, filename=filename, save_last=save_last, mode=mode or "min", **kwargs)
        self._mode_given = mode
        self._mode_unknown = False
        if last_every_n_steps is not None and last_every_n_steps <= 0:
            raise ConfigError(f"checkpoint.last_every_n_steps must be positive, got {last_every_n_steps}")
        if last_every_minutes is not None and last_every_minutes <= 0:
            raise ConfigError(f"checkpoint.last_every_minutes must be positive, got {last_every_minutes}")
        self.last_every_n_steps = last_every_n_steps
        self.last_every_minutes = last_every_minutes
        self._last_written_step: int | None = None
        self._last_written_time = 0.0
        self._stop_requested = False
        self._previous_sigint: Any = None
        #: A validation of the fit has started and its metrics are not logged yet.
        self._validation_unfinished = False
        #: Set by the CLI when a resumed fit continues in the checkpoint's own run directory.
        self.resuming_in_place = False
        self._state_key: tuple[tuple, str] = ((), "")

    @property
    def state_key(self) -> str:
        """``ModelCheckpoint``'s key, built once per setting: Lightning asks for it at every hook call."""
        settings = (self.monitor, self.mode, self._every_n_train_steps, self._every_n_epochs,
                    self._train_time_interval)  # fmt: skip
        if self._state_key[0] != settings:
            self._state_key = (settings, super().state_key)
        return self._state_key[1]

    # ------------------------------------------------------------------------------------ setup
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.monitor is None and getattr(pl_module, "monitor", None):
            self.monitor = pl_module.monitor
            self._set_mode(pl_module.monitor_mode)
        elif self.monitor is not None and self._mode_given is None:
            tasks = pl_module.monitor_mode if self.monitor == getattr(pl_module, "monitor", None) else None
            mode = tasks or metric_mode(self.monitor)
            self._mode_unknown = mode is None  # said once the metric is known to exist (a typo first)
            self._set_mode(mode or "min")
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        self._stage = stage
        with warnings.catch_warnings():
            if self.resuming_in_place:  # a resumed fit continues in its own folder, of course not empty
                warnings.filterwarnings("ignore", message=".*exists and is not empty")
            super().setup(trainer, pl_module, stage)

    def _set_mode(self, mode: Literal["min", "max"]) -> None:
        self.mode = mode
        self.kth_value = torch.tensor(float("inf") if mode == "min" else float("-inf"))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if getattr(self, "_stage", "fit") != "fit":  # evaluating a checkpoint: its bookkeeping is moot
            self.best_model_path = state_dict.get("best_model_path", "")
            return
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and os.path.realpath(saved) == os.path.realpath(self.dirpath):
            state_dict = {**state_dict, "dirpath": self.dirpath}  # the same folder, named another way
        super().load_state_dict(state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_written_time = time.monotonic()
        self._last_written_step = trainer.global_step  # a resumed run starts from a written state
        if trainer.world_size == 1:  # several processes: the watchdog stops them all at the same step
            self._install_interrupt_handler()

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check, before training starts, that the monitored metric is one the run logs."""
        if self.monitor is None or self.monitor.startswith("train"):
            return
        self._require_monitor(trainer.callback_metrics, "the validation run before training")

    def _require_monitor(self, metrics: dict[str, Any], where: str) -> None:
        if self.monitor is not None and self.monitor not in metrics:
            logged = ", ".join(sorted(metrics)) or "none"
            raise ConfigError(
                f"checkpoint.monitor {self.monitor!r} is not a metric this run logs ({where} logged: "
                f"{logged}); set --checkpoint.monitor to one of them"
            )
        if self._mode_unknown:
            raise ConfigError(
                f"checkpoint.mode: give max or min for --checkpoint.monitor {self.monitor}: whether a "
                "higher or a lower value is better cannot be told from its name"
            )

    # ------------------------------------------------------------------------------- best.ckpt
    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        if self.save_top_k == 0:
            return
        if self.monitor is not None:
            if self._mode_unknown or (
                self.monitor not in monitor_candidates and trainer.fit_loop.epoch_loop.val_loop._has_run
            ):
                self._require_monitor(monitor_candidates, "validation")
            if _is_nan(monitor_candidates.get(self.monitor)):
                rank_zero_warn(f"{self.monitor} is NaN: no {self.filename or 'best'}.ckpt written for it")
                return
        if non_finite_weights(trainer.lightning_module):
            return  # never a non-finite checkpoint; the divergence guard names the cause
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    # ------------------------------------------------------------------------------- last.ckpt
    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        """Not on ModelCheckpoint's schedule (after every validation): see :meth:`write_last`."""

    def write_last(self, trainer: L.Trainer) -> bool:
        """Write ``last.ckpt`` now, unless this step is already in it or the weights are not finite."""
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking and not trainer.fast_dev_run
        if not self.save_last or not fitting or self._last_written_step == trainer.global_step:
            return False
        if non_finite_weights(trainer.lightning_module):
            return False
        path = self.format_checkpoint_name(self._monitor_candidates(trainer), self.CHECKPOINT_NAME_LAST)
        trainer.save_checkpoint(path, self.save_weights_only)
        self.last_model_path = path
        self._last_written_step = trainer.global_step
        self._last_written_time = time.monotonic()
        return True

    def _last_due(self, trainer: L.Trainer) -> bool:
        step = trainer.global_step
        due = bool(self.last_every_n_steps) and step % self.last_every_n_steps == 0
        if self.last_every_minutes is not None:
            late = time.monotonic() - self._last_written_time >= 60 * self.last_every_minutes
            due = due or bool(trainer.strategy.broadcast(late))  # the same decision on every process
        return due

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._stop_requested:
            self.write_last(trainer)
            raise KeyboardInterrupt
        if self.save_last and self._last_due(trainer):
            self.write_last(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._stop_requested and trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.write_last(trainer)
            raise KeyboardInterrupt

    # ------------------------------------------------------------------ a validation cut short
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        self._validation_unfinished = trainer.state.fn == "fit" and not trainer.sanity_checking

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_unfinished = False  # its metrics are logged: best.ckpt may be written now
        super().on_validation_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._validation_unfinished:  # Ctrl-C, SIGTERM or an error in the middle of a validation
            rerun_cut_validation(checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self.write_last(trainer)
        self._restore_interrupt_handler()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException):
        super().on_exception(trainer, pl_module, exception)
        self._restore_interrupt_handler()
        if isinstance(exception, TrainingDivergedError) or trainer.state.fn != "fit":
            return
        if trainer.world_size > 1 and is_collective_failure(exception):
            return  # writing needs the other processes, which are stuck or gone
        if self.dirpath is None or trainer.global_step == 0:
            # nothing trained yet (a dataset missing, a shape refused at the first step): a new fit starts
            # from the same state; before its setup the run has no folder, and last.ckpt went to the cwd
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        if progress.ready > progress.completed:  # stopped inside a step: resume at that step
            for loader in getattr(trainer.fit_loop._combined_loader, "flattened", []):
                if hasattr(loader, "position"):
                    loader.position = max(0, loader.position - (progress.ready - progress.completed))
        try:
            self.write_last(trainer)
        except TrainingDivergedError:
            pass

    # ---------------------------------------------------------------------------------- Ctrl-C
    def _install_interrupt_handler(self) -> None:
        self._stop_requested = False
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGINT)
        if current is not signal.default_int_handler:
            return  # someone else handles Ctrl-C
        self._previous_sigint = current

        def stop_after_this_step(signum: int, frame: Any) -> None:
            self._stop_requested = True
            signal.signal(signal.SIGINT, self._previous_sigint)  # a second Ctrl-C stops at once
            rank_zero_warn("Ctrl-C: stopping after this step and writing last.ckpt (Ctrl-C again: stop now)")

        signal.signal(signal.SIGINT, stop_after_this_step)

    def _restore_interrupt_handler(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._previous_sigint = None
