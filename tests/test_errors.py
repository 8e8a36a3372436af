"""The helpers of ``mlplab.errors``: argument checks and the one ``error:`` line a command ends with."""

from __future__ import annotations

import math

import pytest

from mlplab.errors import (
    ConfigError,
    TrainingDivergedError,
    exit_with_error_line,
    require_positive,
    require_rate,
)


def test_require_rate_accepts_zero_up_to_one_exclusive() -> None:
    require_rate("Owner", dropout=0.0, label_smoothing=0.999)


@pytest.mark.parametrize("value", [1.0, -0.1, math.nan])
def test_require_rate_names_the_owner_and_the_value(value: float) -> None:
    with pytest.raises(ConfigError, match=r"^Owner: mlp2_dropout must be in \[0, 1\), got "):
        require_rate("Owner", mlp1_dropout=0.1, mlp2_dropout=value)


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_require_positive_wants_a_positive_integer(value: object) -> None:
    with pytest.raises(ConfigError, match="^Owner: depth must be a positive integer, got "):
        require_positive("Owner", depth=value)


def test_exit_with_error_line_folds_the_message_into_one_line_and_uses_the_status(capsys) -> None:
    error = TrainingDivergedError("loss is nan\n  at step 3")
    with pytest.raises(SystemExit) as exited:
        exit_with_error_line(error)
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: loss is nan at step 3\n"
