"""Make a stuck multi-process run impossible to miss, and let Ctrl-C and SIGTERM stop every process.

Processes of a multi-process (DDP) run meet in collectives: the gradient all-reduce of every step,
metric syncs at the end of an evaluation, barriers around checkpoints. A process that never arrives
(one batch more than the others, an exception swallowed, a dead node) leaves the others waiting
inside the collective, where the Python interpreter runs no signal handler: neither Ctrl-C nor
SIGTERM stop them. :class:`DistributedWatchdog` watches each process from a thread of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerStatus

from mlplab.errors import ConfigError

#: Seconds the process-group timeout exceeds the watchdog's: the watchdog speaks first, with one line;
#: the process group's own timeout (an exception in the waiting process, or NCCL's watchdog) is the
#: backstop when the interpreter cannot run the watchdog's thread.
PROCESS_GROUP_MARGIN_S = 60.0

#: Two signals closer than this are one (a signal sent to every process and forwarded by rank 0).
SAME_SIGNAL_S = 1.0

#: Signals that stopped a process of this run (the CLI's exit status is 128 + the first).
received_signals: list[int] = []


def is_collective_failure(error: BaseException | None) -> bool:
    """Whether ``error`` (or an exception it was raised from) is a failed or timed-out collective."""
    seen: set[int] = set()
    distributed_error = getattr(torch.distributed, "DistError", ())
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, distributed_error):
            return True
        if isinstance(error, RuntimeError):
            text = str(error)
            if any(mark in text for mark in ("/gloo/", "NCCL", "ProcessGroup", "Connection closed by peer")):
                return True
        error = error.__cause__ or error.__context__
    return False


def collective_failure_line(error: BaseException, rank: int, world_size: int) -> str:
    """One line for a collective that failed in process ``rank``: what the backend said, shortened."""
    while error.__cause__ is not None and is_collective_failure(error.__cause__):
        error = error.__cause__
    text = " ".join(str(error).split())
    if text.startswith("[") and "] " in text:  # gloo prefixes the C++ source file and line
        text = text.split("] ", 1)[1]
    text = text.split(" This is typically caused", 1)[0]
    return (
        f"rank {rank} of {world_size}: a collective failed ({text[:200]}); another process of the run "
        "stopped or is stuck: see its output above"
    )


class DistributedWatchdog(Callback):
    """End a multi-process run, in one line, when a process stops making progress.

    Active only when the run has several processes. Every batch (training, validation, test,
    prediction), every backward pass and optimiser step and every epoch boundary counts as progress.
    When a process makes none for ``timeout_s`` seconds, it is waiting in a collective for a process
    that is stuck or gone (the gradient all-reduce of a process that got one batch more, a metric sync
    that another process never reaches), or it is stuck itself. The watchdog's thread then writes one
    line naming the process's rank and where it waits, e.g.

    ``error: rank 0 of 2 made no progress for 600 s in training step 168 (epoch 0, batch 168): ...``

    stops the processes this one started (Lightning's launcher starts ranks 1... from rank 0), and ends
    the process with exit status 1. Rank 0 fires first (the others wait a few seconds longer), so a run
    started by ``mlplab fit --trainer.devices N`` ends with its line alone; under ``torchrun`` or
    SLURM, the launcher stops the other processes when rank 0 ends. The process group's own timeout
    (``trainer.strategy``'s ``timeout``) is set to ``timeout_s`` + 60 s unless the config sets it: a
    backstop for a process whose interpreter cannot run the watchdog's thread.

    **Ctrl-C and SIGTERM** stop every process at the same step: a signal received by any process is
    noted, the processes agree at the end of every training step whether one was (a one-number
    all-reduce), and then all stop together after writing ``last.ckpt`` (see
    :class:`~mlplab.callbacks.BestCheckpoint`); the exit status is 128 + the signal's number. (Were
    each process to stop where it received the signal, the others would wait for it in the next
    all-reduce.) A process that is stuck in a collective cannot run Python's signal handlers; the
    watchdog's thread sees the signal all the same (``signal.set_wakeup_fd``) and ends the process
    when it has made no progress for ``signal_grace_s`` seconds since, or at once on a second Ctrl-C
    or SIGTERM.

    Args:
        enabled: Whether to watch at all (only ever active with several processes).
        timeout_s: Seconds without progress after which the run is ended. Make it longer than the
            longest step (the first step compiles with ``torch.compile``; checkpoint writes of large
            models take a while).
        signal_grace_s: Seconds a process that received Ctrl-C or SIGTERM may go without progress
            before it is ended without a checkpoint.
    """

    def __init__(self, enabled: bool = True, timeout_s: float = 1800.0, signal_grace_s: float = 60.0):
        if timeout_s <= 0 or signal_grace_s <= 0:
            raise ConfigError(
                f"watchdog.timeout_s and watchdog.signal_grace_s must be positive, got {timeout_s} and "
                f"{signal_grace_s}"
            )
        self.enabled = enabled
        self.timeout_s = float(timeout_s)
        self.signal_grace_s = float(signal_grace_s)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_progress = time.monotonic()
        self._where = "setup"
        self._trainer: L.Trainer | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._previous_wakeup_fd = -1
        self._previous_handlers: dict[int, Any] = {}
        self._signals: list[tuple[float, int]] = []
        self._signalled: int | None = None

    # ------------------------------------------------------------------------------ configuration
    def process_group_timeout(self) -> timedelta:
        """The timeout the process group's collectives get: the watchdog's plus a margin."""
        return timedelta(seconds=self.timeout_s + PROCESS_GROUP_MARGIN_S)

    def configure_strategy(self, strategy: Any) -> None:
        """Give a distributed strategy the process-group timeout, unless its own was set in the config.

        Called by the CLI when it builds the trainer, before the process group exists.
        """
        from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout

        if self.enabled and getattr(strategy, "_timeout", None) == default_pg_timeout:
            strategy._timeout = self.process_group_timeout()

    # ------------------------------------------------------------------------------------ progress
    def _progress(self, where: str) -> None:
        self._last_progress = time.monotonic()
        self._where = where

    def _training(self, trainer: L.Trainer, batch_idx: int) -> str:
        return f"training step {trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx})"

    # The per-batch hooks return at once when there is no thread to watch (a single process): they run
    # several times a step, and describing the place costs a few microseconds each.
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._thread is None:
            return
        self._progress(self._training(trainer, batch_idx))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs, batch, batch_idx: int) -> None:
        if self._thread is None:
            return
        self._progress(f"the end of {self._training(trainer, batch_idx)}")
        if trainer.strategy.reduce_boolean_decision(self._signalled is not None, all=False):
            # every process at once: Lightning ends the step with SIGTERMException, checkpoints, exits
            trainer._signal_connector.received_sigterm = True

    def on_before_backward(self, trainer: L.Trainer, pl_module: Any, loss: Any) -> None:
        if self._thread is None:
            return
        self._progress(f"the backward pass of training step {trainer.global_step}")

    def on_after_backward(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._thread is None:
            return
        self._progress(f"the optimiser step of training step {trainer.global_step}")

    def _evaluation(self, trainer: L.Trainer, stage: str, batch_idx: int, end: bool = False) -> None:
        if self._thread is None:
            return
        place = f"{stage} batch {batch_idx} (epoch {trainer.current_epoch}, step {trainer.global_step})"
        self._progress(f"the end of {place}" if end else place)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._evaluation(trainer, "validation", batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._evaluation(trainer, "validation", batch_idx, end=True)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._evaluation(trainer, "test", batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._evaluation(trainer, "test", batch_idx, end=True)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._evaluation(trainer, "prediction", batch_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._evaluation(trainer, "prediction", batch_idx, end=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._progress(f"the start of training epoch {trainer.current_epoch}")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._progress(f"the end of training epoch {trainer.current_epoch} (step {trainer.global_step})")

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._progress(f"the start of validation (epoch {trainer.current_epoch}, step {trainer.global_step})")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._progress(f"the end of validation (epoch {trainer.current_epoch}, step {trainer.global_step})")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self._progress(f"a checkpoint write at step {trainer.global_step}")

    # -------------------------------------------------------------------------------- lifecycle
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self.enabled or trainer.world_size < 2:
            return
        self.teardown(trainer, pl_module, stage)  # a thread of an earlier run of this trainer
        self._trainer = trainer
        self._stop.clear()
        self._signals = []
        self._signalled = None
        self._progress(f"the setup of {stage}")
        self._watch_signals()
        self._thread = threading.Thread(target=self._watch, name="mlplab-watchdog", daemon=True)
        self._thread.start()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Handle Ctrl-C and SIGTERM the multi-process way (Lightning has installed its handlers by now)."""
        if self._thread is None or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self._stop_at_next_step)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous_handlers.items():
                signal.signal(signum, handler)
            if self._wakeup is not None:
                signal.set_wakeup_fd(self._previous_wakeup_fd)
        self._previous_handlers = {}
        if self._wakeup is not None:
            for end in self._wakeup:
                end.close()
            self._wakeup = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException):
        self._progress(f"the handling of {type(exception).__name__} at step {trainer.global_step}")

    # ---------------------------------------------------------------------------------- signals
    def _stop_at_next_step(self, signum: int, frame: Any) -> None:
        """Ctrl-C or SIGTERM: note it; every process stops at the end of the step (``on_train_batch_end``).

        Lightning's own flag is not set here: Lightning reads it in each process on its own (at the end
        of a step, in validation), and a process that stopped alone would leave the others waiting.
        """
        if signum not in received_signals:
            received_signals.append(signum)
        if self._signalled is None:
            self._signalled = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self._trainer is None or self._trainer.is_global_zero:
            sys.stderr.write(f"{name}: every process stops at the end of this step and writes last.ckpt\n")

    def _watch_signals(self) -> None:
        """Let the watchdog's thread see Ctrl-C and SIGTERM even while the main thread cannot handle them."""
        if threading.current_thread() is not threading.main_thread() or os.name != "posix":
            return
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        try:
            previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:
            reader.close()
            writer.close()
            return
        if previous != -1:  # someone else listens (an event loop): leave it to them
            signal.set_wakeup_fd(previous)
            reader.close()
            writer.close()
            return
        self._wakeup, self._previous_wakeup_fd = (reader, writer), previous

    def _read_signals(self) -> None:
        if self._wakeup is None:
            return
        try:
            data = self._wakeup[0].recv(64)
        except (BlockingIOError, OSError):
            return
        now = time.monotonic()
        for signum in data:
            if signum not in (signal.SIGINT, signal.SIGTERM):
                continue
            if not self._signals or now - self._signals[-1][0] > SAME_SIGNAL_S:
                self._signals.append((now, signum))

    # ---------------------------------------------------------------------------------- the thread
    def _deadline(self) -> float:
        """Seconds without progress before this process is ended: rank 0 first, the others a little later."""
        rank = self._trainer.global_rank if self._trainer is not None else 0
        return self.timeout_s if rank == 0 else self.timeout_s + min(10.0, 0.25 * self.timeout_s)

    def _finished(self) -> bool:
        """Whether Lightning is done with the run: it has handled an exception (or the trainer is gone)."""
        trainer = self._trainer
        if trainer is None:
            return True
        return trainer.state.status == TrainerStatus.INTERRUPTED and trainer.state.stage is None

    def _watch(self) -> None:
        poll = max(0.05, min(1.0, self.timeout_s / 20))
        while not self._stop.wait(poll):
            if self._finished():  # the exception was handled and went on to the caller: nothing to watch
                return
            self._read_signals()
            now = time.monotonic()
            idle = now - self._last_progress
            if self._signals:
                first, signum = self._signals[0]
                name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
                if len(self._signals) > 1:
                    self._end(f"stopped by a second {name}", 128 + signum, quiet=True)
                if self._last_progress < first and now - first > self.signal_grace_s:
                    self._end(
                        f"stopped by {name}: no progress for {self.signal_grace_s:g} s at {self._where}",
                        128 + signum,
                        quiet=True,
                    )
            if idle > self._deadline():
                self._end(
                    f"made no progress for {idle:.0f} s at {self._where}: it waits in a collective for a "
                    "process that is stuck or gone, or is stuck itself; stopping every process (raise "
                    "--watchdog.timeout_s if a step can take that long)",
                    1,
                )

    def _end(self, what: str, status: int, quiet: bool = False) -> None:
        """Write one line, stop the processes this one started, and end this process."""
        trainer = self._trainer
        rank = trainer.global_rank if trainer is not None else 0
        world_size = trainer.world_size if trainer is not None else 1
        if not quiet or rank == 0:
            try:
                sys.stderr.write(f"error: rank {rank} of {world_size} {what}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        launcher = getattr(getattr(trainer, "strategy", None), "launcher", None)
        for process in getattr(launcher, "procs", None) or []:
            try:
                process.kill()
            except OSError:
                pass
        os._exit(status)
