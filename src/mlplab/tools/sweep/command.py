"""``mlplab sweep``: the command line and :func:`run_sweep`, which plans, executes and reports a sweep.

How a sweep runs:

* Counting: every shape is parsed and built exactly like ``mlplab fit`` builds it, on the meta device
  (no memory; the count equals ``params_total`` of a real run). Shapes the family refuses are
  skipped; with ``fit``, the named integer argument is solved for each budget.
* Training: each kept shape x option values x seed is one run, resolved to its full config
  (``OUT/runs/<run id>/run.yaml``) and trained in a process of its own like ``mlplab fit``, followed by
  ``test`` of its best checkpoint. A run that fails or whose process dies is recorded with its error
  and the sweep goes on.
* Resuming and history: a finished run leaves ``result.json`` in its folder; the same command again
  trains only the rest (``--retry-failed`` also repeats failed runs). A run's id holds a hash of its
  resolved config: a changed override makes new runs, and the earlier ones stay in the outputs,
  marked as not current.
* Outputs: ``OUT/results.csv`` (one row per run), ``OUT/best.csv`` (the best shape of each family at
  each budget), ``OUT/pareto.png`` (metric against parameters, a frontier per family) and the same in
  TensorBoard under ``OUT/tensorboard``.
* Engines: sequential (default), ray (``mlplab[ray]``) or slurm (``mlplab[slurm]``, through submitit).
  One sweep at a time per output folder: a second one stops with one line, or waits with --wait.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ArgumentParser, Namespace

from mlplab.errors import DEBUG_ENV_VAR, ConfigError, MLPLabError
from mlplab.tools import pareto
from mlplab.tools.sweep import execute, report
from mlplab.tools.sweep.execute import ENGINES, SlurmOptions
from mlplab.tools.sweep.plan import Plan, plan_sweep
from mlplab.tools.sweep.record import RunRecord
from mlplab.tools.sweep.report import say
from mlplab.tools.sweep.spec import (
    SWEEP_KEYS,
    SweepSpec,
    add_sweep_arguments,
    check_sweep,
    check_sweep_file,
    sweep_error,
)


def check_out(out: str | Path) -> Path:
    """The output folder, refused in one line when it (or a folder above it) is a regular file."""
    out = Path(out)
    for folder in (out, *out.parents):
        if folder.exists() and not folder.is_dir():
            where = "" if folder == out else f" ({folder} is a file)"
            raise ConfigError(
                f"--out {out}: expected a folder (new or of an earlier sweep), got a file{where}"
            )
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the folder is not writable")
    return out


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    engine: str = "sequential",
    workers: int = 2,
    cpus_per_run: float = 1.0,
    gpus_per_run: float | None = None,
    retry_failed: bool = False,
    dry_run: bool = False,
    wait: bool = False,
    slurm: SlurmOptions | None = None,
    log: Callable[[str], None] = say,
) -> list[RunRecord]:
    """Plan the sweep, train what is not finished yet, and write the results, figure and tables.

    Args:
        spec: The sweep (see :func:`~mlplab.tools.sweep.spec.load_sweep`).
        out: Folder of the runs and the outputs.
        engine: ``sequential``, ``ray`` or ``slurm``.
        workers: Runs at once with ``ray`` and ``slurm``.
        cpus_per_run: CPUs each run gets with ``ray`` and ``slurm``.
        gpus_per_run: GPUs each run gets with ``ray`` (fractions share a GPU; ``None``: the GPUs shared
            out) and ``slurm`` (whole GPUs; ``None``: none).
        retry_failed: Run again the runs that failed before (they are read back by default).
        dry_run: Only count and list the runs; train and write nothing.
        wait: When another sweep is running in ``out``, wait for it instead of stopping.
        slurm: Options of the ``slurm`` engine.
        log: Where progress lines go.

    Returns:
        The records of ``results.csv``: every finished run in ``out``, those of this plan marked current.

    Raises:
        ConfigError: For a mistake in the sweep or the options, or when another sweep holds ``out``
            (:class:`~mlplab.tools.sweep.execute.SweepLocked`).
    """
    if engine not in ENGINES:
        raise ConfigError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if workers <= 0:
        raise ConfigError(f"--workers: expected a positive integer, got {workers}")
    out = check_out(out)
    if not dry_run and not wait:
        execute.check_not_locked(out)
    plan = plan_sweep(spec, out)
    if dry_run:
        report.log_plan(plan, len(plan.runs) - len(plan.pending()), log, listing=True)
        return []
    plan.out.mkdir(parents=True, exist_ok=True)
    with execute.sweep_lock(plan.out, wait, log):
        pending = plan.pending(retry_failed)  # read under the lock: a sweep waited for has finished some
        report.log_plan(plan, len(plan.runs) - len(pending), log, listing=False)
        (plan.out / "sweep.yaml").write_text(
            f"# {spec.path}, with the command line's changes; the runs' own arguments: {spec.overrides}\n"
            + spec.resolved
        )
        progress = _Progress(plan, pending, log)
        try:
            if pending and engine == "ray":
                execute.run_with_ray(pending, plan.out, workers, cpus_per_run, gpus_per_run, retry_failed)
            elif pending and engine == "slurm":
                execute.run_with_slurm(pending, plan.out, slurm or SlurmOptions(), workers, cpus_per_run,
                                       gpus_per_run, retry_failed, log, progress.done)  # fmt: skip
            elif pending:
                execute.run_sequential(pending, retry_failed, progress.started, progress.done)
        finally:
            records = report.collect(plan)
            report.write_results(plan.out, records)
        if progress.locked:
            log(f"note: {progress.locked} runs are being trained by another process (run.lock is held); "
                "run the command again later to collect them")  # fmt: skip
        report.write_outputs(plan, records, log)
    return records


class _Progress:
    """Logs each run as it starts (sequential) and ends, and keeps results.csv current."""

    def __init__(self, plan: Plan, runs: list[RunRecord], log: Callable[[str], None]):
        self.plan, self.total, self.log = plan, len(runs), log
        self.index = 0
        self.locked = 0
        self.announced: set[str] = set()

    def started(self, run: RunRecord) -> None:
        self.index += 1
        self.announced.add(run.run_id)
        trainable = self.plan.spec.count == "trainable"  # the count the budget applies to
        counted = run.params_trainable if trainable else run.params_total
        self.log(
            f"[{self.index}/{self.total}] {run.family} {run.shape} {run.options} seed {run.seed}: "
            f"{pareto.format_count(counted)} {'trainable ' if trainable else ''}parameters "
            f"(budget {pareto.format_count(run.budget)})"
        )

    def done(self, run: RunRecord, result: RunRecord | None) -> None:
        if run.run_id not in self.announced:
            self.started(run)
        if result is None:
            self.locked += 1
            self.log("    skipped: another process is training it (its run.lock is held)")
            return
        self.log("    " + report.describe(result))
        report.write_results(self.plan.out, report.collect(self.plan))


# ---------------------------------------------------------------------------------------- command line
def build_parser() -> ArgumentParser:
    """The ``mlplab sweep`` parser: the sweep file's keys (typed, see ``spec``) and the command's options."""
    details = (__doc__ or "").partition("\n\n")[2]
    parser = ArgumentParser(
        prog="mlplab sweep",
        description="mlplab sweep: parameter-matched sweeps over families and shapes, compared as Pareto "
        "frontiers (the Hourglass paper's method, for any family and task).\n\n" + details.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        exit_on_error=False,
        default_env=False,
        epilog="Any other --key=value arguments (e.g. --trainer.max_epochs=5 --data.source_split=test) are "
        "passed to every run, after the sweep file's overrides. See docs/sweeps.md.",
    )
    add_sweep_arguments(parser)
    group = parser.add_argument_group("Running the sweep")
    group.add_argument(
        "--out", type=str, required=True, help="folder of the runs, results.csv and pareto.png"
    )
    group.add_argument("--engine", type=str, choices=list(ENGINES), default="sequential",
                       help="sequential (default); ray: Ray Tune runs several at once; slurm: a SLURM job "
                       "array through submitit")  # fmt: skip
    group.add_argument("--workers", type=int, default=2, help="ray, slurm: trainings at once (default 2)")
    group.add_argument("--cpus-per-run", type=float, default=1.0,
                       help="ray, slurm: CPUs per training (default 1)")  # fmt: skip
    group.add_argument("--gpus-per-run", type=Optional[float], default=None,  # noqa: UP045 (a runtime type)
                       help="ray: GPUs per training, fractions allowed (default: shared out); slurm: whole "
                       "GPUs per training, one SLURM task each (default: none)")  # fmt: skip
    group.add_argument("--retry-failed", action="store_true", help="run again the runs that failed before")
    group.add_argument(
        "--dry-run", action="store_true", help="count the shapes and list the runs, without training"
    )
    group.add_argument(
        "--wait",
        action="store_true",
        help="when another sweep is running in --out, wait for it (default: stop)",
    )
    parser.add_class_arguments(SlurmOptions, "slurm", as_group=True)
    return parser


def split_arguments(parser: ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the command line into the sweep's own arguments and the arguments passed to every run.

    An argument whose key the sweep's parser knows (``--out``, ``--budgets``, ``--slurm.partition``) is
    the sweep's; any other ``--key=value`` or ``--key value`` goes to every run.
    """
    known = {option for action in parser._actions for option in action.option_strings}
    takes_value = {
        option for action in parser._actions if action.nargs != 0 for option in action.option_strings
    }
    own: list[str] = []
    runs: list[str] = []
    index = 0
    argv = list(argv)
    while index < len(argv):
        argument = argv[index]
        key = argument.split("=", 1)[0]
        target = own if key in known or not argument.startswith("--") else runs
        target.append(argument)
        index += 1
        needs_value = key in takes_value if target is own else argument.startswith("--")
        if "=" not in argument and needs_value and index < len(argv) and not argv[index].startswith("--"):
            target.append(argv[index])
            index += 1
    return own, runs


