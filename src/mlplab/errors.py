"""User-facing errors.

Every mistake a user can make in a config or on the command line raises one of these. The CLI prints
the message as a single ``error:`` line and exits with status 2 (set ``MLPLAB_DEBUG=1`` for the full
traceback). They subclass the built-in exception a Python user would expect, so code that uses mlplab
as a library can catch ``ValueError`` or ``FileNotFoundError`` as usual.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

#: Set it (to anything) for the full traceback of a user error instead of its one ``error:`` line.
DEBUG_ENV_VAR = "MLPLAB_DEBUG"


class MLPLabError(Exception):
    """Base class of the errors the CLI reports as one clear line.

    ``exit_status`` is the CLI's exit status for the error: 2 for mistakes in the command or the
    config (the default), 1 for a run that failed on its own (see :class:`TrainingDivergedError`).
    """

    exit_status: int = 2


class ConfigError(MLPLabError, ValueError):
    """A value in the config is invalid: the message names the key, the value and the fix."""


class DataNotFoundError(MLPLabError, FileNotFoundError):
    """A dataset file is missing and cannot be downloaded."""


class DataCorruptError(MLPLabError, ValueError):
    """A dataset file exists but cannot be read or fails its checksum."""


class CheckpointError(MLPLabError, ValueError):
    """A checkpoint cannot be read or does not fit the configured model."""


class TrainingDivergedError(MLPLabError, FloatingPointError):
    """Training stopped because the loss, the weights or the monitored metric stopped being finite.

    The message names what went non-finite, the step and the epoch. Exit status 1: the command was
    valid, the run failed. The attributes say the same for a program (``summary.json`` of the run):

    Attributes:
        step: The training step at which it was found non-finite (None: not known).
        epoch: The epoch of that step.
        value: What became non-finite (``"nan"``, ``"inf"``, ``"-inf"``): the training loss, or the
            monitored metric; None when it was the weights.
    """

    exit_status = 1

    def __init__(
        self, message: str, step: int | None = None, epoch: int | None = None, value: float | None = None
    ):
        super().__init__(message)
        self.step, self.epoch = step, epoch
        self.value = None if value is None else f"{value:g}"


def exit_with_error_line(error: MLPLabError) -> NoReturn:
    """End the command as for every user error: one ``error:`` line on stderr, exit ``error.exit_status``."""
    sys.stderr.write(f"error: {' '.join(str(error).split())}\n")
    sys.exit(error.exit_status)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``error:`` line and exit status 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {self.prog}: {message} (see --help)\n")
        sys.exit(2)


def require_positive(owner: str, **values: int) -> None:
    """Raise :class:`ConfigError` unless every value is a positive integer.

    Args:
        owner: Name of the class or function that checks, used in the message.
        **values: The named integers to check.
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")


def require_rate(owner: str, **values: float) -> None:
    """Raise :class:`ConfigError` unless every value is in ``[0, 1)`` (a dropout rate, label smoothing).

    Args:
        owner: Name of the class or function that checks, used in the message.
        **values: The named rates to check.
    """
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{owner}: {name} must be in [0, 1), got {value}")
