"""``mlplab sweep``: parameter-matched sweeps over families and shapes, compared as Pareto frontiers.

The Hourglass paper's method (Chen et al., 2025, arXiv 2510.01796; official code
mtkresearch/Hourglass_LM, ``hourglass_mlp/hourglass-main/hourglass_mnist.sh``) as a command for any
family: build every shape of a grid, keep those whose parameter count is within a tolerance of a
budget, train them, and compare the best metric each family reaches against its parameter count.

A sweep file (YAML) says::

    base: ../quickstart.yaml            # the recipe every run starts from (a list composes several)
    families:                           # a name for each family: its backbone class and shape grid
      hourglass:
        class_path: HourglassMLP
        grid: {d_z: [256, 512], depth: [1, 2, 4]}
        fit: d_h                        # optional: for each grid point and budget, the d_h meeting it
      conventional:
        class_path: ConventionalMLP
        init_args: {}                   # fixed backbone arguments (optional)
        grid: {d_h: [256, 512, 768], depth: [1, 2, 3]}
        base: ...                       # optional: another recipe for this family
    budgets: [50k, 100k, 200k]          # parameter budgets (k, M, G suffixes allowed)
    tolerance: 0.15                     # keep shapes within ±15 % of a budget
    count: total                        # or trainable (a fixed W_in counts in total only)
    metric: val/psnr                    # optional: default the task's monitor ...
    mode: max                           # ... and its direction
    seeds: [0, 1]                       # repeats (or ``repeats: 2`` for seeds 0 and 1)
    options:                            # optional: other settings to sweep, every value for every shape
      model.init_args.optimizer.init_args.lr: [0.001, 0.005]
    overrides:                          # optional: fixed settings of every run
      trainer.max_epochs: 20

How a sweep runs:

* **Counting**: every shape is parsed and built exactly like ``mlplab fit`` builds it (the same parser,
  config files and data-to-task links) but on the meta device, so counting costs no memory and equals
  the count of a real run (``params_total`` in the run's ``hparams.yaml``). Shapes the family refuses
  (e.g. ``d_h >= d_z`` for an Hourglass MLP) are skipped; a grid argument the family does not take, or
  a budget no shape meets, ends the command with one ``error:`` line. With ``fit``, the named integer
  argument is solved for each budget (secant steps on the counts, exact for counts affine in it).
* **Training**: each kept shape × option values × seed is one normal ``mlplab fit`` run in
  ``OUT/runs/<run id>/lightning_logs/version_N`` (config, checkpoints, TensorBoard events), followed by
  ``test`` of its best checkpoint. The run id holds a hash of the run's complete arguments and recipe
  files, so changing any of them makes a new run. A run that fails is recorded with its error (and a
  traceback in ``error.txt``) and the sweep goes on.
* **Resuming**: a finished run leaves ``result.json`` in its folder; running the same command again
  reads those back and trains only the rest (``--retry-failed`` also repeats failed runs). A run that
  was interrupted starts again from its beginning, in the next ``version_N``.
* **Outputs**: ``OUT/results.csv`` (one row per run), ``OUT/best.csv`` (the best shape of each family
  at each budget, by the seed-averaged validation metric), ``OUT/pareto.png`` (metric against
  parameters, a point per run and a frontier per family) and the same figure and table in
  TensorBoard under ``OUT/tensorboard``.
* **Engines**: ``sequential`` (default; nothing extra), or ``ray`` (Ray Tune runs ``--workers`` trainings
  at once, each with ``--cpus-per-run`` CPUs and ``--gpus-per-run`` of a GPU; ``pip install
  'mlplab[ray]'``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import inspect
import itertools
import json
import logging
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from mlplab.cli import MLPLabCLI, condense_parser_error, find_user_error
from mlplab.errors import ConfigError, MLPLabError
from mlplab.models.counting import count_parameters
from mlplab.tools import pareto
from mlplab.tools.sweep_spec import (
    FamilySpec,
    SweepSpec,
    class_arguments,
    format_value,
    load_sweep,
    resolve_class,
)

#: Settings of every run unless the sweep file or the command line says otherwise.
RUN_DEFAULTS = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
#: Columns of results.csv.
RESULT_FIELDS = [
    "family", "shape", "options", "params_total", "params_trainable", "budget", "seed", "metric",
    "best_val", "test", "wall_time_s", "epochs", "status", "error", "run_dir", "run_id",
]  # fmt: skip
BEST_FIELDS = [
    "budget", "family", "shape", "options", "params_total", "params_trainable", "seeds", "best_val", "test",
]  # fmt: skip
RESULT_FILE = "result.json"


# ------------------------------------------------------------------------------------------- planning
def say(line: str) -> None:
    """Print a progress line at once (sweeps often write to a log file)."""
    print(line, flush=True)


@dataclass
class Candidate:
    """One shape of one family, with its parameter counts (or why the family refused it)."""

    family: FamilySpec
    shape: dict[str, Any]
    args: list[str]
    params_total: int = 0
    params_trainable: int = 0
    refused: str | None = None
    budget: int | None = None

    @property
    def shape_text(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.shape.items())


@dataclass
class Plan:
    """What a sweep will run: the counted candidates, the chosen runs, the metric and its direction."""

    spec: SweepSpec
    out: Path
    candidates: list[Candidate]
    runs: list[dict[str, Any]]
    metric: str
    mode: str
    notes: list[str]
    counting_seconds: float

    @property
    def test_metric(self) -> str | None:
        return test_metric_name(self.metric)


def test_metric_name(metric: str) -> str | None:
    """``val/psnr`` -> ``test/psnr`` (the same metric on the test split), ``None`` for other names."""
    return "test/" + metric[4:] if metric.startswith("val/") else None


def _base_backbone(files: Sequence[Path]) -> tuple[str | None, dict[str, Any]]:
    """The backbone class path and arguments the base recipes set (the last file that sets them wins)."""
    class_path, init_args = None, {}
    for file in files:
        config = yaml.safe_load(file.read_text()) or {}
        model = config.get("model") or {}
        backbone = (model.get("init_args") or {}).get("backbone") or model.get("backbone")
        if isinstance(backbone, dict) and backbone.get("class_path"):
            if backbone["class_path"] != class_path:
                init_args = {}
            class_path = backbone["class_path"]
            init_args.update(backbone.get("init_args") or {})
    return class_path, init_args


def backbone_argument(family: FamilySpec, shape: dict[str, Any]) -> str:
    """The ``--model.init_args.backbone=...`` argument of one shape.

    When the family is not the base recipe's backbone class, the base's backbone arguments are not
    carried over to it (jsonargparse would keep every one the new class also takes, e.g. a
    conventional MLP would inherit the hourglass stream width): such arguments are reset to the
    family's defaults unless the family sets them.
    """
    init_args: dict[str, Any] = {}
    base_path, base_args = _base_backbone(family.base)
    base_class = None
    if base_path:
        try:
            base_class = resolve_class(base_path, "base")
        except ConfigError:
            base_class = None
    if base_class is not family.family_class:
        accepted = class_arguments(family.family_class) or {}
        for key in base_args:
            parameter = accepted.get(key)
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                init_args[key] = parameter.default
    init_args.update(family.init_args)
    init_args.update(shape)
    return "--model.init_args.backbone=" + json.dumps(
        {"class_path": family.class_path, "init_args": init_args}
    )


def run_arguments(
    spec: SweepSpec, family: FamilySpec, shape: dict[str, Any], options: dict[str, Any]
) -> list[str]:
    """The command-line arguments of one run (without its seed and output folder)."""
    args = [f"--config={file}" for file in family.base]
    args += RUN_DEFAULTS
    args.append(backbone_argument(family, shape))
    args += [f"--{key}={format_value(value)}" for key, value in options.items()]
    args += spec.overrides
    return args


class _MetaCountCLI(MLPLabCLI):
    """Parses a run's arguments and builds its classes exactly as ``mlplab fit`` does, on the meta device.

    The task (with its backbone) and the DataModule are built inside ``torch.device("meta")``, so
    parameters hold no memory; no Trainer is built and nothing is written.
    """

    def instantiate_classes(self) -> None:
        with torch.device("meta"):
            super().instantiate_classes()

    def instantiate_trainer(self, **kwargs: Any) -> None:
        return None


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextmanager
def _plain_argv() -> Iterator[None]:
    """Hide the sweep's own arguments from LightningCLI, which warns when it sees both."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