def _config_file(own: list[str]) -> Path | None:
    """The last ``--config`` file of the sweep's own arguments (``--config=FILE`` or ``--config FILE``)."""
    files = [
        argument.split("=", 1)[1] if "=" in argument else own[index + 1]
        for index, argument in enumerate(own)
        if argument.split("=", 1)[0] == "--config" and ("=" in argument or index + 1 < len(own))
    ]
    return Path(files[-1]) if files else None


def _spec_path(config: Namespace) -> Path:
    files = config.get("config") or []
    if files:
        return Path(os.fspath(files[-1]))
    return Path.cwd() / "sweep (command line)"


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop the sweep like Ctrl-C (its run's processes are stopped, nothing half recorded)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> None:
    """``mlplab sweep``: parse the command line, run the sweep; user errors and interruptions in one line."""
    argv = list(sys.argv[2:] if argv is None else argv)
    parser = build_parser()
    own, run_args = split_arguments(parser, argv)
    out = "OUT"
    try:
        if not any(a.split("=", 1)[0] in ("--config", "--families") for a in own) and not {
            "-h",
            "--help",
        } & set(own):
            raise ConfigError("--config: give the sweep file, e.g. --config configs/sweeps/quickstart.yaml")
        sweep_file = _config_file(own)
        if sweep_file is not None:
            check_sweep_file(sweep_file)
        try:
            options = parser.parse_args(own)
        except (argparse.ArgumentError, ValueError, TypeError) as error:
            raise sweep_error(sweep_file, error) from error
        out = options.out
        check_out(options.out)
        path = _spec_path(options)
        spec = check_sweep(Namespace({key: options[key] for key in SWEEP_KEYS}), path, run_args)
        slurm = SlurmOptions(**options.slurm.as_dict()) if options.get("slurm") else None
        with _sigterm_as_interrupt():
            run_sweep(
                spec,
                options.out,
                engine=options.engine,
                workers=options.workers,
                cpus_per_run=options.cpus_per_run,
                gpus_per_run=options.gpus_per_run,
                retry_failed=options.retry_failed,
                dry_run=options.dry_run,
                wait=options.wait,
                slurm=slurm,
            )
    except KeyboardInterrupt:
        sys.stderr.write(
            f"interrupted: finished runs are in {out}/results.csv; run the same command again to go on\n"
        )
        sys.exit(130)
    except MLPLabError as error:
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)
