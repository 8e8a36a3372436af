"""One run of a sweep, in its own process: ``python -m mlplab.tools.sweep.worker --config=RUN/run.yaml``.

The process reads the run's resolved config (``run.yaml``, the same file ``mlplab fit --config``
takes) and its record (``run.json``), fits the model like ``mlplab fit``, tests its best checkpoint,
and writes ``result.json``. An exception is recorded (status ``failed``, one line in ``error``, the
traceback in ``error.txt``); an interruption (Ctrl-C or SIGTERM, which Lightning ends with
``SystemExit``) writes nothing, so the next invocation of the sweep starts the run again.

Because the run is a process of its own started as ``python -m`` this module, Lightning can start
the other ranks of a run with several devices the way it does for ``mlplab fit`` (it runs the same
command again for each rank); only global rank 0 writes the result.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mlplab.callbacks.summary import completed_epochs
from mlplab.cli import MLPLabCLI, find_user_error
from mlplab.tools.sweep.record import ERROR_FILE, RESULT_FILE, RUN_CONFIG, RUN_FILE, RunRecord, read_record


def error_line(error: BaseException) -> str:
    """One line saying what went wrong: the user-facing message, else ``Type: message`` of the root cause.

    The root cause is the end of the ``raise ... from`` chain: jsonargparse wraps an exception raised in
    a class's ``__init__`` in its own ("Does not validate against any of the Union subtypes").
    """
    user_error = find_user_error(error)
    if user_error is not None:
        message = str(user_error)
    else:
        while error.__cause__ is not None:
            error = error.__cause__
        message = f"{type(error).__name__}: {str(error).strip()}"
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__


def run(config: Path, from_argv: bool = False) -> RunRecord:
    """Fit and test the run whose resolved config is ``config``; write and return its result (on rank 0).

    Args:
        config: ``OUT/runs/<run id>/run.yaml``; the run's record ``run.json`` is beside it.
        from_argv: Let LightningCLI read ``sys.argv`` (which is ``--config=<config>``) as ``mlplab fit``
            does, rather than passing the arguments (LightningCLI warns when it sees both).
    """
    folder = config.parent
    record = read_record(folder / RUN_FILE)
    if record is None:
        raise SystemExit(f"error: {folder / RUN_FILE} is missing or unreadable")
    record.status, record.error = "ok", ""
    start = time.monotonic()
    try:
        args = None if from_argv else [f"--config={config}"]
        cli = MLPLabCLI(args=args, run=False, parser_kwargs={"exit_on_error": False})
        record.run_dir = str(cli.trainer.log_dir or folder)
        fit_and_test(cli, record)
    except Exception as error:  # recorded, not raised: the sweep goes on with the next run
        record.status = "failed"
        record.error = error_line(error)
        if rank_zero_only.rank == 0:
            (folder / ERROR_FILE).write_text("".join(traceback.format_exception(error)))
    record.wall_time_s = round(time.monotonic() - start, 1)
    if rank_zero_only.rank == 0:
        record.write(RESULT_FILE)
    return record


def fit_and_test(cli: Any, record: RunRecord) -> None:
    """Fit the run's model, then test its best checkpoint; fill in the record's metrics."""
    trainer = cli.trainer
    trainer.fit(cli.model, datamodule=cli.datamodule)
    if trainer.interrupted:
        raise SystemExit(1)
    record.epochs = completed_epochs(trainer)
    checkpoint = trainer.checkpoint_callback
    score = getattr(checkpoint, "best_model_score", None)
    if score is None or not getattr(checkpoint, "best_model_path", ""):
        raise RuntimeError(
            f"no best checkpoint by {record.metric}: the run logged {sorted(trainer.callback_metrics)}"
        )
    record.best_val = float(score)
    tested = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    record.test_metrics = {key: float(value) for key, value in (tested[0] if tested else {}).items()}
    record.test = record.test_metrics.get(record.test_metric) if record.test_metric else None


def main() -> None:
    """Entry point: ``python -m mlplab.tools.sweep.worker --config=OUT/runs/<run id>/run.yaml``."""
    args = sys.argv[1:]
    if len(args) != 1 or not args[0].startswith("--config=") or not args[0].endswith(RUN_CONFIG):
        raise SystemExit(
            f"usage: python -m mlplab.tools.sweep.worker --config=OUT/runs/<run id>/{RUN_CONFIG}"
        )
    run(Path(args[0].split("=", 1)[1]), from_argv=True)


if __name__ == "__main__":
    main()