class ArgumentsRejected(ConfigError):
    """The parser rejected a run's arguments (an unknown argument, a wrong type): the sweep cannot go on."""


def count_on_meta(args: Sequence[str]) -> tuple[int, int, Any]:
    """``(total, trainable, task)`` of the run ``args`` describe, built on the meta device.

    Raises:
        ArgumentsRejected: When the parser rejects the arguments (an unknown argument, a wrong type).
        MLPLabError: When a family, task or DataModule refuses its arguments (e.g. ``d_h >= d_z``).
        ConfigError: When the model cannot be built on the meta device at all.
    """
    try:
        with _quiet("lightning.fabric.utilities.seed"), _plain_argv(), torch.random.fork_rng(devices=[]):
            cli = _MetaCountCLI(args=list(args), run=False, parser_kwargs={"exit_on_error": False})
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is not None:
            raise user_error from error
        if isinstance(error, argparse.ArgumentError):
            raise ArgumentsRejected(condense_parser_error(str(error))) from error
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigError(
            f"cannot build the model on the meta device ({type(error).__name__}: {reason})"
        ) from error
    total, trainable = count_parameters(cli.model.backbone)
    return total, trainable, cli.model


def _combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _slug(values: dict[str, Any]) -> str:
    text = "-".join(f"{key.rsplit('.', 1)[-1]}{value}" for key, value in values.items())
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)


def _digest(args: Sequence[str]) -> str:
    """A hash of a run's arguments, with each config file's path replaced by its contents."""
    digest = hashlib.sha256()
    for arg in args:
        if arg.startswith("--config="):
            digest.update(Path(arg.split("=", 1)[1]).read_bytes())
        else:
            digest.update(arg.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:8]


class ShapeCounter:
    """Counts the shapes of a sweep's families on the meta device, solving ``fit`` arguments for budgets.

    Args:
        spec: The sweep.
        options: The option values the counts are taken with (options must not change a model's size).
    """

    def __init__(self, spec: SweepSpec, options: dict[str, Any]):
        self.spec = spec
        self.options = options
        self.task: Any = None
        self._memo: dict[tuple[str, ...], tuple[int, int] | str] = {}

    def count(self, family: FamilySpec, shape: dict[str, Any]) -> Candidate:
        """One shape, counted (or refused, with the family's reason)."""
        shape = family.ordered(shape)
        candidate = Candidate(family, shape, run_arguments(self.spec, family, shape, self.options))
        key = tuple(candidate.args)
        if key not in self._memo:
            try:
                total, trainable, task = count_on_meta(candidate.args)
                self.task = self.task or task
                self._memo[key] = (total, trainable)
            except ArgumentsRejected as error:
                raise ConfigError(f"{self.spec.name}: families.{family.name}: {error}") from error
            except MLPLabError as error:
                self._memo[key] = str(error)
        result = self._memo[key]
        if isinstance(result, str):
            candidate.refused = result
        else:
            candidate.params_total, candidate.params_trainable = result
        return candidate

    def _size(self, candidate: Candidate) -> int:
        return candidate.params_total if self.spec.count == "total" else candidate.params_trainable

    def candidates(self, family: FamilySpec) -> list[Candidate]:
        """Every shape of the family's grid; with ``fit``, the fitted shape for each grid point and budget."""
        if family.fit is None:
            return [self.count(family, shape) for shape in _combinations(family.grid)]
        found: dict[tuple, Candidate] = {}
        for shape in _combinations(family.grid):
            for candidate in self.fit(family, shape):
                found.setdefault(tuple(candidate.shape.items()), candidate)
        return list(found.values())

    @staticmethod
    def _starting_value(family: FamilySpec) -> int:
        """Where the search for ``fit`` starts: the base recipe's value, else the family's default, else 1."""
        base_path, base_args = _base_backbone(family.base)
        if base_path and family.fit in base_args:
            try:
                if resolve_class(base_path, "base") is family.family_class:
                    return max(1, int(base_args[family.fit]))
            except (ConfigError, TypeError, ValueError):
                pass
        parameter = (class_arguments(family.family_class) or {}).get(family.fit)
        default = getattr(parameter, "default", None)
        return default if isinstance(default, int) and not isinstance(default, bool) and default > 0 else 1

    def fit(self, family: FamilySpec, shape: dict[str, Any]) -> list[Candidate]:
        """For each budget, the shape whose ``fit`` argument brings its count nearest the budget.

        Two valid values (the base recipe's value, or the family's default, and twice it; else the
        first two accepted in a row of 1, 2, 4, ...) give a first line; secant
        steps on the integers then find the nearest count, exactly when the count is affine in the
        argument (as for the width of an MLP block). A value the family refuses ends the search for
        that budget with the family's reason.
        """
        name = family.fit
        first_refusal = None
        start = self._starting_value(family)
        for values in ([start, 2 * start], [2**i for i in range(17)]):
            probes: list[Candidate] = []
            for value in values:
                candidate = self.count(family, {**shape, name: value})
                if candidate.refused is None:
                    probes.append(candidate)
                    if len(probes) == 2:
                        break
                else:
                    probes.clear()
                    first_refusal = first_refusal or candidate
            if len(probes) == 2:
                break
        if len(probes) < 2:
            return [first_refusal] if first_refusal else []
        results = []
        for budget in self.spec.budgets:
            (low, high) = probes
            best = min(probes, key=lambda c: abs(self._size(c) - budget))
            for _ in range(12):
                x0, y0 = low.shape[name], self._size(low)
                x1, y1 = high.shape[name], self._size(high)
                if y1 == y0:
                    break
                guess = max(1, round(x1 + (budget - y1) * (x1 - x0) / (y1 - y0)))
                if guess in (x0, x1):
                    break
                candidate = self.count(family, {**shape, name: guess})
                if candidate.refused is not None:
                    best = candidate
                    break
                low, high = high, candidate
                if abs(self._size(candidate) - budget) < abs(self._size(best) - budget):
                    best = candidate
            results.append(best)
        return results


def plan_sweep(spec: SweepSpec, out: str | Path) -> Plan:
    """Count every shape on the meta device, keep those near a budget, and list the runs to do.

    Raises:
        ConfigError: When the parser rejects a family's arguments, the family refuses every shape of
            its grid, or no shape of any family is within the tolerance of a budget.
    """
    out = Path(out).resolve()
    option_sets = _combinations(spec.options) if spec.options else [{}]
    counter = ShapeCounter(spec, option_sets[0])
    candidates: list[Candidate] = []
    start = time.monotonic()
    for family in spec.families:
        family_candidates = counter.candidates(family)
        if not any(c.refused is None for c in family_candidates):
            raise ConfigError(
                f"{spec.name}: families.{family.name}: {family.family_class.__name__} refuses every shape of "
                f"the grid ({family_candidates[0].refused if family_candidates else 'no shape'})"
            )
        candidates += family_candidates
    task = counter.task
    counting_seconds = time.monotonic() - start

    metric = spec.metric or getattr(task, "monitor", None) or "val/loss"
    mode = (
        spec.mode
        or (getattr(task, "monitor_mode", None) if spec.metric is None else None)
        or ("min" if "loss" in metric else "max")
    )
    notes = _assign_budgets(spec, candidates)

    checkpoint_args = []
    if spec.metric is not None:  # the best checkpoint follows the sweep's metric
        checkpoint_args = [f"--checkpoint.monitor={metric}", f"--checkpoint.mode={mode}"]
    runs = []
    for candidate in candidates:
        if candidate.budget is None:
            continue
        for options in option_sets:
            for seed in spec.seeds:
                family = candidate.family
                args = run_arguments(spec, family, candidate.shape, options) + checkpoint_args
                args.append(f"--seed_everything={seed}")
                run_id = f"{family.name}-{_slug(candidate.shape)}"
                run_id += f"-{_slug(options)}" if options else ""
                run_id += f"-s{seed}-{_digest(args)}"
                runs.append(
                    {
                        "run_id": run_id,
                        "family": family.name,
                        "class_path": family.class_path,
                        "shape": candidate.shape_text,
                        "options": " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in options.items()),
                        "seed": seed,
                        "budget": candidate.budget,
                        "params_total": candidate.params_total,
                        "params_trainable": candidate.params_trainable,
                        "metric": metric,
                        "mode": mode,
                        "test_metric": test_metric_name(metric),
                        "args": args,
                        "root": str(out / "runs" / run_id),
                        "cwd": os.getcwd(),
                    }
                )
    # budget by budget, so that a sweep stopped early has compared the families at the budgets it reached
    runs.sort(key=lambda r: (r["budget"], r["seed"], r["family"], r["params_total"], r["shape"]))
    return Plan(spec, out, candidates, runs, metric, mode, notes, counting_seconds)


def _assign_budgets(spec: SweepSpec, candidates: list[Candidate]) -> list[str]:
    """Give each counted candidate its nearest budget when within the tolerance; check every budget is met."""
    notes = []
    counted = [c for c in candidates if not c.refused]
    key = "params_total" if spec.count == "total" else "params_trainable"
    for candidate in counted:
        params = getattr(candidate, key)
        nearest = min(spec.budgets, key=lambda b: abs(params - b) / b)
        if abs(params - nearest) <= spec.tolerance * nearest:
            candidate.budget = nearest
    for budget in spec.budgets:
        low, high = budget * (1 - spec.tolerance), budget * (1 + spec.tolerance)
        band = f"{pareto.format_count(budget)} ± {spec.tolerance:.0%}"
        if not any(c.budget == budget for c in counted):
            closest = min(counted, key=lambda c: abs(getattr(c, key) - budget))
            raise ConfigError(
                f"{spec.name}: budgets: no shape of any family has {pareto.format_count(low)} to "
                f"{pareto.format_count(high)} {spec.count} parameters (budget {band}; closest: "
                f"{closest.family.name} {closest.shape_text} with "
                f"{pareto.format_count(getattr(closest, key))}); "
                "widen the grid or the tolerance, or drop the budget"
            )
        for family in spec.families:
            if not any(c.budget == budget and c.family is family for c in counted):
                notes.append(f"no {family.name} shape within {band}")
    return notes


# ------------------------------------------------------------------------------------------- running
def execute_run(run: dict[str, Any]) -> dict[str, Any]:
    """Train one planned run like ``mlplab fit``, test its best checkpoint, and write ``result.json``.

    Any exception of the run is recorded (status ``failed``, its one-line message in ``error`` and the
    traceback in ``error.txt``) instead of raised; an interruption (Ctrl-C, which Lightning turns into
    ``SystemExit``) writes nothing, so the run is started again by the next invocation.
    """
    root = Path(run["root"])
    root.mkdir(parents=True, exist_ok=True)
    row = {key: run.get(key) for key in RESULT_FIELDS if key in run}
    row.update(status="ok", error="", best_val=None, test=None, epochs=None, run_dir="", test_metrics={})
    row["args"] = run["args"]
    start = time.monotonic()
    try:
        with _plain_argv():
            cli = MLPLabCLI(
                args=[*run["args"], f"--trainer.default_root_dir={root}"],
                run=False,
                parser_kwargs={"exit_on_error": False},
            )
            row["run_dir"] = str(cli.trainer.log_dir or root)
            train_and_test(cli, run, row)
    except Exception as error:
        user_error = find_user_error(error)
        message = str(user_error) if user_error else f"{type(error).__name__}: {str(error).strip()}"
        row["status"] = "failed"
        row["error"] = message.splitlines()[0] if message else type(error).__name__
        (root / "error.txt").write_text("".join(traceback.format_exception(error)))
    row["wall_time_s"] = round(time.monotonic() - start, 1)
    _write_json(root / RESULT_FILE, row)
    return row


def train_and_test(cli: MLPLabCLI, run: dict[str, Any], row: dict[str, Any]) -> None:
    """Fit the run's model, then test its best checkpoint; fill in the row's metrics."""
    trainer = cli.trainer
    trainer.fit(cli.model, datamodule=cli.datamodule)
    if trainer.interrupted:
        raise SystemExit(1)
    row["epochs"] = trainer.current_epoch
    checkpoint = trainer.checkpoint_callback
    score = getattr(checkpoint, "best_model_score", None)
    if score is None or not getattr(checkpoint, "best_model_path", ""):
        raise RuntimeError(
            f"no best checkpoint by {run['metric']}: the run logged {sorted(trainer.callback_metrics)}"
        )
    row["best_val"] = float(score)
    tested = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    metrics = {key: float(value) for key, value in (tested[0] if tested else {}).items()}
    row["test_metrics"] = metrics
    row["test"] = metrics.get(run["test_metric"]) if run.get("test_metric") else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)


def read_result(run: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded result of a planned run, or ``None`` when it has not finished."""
    path = Path(run["root"]) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _ray_trial(config: dict[str, Any]) -> dict[str, Any]:
    """One Ray Tune trial: a planned run, executed in the worker process."""
    run = config["run"]
    os.chdir(run["cwd"])
    if run["cwd"] not in sys.path:
        sys.path.insert(0, run["cwd"])
    row = execute_run(run)
    return {
        key: row[key] for key in ("status", "best_val", "test", "wall_time_s") if row.get(key) is not None
    }


def run_with_ray(
    runs: list[dict[str, Any]], out: Path, workers: int, cpus_per_run: float, gpus_per_run: float | None
) -> None:
    """Run the planned runs as Ray Tune trials, ``workers`` at a time (each writes its own result)."""
    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise ConfigError(
            "--engine ray needs Ray Tune: pip install 'mlplab[ray]' (or 'ray[tune]'), "
            "or use --engine sequential"
        ) from error
    if gpus_per_run is None:
        gpus = torch.cuda.device_count()
        gpus_per_run = min(1.0, gpus / workers) if gpus else 0.0
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, configure_logging=False)
    tuner = tune.Tuner(
        tune.with_resources(_ray_trial, {"cpu": cpus_per_run, "gpu": gpus_per_run}),
        param_space={"run": tune.grid_search(runs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=workers),
        run_config=tune.RunConfig(
            storage_path=str(out / "ray"), name=time.strftime("sweep-%Y%m%d-%H%M%S"), verbose=1
        ),
    )
    tuner.fit()


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    engine: str = "sequential",
    workers: int = 2,
    cpus_per_run: float = 1.0,
    gpus_per_run: float | None = None,
    retry_failed: bool = False,
    dry_run: bool = False,
    log: Callable[[str], None] = say,
) -> list[dict[str, Any]]:
    """Plan the sweep, train what is not finished yet, and write the results, figure and tables.

    Args:
        spec: The sweep (see :func:`load_sweep`).
        out: Folder of the runs and the outputs.
        engine: ``sequential`` or ``ray``.
        workers: Runs at once with ``ray``.
        cpus_per_run: CPUs Ray reserves for each run.
        gpus_per_run: GPUs (or a fraction of one) Ray gives each run; ``None``: the GPUs shared out.
        retry_failed: Run again the runs that failed before (they are read back by default).
        dry_run: Only count and list the runs; train and write nothing.
        log: Where progress lines go.

    Returns:
        The rows of ``results.csv``.
    """
    if engine not in ("sequential", "ray"):
        raise ConfigError(f"--engine: expected sequential or ray, got {engine!r}")
    plan = plan_sweep(spec, out)
    done = {run["run_id"]: read_result(run) for run in plan.runs}
    pending = [
        run
        for run in plan.runs
        if done[run["run_id"]] is None or (retry_failed and done[run["run_id"]].get("status") != "ok")
    ]
    _log_plan(plan, len(plan.runs) - len(pending), log, listing=dry_run)
    if dry_run:
        return []
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "sweep.yaml").write_text(
        f"# {spec.path} with the command-line overrides {spec.overrides}\n" + spec.path.read_text()
    )
    try:
        if engine == "ray" and pending:
            run_with_ray(pending, plan.out, workers, cpus_per_run, gpus_per_run)
        else:
            for index, run in enumerate(pending, 1):
                log(f"[{index}/{len(pending)}] {run['family']} {run['shape']} {run['options']} "
                    f"seed {run['seed']}: "
                    f"{pareto.format_count(run['params_total'])} parameters (budget "
                    f"{pareto.format_count(run['budget'])})")  # fmt: skip
                row = execute_run(run)
                log("    " + _describe(row, plan))
                write_results(plan, collect_rows(plan))
    finally:
        rows = collect_rows(plan)
        write_results(plan, rows)
    rows = collect_rows(plan)
    write_outputs(plan, rows, log)
    return rows


def _describe(row: dict[str, Any], plan: Plan) -> str:
    if row["status"] != "ok":
        return f"failed after {row['wall_time_s']} s: {row['error']}"
    test = f", {plan.test_metric} {row['test']:.4g}" if row.get("test") is not None else ""
    return f"{plan.metric} {row['best_val']:.4g}{test} ({row['epochs']} epochs, {row['wall_time_s']} s)"


def _log_plan(plan: Plan, finished: int, log: Callable[[str], None], listing: bool) -> None:
    spec = plan.spec
    counted = [c for c in plan.candidates if not c.refused]
    kept = [c for c in counted if c.budget is not None]
    log(
        f"sweep {spec.name}: {len(plan.candidates)} shapes of {len(spec.families)} families counted on "
        f"the meta device in {plan.counting_seconds:.1f} s ({len(plan.candidates) - len(counted)} refused "
        f"by their family); {len(kept)} within ±{spec.tolerance:.0%} of the budgets "
        f"{', '.join(pareto.format_count(b) for b in spec.budgets)}"
    )
    log(
        f"{len(plan.runs)} runs ({len(spec.seeds)} seed(s) each), {finished} finished, "
        f"{len(plan.runs) - finished} to run; best by {plan.metric} ({plan.mode})"
    )
    for note in plan.notes:
        log(f"note: {note}")
    if listing:
        for candidate in sorted(kept, key=lambda c: (c.budget, c.family.name, c.params_total)):
            log(
                f"  budget {pareto.format_count(candidate.budget):>6}  {candidate.family.name:<14} "
                f"{candidate.shape_text:<32} {candidate.params_total:>12,} total "
                f"{candidate.params_trainable:>12,} trainable"
            )


def collect_rows(plan: Plan) -> list[dict[str, Any]]:
    """The results of the plan's finished runs, in a stable order."""
    rows = [result for run in plan.runs if (result := read_result(run)) is not None]
    return sorted(
        rows, key=lambda r: (r["family"], int(r["params_total"]), r["shape"], r["options"], r["seed"])
    )


def write_results(plan: Plan, rows: list[dict[str, Any]]) -> None:
    """Write ``results.csv``: one row per finished run."""
    if not rows and not (plan.out / "results.csv").exists():
        return
    plan.out.mkdir(parents=True, exist_ok=True)
    temporary = plan.out / "results.csv.tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, RESULT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(row.get(key)) for key in RESULT_FIELDS})
    os.replace(temporary, plan.out / "results.csv")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 5)
    return "" if value is None else value


def write_outputs(plan: Plan, rows: list[dict[str, Any]], log: Callable[[str], None] = say) -> None:
    """Write ``best.csv``, ``pareto.png`` and the TensorBoard figure and table; log the table."""
    spec = plan.spec
    count = "params_total" if spec.count == "total" else "params_trainable"
    configs = pareto.configurations(rows, count)
    best = pareto.best_per_budget(configs, plan.mode)
    with open(plan.out / "best.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, BEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for config in best:
            writer.writerow({key: _cell(config.get(key)) for key in BEST_FIELDS})
    figure = pareto.plot_frontiers(
        rows, plan.metric, plan.mode, spec.budgets, spec.tolerance, count,
        title=f"{spec.name}: {plan.metric} against parameters",
    )  # fmt: skip
    figure.savefig(plan.out / "pareto.png")
    table = pareto.markdown_table(best, plan.metric, plan.test_metric)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(plan.out / "tensorboard"))
    finished = sum(1 for row in rows if row.get("status") == "ok")
    writer.add_figure("sweep/pareto", figure, global_step=finished, close=True)
    writer.add_text("sweep/best", table, global_step=finished)
    writer.close()
    failed = [row for row in rows if row.get("status") != "ok"]
    log(
        f"{len(rows)} of {len(plan.runs)} runs finished ({len(failed)} failed); "
        "best shape per family and budget:"
    )
    log(table)
    log(f"wrote {plan.out / 'results.csv'}, {plan.out / 'best.csv'}, {plan.out / 'pareto.png'} and "
        f"{plan.out / 'tensorboard'}")  # fmt: skip


# ---------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The ``mlplab sweep`` argument parser."""
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="mlplab sweep",
        description=summary.replace("``", "") + "\n\n" + details,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        epilog="Any other --key=value arguments (e.g. --trainer.max_epochs=5 --data.source_split=test) are "
        "passed to every run, after the sweep file's overrides.",
    )
    parser.add_argument("--config", required=True, type=Path, help="the sweep file (YAML)")
    parser.add_argument(
        "--out", required=True, type=Path, help="folder of the runs, results.csv and pareto.png"
    )
    parser.add_argument("--engine", choices=["sequential", "ray"], default="sequential",
                        help="sequential (default), or ray: Ray Tune runs several at once")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="ray: trainings at once (default 2)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs per training (default 1)")
    parser.add_argument("--gpus-per-run", type=float, default=None,
                        help="ray: GPUs per training, fractions allowed (default: shared out)")  # fmt: skip
    parser.add_argument("--retry-failed", action="store_true", help="run again the runs that failed before")
    parser.add_argument("--dry-run", action="store_true",
                        help="count the shapes and list the runs, without training")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """``mlplab sweep``: parse the command line, run the sweep, report an interruption in one line."""
    parser = build_parser()
    options, extra = parser.parse_known_args(list(sys.argv[2:] if argv is None else argv))
    if options.workers <= 0:
        parser.error("--workers must be a positive integer")
    spec = load_sweep(options.config, extra)
    try:
        run_sweep(
            spec,
            options.out,
            engine=options.engine,
            workers=options.workers,
            cpus_per_run=options.cpus_per_run,
            gpus_per_run=options.gpus_per_run,
            retry_failed=options.retry_failed,
            dry_run=options.dry_run,
        )
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C and SIGTERM into SystemExit
        sys.stderr.write(
            f"interrupted: finished runs are in {options.out}/results.csv; "
            "run the same command again to go on\n"
        )
        sys.exit(130)
