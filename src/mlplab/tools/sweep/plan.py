"""Planning a sweep: count every shape on the meta device, keep those near a budget, list the runs.

Counting parses and builds each shape exactly as ``mlplab fit`` does (the same parser, recipe files and
data-to-task links) but inside ``torch.device("meta")``, so it costs no memory and equals the count of
a real run. With ``fit``, the named integer argument is solved for each budget by secant steps on the
counts. Every planned run is resolved to its full config (what ``mlplab fit`` would run), which is its
identity: the run id holds a hash of it, so a changed recipe, override or command-line argument makes
new runs, and added budgets, shapes or seeds keep every finished one.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from lightning.pytorch.cli import LightningArgumentParser

from mlplab.cli import MLPLabCLI, condense_parser_error, find_user_error, plain_argv, quiet_loggers
from mlplab.errors import ConfigError, MLPLabError
from mlplab.metrics import metric_mode
from mlplab.models.counting import count_parameters
from mlplab.tools import pareto
from mlplab.tools.sweep.record import RunRecord, read_result
from mlplab.tools.sweep.spec import FamilySpec, SweepSpec, class_arguments, format_value, resolve_class

#: Settings of every run unless the sweep file or the command line says otherwise.
RUN_DEFAULTS = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
#: Config keys that are not part of a run's identity (the run's own folder).
NOT_IDENTITY = ("trainer.default_root_dir",)


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
    """What a sweep will run: the counted candidates, the planned runs, the metric and its direction."""

    spec: SweepSpec
    out: Path
    candidates: list[Candidate]
    runs: list[RunRecord]
    metric: str
    mode: str
    notes: list[str]
    counting_seconds: float

    @property
    def test_metric(self) -> str | None:
        return self.runs[0].test_metric if self.runs else None

    def pending(self, retry_failed: bool = False) -> list[RunRecord]:
        """The runs without a result (and, with ``retry_failed``, those that failed)."""
        pending = []
        for run in self.runs:
            result = read_result(run.folder)
            if result is None or (retry_failed and result.status != "ok"):
                pending.append(run)
        return pending


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

    #: The parser, built by the first count and reused by the next ones (building it takes about
    #: 0.3 s, as long as parsing a run's arguments and building its model on the meta device).
    _parser: ClassVar[LightningArgumentParser | None] = None

    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        if _MetaCountCLI._parser is None:
            super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
            _MetaCountCLI._parser = self.parser
        self.parser = _MetaCountCLI._parser

    def instantiate_classes(self) -> None:
        with torch.device("meta"):
            super().instantiate_classes()

    def instantiate_trainer(self, **kwargs: Any) -> None:
        return None


class ArgumentsRejected(ConfigError):
    """The parser rejected a run's arguments (an unknown argument, a wrong type): the sweep cannot go on."""


def build_on_meta(args: Sequence[str]) -> _MetaCountCLI:
    """Parse ``args`` like ``mlplab fit`` and build the task and DataModule on the meta device.

    Raises:
        ArgumentsRejected: When the parser rejects the arguments (an unknown argument, a wrong type).
        MLPLabError: When a family, task or DataModule refuses its arguments (e.g. ``mlp_dim >= embed_dim``).
        ConfigError: When the model cannot be built on the meta device at all.
    """
    try:
        seed_logger = "lightning.fabric.utilities.seed"
        with quiet_loggers(seed_logger), plain_argv(), torch.random.fork_rng(devices=[]):
            return _MetaCountCLI(
                args=list(args),
                run=False,
                parser_kwargs={"exit_on_error": False},
                load_from_checkpoint_support=False,  # no config dump for the hyperparameters: 0.1 s a count
            )
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


def _parser_error(args: Sequence[str]) -> str | None:
    """The one-line error of the run parser (built by the first count) for ``args``; ``None`` if none."""
    parser = _MetaCountCLI._parser
    if parser is None:
        return None
    try:
        with plain_argv():
            parser.parse_args(list(args))
    except argparse.ArgumentError as error:
        return condense_parser_error(str(error))
    except Exception:  # not the parser's refusal (a family's own check comes when it is built)
        return None
    return None


def _argument_units(args: Sequence[str]) -> list[list[str]]:
    """``args`` cut into the arguments they give: ``--key=value``, or ``--key`` and its value(s)."""
    units: list[list[str]] = []
    for arg in args:
        if arg.startswith("--") or not units:
            units.append([arg])
        else:
            units[-1].append(arg)
    return units


def count_on_meta(args: Sequence[str]) -> tuple[int, int, Any]:
    """``(total, trainable, task)`` of the run ``args`` describe, built on the meta device.

    Raises:
        ArgumentsRejected: When the parser rejects the arguments (an unknown argument, a wrong type).
        MLPLabError: When a family, task or DataModule refuses its arguments (e.g. ``mlp_dim >= embed_dim``).
        ConfigError: When the model cannot be built on the meta device at all.
    """
    cli = build_on_meta(args)
    total, trainable = count_parameters(cli.model.backbone)
    return total, trainable, cli.model


def _combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _slug(values: dict[str, Any]) -> str:
    text = "-".join(f"{key.rsplit('.', 1)[-1]}{value}" for key, value in values.items())
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)


class ShapeCounter:
    """Counts the shapes of a sweep's families on the meta device, solving ``fit`` arguments for budgets.

    Args:
        spec: The sweep.
        options: The option values the counts are taken with (options must not change a model's size).
        extra_args: More arguments of every run (the checkpoint's metric).
    """

    def __init__(self, spec: SweepSpec, options: dict[str, Any], extra_args: Sequence[str] = ()):
        self.spec = spec
        self.options = options
        self.extra_args = list(extra_args)
        self.task: Any = None
        self.parser: Any = None
        self._memo: dict[tuple[str, ...], tuple[int, int, Any] | str] = {}

    def count(self, family: FamilySpec, shape: dict[str, Any]) -> Candidate:
        """One shape, counted (or refused, with the family's reason)."""
        shape = family.ordered(shape)
        args = run_arguments(self.spec, family, shape, self.options) + self.extra_args
        candidate = Candidate(family, shape, args)
        key = tuple(args)
        if key not in self._memo:
            try:
                cli = build_on_meta(args)
                total, trainable = count_parameters(cli.model.backbone)
                self.task = self.task or cli.model
                self.parser = cli.parser
                self._memo[key] = (total, trainable, cli.config)  # dumped when the shape is kept
            except ArgumentsRejected as error:
                raise self._rejected(family, shape, error) from error
            except MLPLabError as error:
                self._memo[key] = str(error)
        result = self._memo[key]
        if isinstance(result, str):
            candidate.refused = result
        else:
            candidate.params_total, candidate.params_trainable = result[:2]
        return candidate

    def _rejected(self, family: FamilySpec, shape: dict[str, Any], error: ArgumentsRejected) -> ConfigError:
        """The one-line error naming the entry of the sweep (or the command line) the parser rejected.

        The run's arguments are parsed again, entry by entry in the order they are given (the base
        recipes, the family's ``init_args``, each shape argument, each option, each override, each
        command-line argument, the sweep's metric): the first entry whose arguments the parser rejects
        is the culprit. Runs only when a count was rejected (a few parses of about 0.3 s each).
        """
        name = self.spec.name
        base = [f"--config={file}" for file in family.base] + RUN_DEFAULTS
        recipes = ", ".join(file.name for file in family.base)
        steps: list[tuple[str, list[str]]] = [(f"base recipe {recipes}", base)]  # (where, the arguments)
        init_args: dict[str, Any] = {}
        for key, value in family.init_args.items():
            init_args[key] = value
            partial = dataclasses.replace(family, init_args=dict(init_args))
            where = f"families.{family.name}.init_args: {key}"
            steps.append((where, [*base, backbone_argument(partial, {})]))
        backbone = [*base, backbone_argument(family, {})]
        partial_shape: dict[str, Any] = {}
        for key, value in shape.items():
            partial_shape[key] = value
            backbone = [*base, backbone_argument(family, partial_shape)]
            section = "fit" if key == family.fit else "grid"
            steps.append((f"families.{family.name}.{section}: {key}", backbone))
        args = backbone
        for key, value in self.options.items():
            args = [*args, f"--{key}={format_value(value)}"]
            steps.append((f"options: {key}", args))
        command_line = set(self.spec.command_line)
        for unit in _argument_units(self.spec.overrides):
            args = [*args, *unit]
            if unit[0] in command_line:
                where = f"command line: {' '.join(unit)}"
            else:
                where = f"overrides: {unit[0].split('=', 1)[0].removeprefix('--')}"
            steps.append((where, args))
        if self.extra_args:  # the checkpoint's metric
            steps.append((f"metric: {self.spec.metric}", [*args, *self.extra_args]))
        for where, args in steps:
            rejected = _parser_error(args)
            if rejected is not None:
                reason = " ".join(rejected.split())
                key = where.rsplit(": ", 1)[-1]
                for prefix in (f"{key}: ", f"{short_key(key)}: "):  # the key is named once
                    reason = reason.removeprefix(prefix)
                return ConfigError(f"{name}: {where}: {reason}")
        return ConfigError(f"{name}: families.{family.name}: {error}")

    def resolve(
        self, args: Sequence[str], family: FamilySpec | None = None, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The full config ``args`` resolve to (parsed once more unless counted with them).

        Args:
            args: A run's arguments.
            family: The family of the run, named (with ``options``) when the arguments are rejected.
            options: The option values of the run.

        Raises:
            MLPLabError: When the arguments are rejected: the line names the family and the options.
        """
        result = self._memo.get(tuple(args))
        if isinstance(result, tuple):
            return dump_config(self.parser, result[2])
        try:
            with plain_argv():
                config = self.parser.parse_args(list(args))
        except Exception as error:
            where = f"families.{family.name}: " if family is not None else ""
            where += f"options: {options_given(options)}" if options else "options"
            user_error = find_user_error(error)
            if user_error is not None:
                raise type(user_error)(f"{self.spec.name}: {where}: {user_error}") from error
            raise ConfigError(f"{self.spec.name}: {where}: {condense_parser_error(str(error))}") from error
        return dump_config(self.parser, config)

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

    #: How far from a refused value :meth:`fit` looks for an accepted one (a multiple of up to 8 is found).
    NEIGHBOURS = 4

    def fit(self, family: FamilySpec, shape: dict[str, Any]) -> list[Candidate]:
        """For each budget, the shape whose ``fit`` argument brings its count nearest the budget.

        Two valid values (the base recipe's value, or the family's default, and twice it; else the
        first two accepted in a row of 1, 2, 4, ...) give a first line; secant
        steps on the integers then find the nearest count, exactly when the count is affine in the
        argument (as for the width of an MLP block). A step to a value the family refuses is replaced by
        the nearest accepted value within :attr:`NEIGHBOURS` of it (a Transformer's ``embed_dim`` must be a
        multiple of ``num_heads``); when there is none (an Hourglass MLP's ``mlp_dim >= embed_dim``), the
        search for that budget ends at the last value the
        family accepts on the way there (found by bisection), so a shape at the edge of what the family
        takes is kept when it is within the tolerance; only when no value is accepted is the refusal
        returned.
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
                if candidate.refused is not None:  # a multiple the family needs may be next to it
                    candidate = self._accepted_neighbour(family, shape, guess) or candidate
                if candidate.refused is not None:
                    edge = self._accepted_edge(family, shape, high, guess)
                    if abs(self._size(edge) - budget) < abs(self._size(best) - budget):
                        best = edge
                    break
                low, high = high, candidate
                if abs(self._size(candidate) - budget) < abs(self._size(best) - budget):
                    best = candidate
            results.append(best)
        return self._drop_duplicates(results)

    def _drop_duplicates(self, fitted: list[Candidate]) -> list[Candidate]:
        """``fitted`` (one shape per budget) without shapes that only duplicate another budget's.

        A shape fitted for one budget but nearer another (an edge of what the family accepts) would be
        kept for that other budget beside the shape fitted for it: it is dropped unless it is nearer.
        """
        budgets = self.spec.budgets

        def distance(candidate: Candidate, budget: int) -> float:
            return math.inf if candidate.refused is not None else abs(self._size(candidate) - budget)

        kept = []
        for budget, candidate in zip(budgets, fitted):
            if candidate.refused is None:
                nearest = min(budgets, key=lambda b: distance(candidate, b) / b)
                own = fitted[budgets.index(nearest)]
                if nearest != budget and distance(own, nearest) <= distance(candidate, nearest):
                    continue
            kept.append(candidate)
        return kept

    def _accepted_neighbour(self, family: FamilySpec, shape: dict[str, Any], value: int) -> Candidate | None:
        """The accepted shape nearest ``value`` within :attr:`NEIGHBOURS` of it (below first), else ``None``.

        Families that need ``fit`` to be a multiple of another argument (``embed_dim`` of ``num_heads``)
        refuse most values, not only those past an edge.
        """
        for step in range(1, self.NEIGHBOURS + 1):
            for near in (value - step, value + step):
                if near >= 1:
                    candidate = self.count(family, {**shape, family.fit: near})
                    if candidate.refused is None:
                        return candidate
        return None

    def _accepted_edge(
        self, family: FamilySpec, shape: dict[str, Any], accepted: Candidate, refused: int
    ) -> Candidate:
        """The accepted shape nearest ``refused`` on the way from ``accepted`` (bisection on ``fit``)."""
        name = family.fit
        edge, outside = accepted, refused
        while abs(outside - edge.shape[name]) > 1:
            middle = (edge.shape[name] + outside) // 2
            candidate = self.count(family, {**shape, name: middle})
            if candidate.refused is None:
                edge = candidate
            else:
                outside = middle
        return edge


# ------------------------------------------------------------------------------------- resolved configs
def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    leaves: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(flatten(value, name + "."))
        else:
            leaves[name] = value
    return leaves


def short_key(key: str) -> str:
    """A config key without jsonargparse's ``init_args`` levels: ``model.backbone.mlp_dim``."""
    return ".".join(part for part in key.split(".") if part != "init_args")


def _excluded(leaf: str, prefixes: Iterable[str]) -> bool:
    short = short_key(leaf)
    return any(short == prefix or short.startswith(prefix + ".") for prefix in prefixes)


def settings_of(config: dict[str, Any], varying: Iterable[str]) -> dict[str, Any]:
    """The resolved config's leaves without the run's folder and the ``varying`` keys (short keys)."""
    prefixes = [short_key(key) for key in (*varying, *NOT_IDENTITY)]
    return {leaf: value for leaf, value in flatten(config).items() if not _excluded(leaf, prefixes)}


def digest(data: Any) -> str:
    """A short stable hash of JSON-able data."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def varying_keys(family: FamilySpec, options: Iterable[str]) -> list[str]:
    """What differs between the runs of one curve: the shape arguments, the swept options, the seed."""
    shape = [f"model.backbone.{name}" for name in (*family.grid, *([family.fit] if family.fit else []))]
    return [*shape, *options, "seed_everything"]


def settings_difference(earlier: dict[str, Any], current: dict[str, Any], limit: int = 3) -> str:
    """How the flattened settings ``earlier`` differ from ``current``: ``max_epochs=3 lr=0.01``.

    Each key is named by its shortest last part that is unique among the differing keys.
    """
    keys = sorted(k for k in set(earlier) | set(current) if earlier.get(k, "∅") != current.get(k, "∅"))
    if not keys:
        return "same settings"
    names = []
    for key in keys:
        parts = short_key(key).split(".")
        for size in range(1, len(parts) + 1):
            name = ".".join(parts[-size:])
            if sum(1 for other in keys if f".{short_key(other)}".endswith(f".{name}")) == 1:
                break
        value = earlier.get(key, "unset")
        names.append(f"{name}={format_value(value) if value is not None else 'null'}")
    return " ".join(names[:limit]) + (f" (+{len(names) - limit})" if len(names) > limit else "")


def dump_config(parser: Any, config: Any) -> dict[str, Any]:
    """A parsed config as plain data, every key included (None values too), as ``config.yaml`` has it."""
    keyword = "skip_unset" if "skip_unset" in inspect.signature(parser.dump).parameters else "skip_none"
    return json.loads(parser.dump(config, format="json", **{keyword: False}))


# ------------------------------------------------------------------------------------------- the plan
def plan_sweep(spec: SweepSpec, out: str | Path) -> Plan:
    """Count every shape on the meta device, keep those near a budget, and resolve the runs to do.

    Raises:
        ConfigError: When the parser rejects a family's arguments, the family refuses every shape of
            its grid, or no shape of any family is within the tolerance of a budget.
    """
    out = Path(out).resolve()
    option_sets = _combinations(spec.options) if spec.options else [{}]
    start = time.monotonic()
    checkpoint_args = []
    if spec.metric is not None:  # the best checkpoint follows the sweep's metric
        checkpoint_args = [f"--checkpoint.monitor={spec.metric}", f"--checkpoint.mode={spec.mode}"]
    counter = ShapeCounter(spec, option_sets[0], checkpoint_args)
    candidates: list[Candidate] = []
    for family in spec.families:
        family_candidates = counter.candidates(family)
        if not any(c.refused is None for c in family_candidates):
            reasons = {c.refused for c in family_candidates}
            reason = family_candidates[0].refused if family_candidates else "no shape"
            name = family.family_class.__name__
            who = f"{name} refuses every shape of the grid"
            if len(reasons) == 1 and not reason.startswith(name):
                # one reason, from the task or DataModule (as the options or overrides set them)
                who = "every shape of the grid is refused"
                if option_sets[0]:
                    who += f" with options {options_given(option_sets[0])}"
            raise ConfigError(f"{spec.name}: families.{family.name}: {who} ({reason})")
        candidates += family_candidates
    notes = _assign_budgets(spec, candidates)
    for options in option_sets[1:]:
        _check_option_keeps_sizes(spec, candidates, option_sets[0], options, checkpoint_args)
    metric, mode = _sweep_metric(spec, counter, candidates, option_sets[0])

    runs = []
    for candidate in candidates:
        if candidate.budget is None:
            continue
        family = candidate.family
        varying = varying_keys(family, spec.options)
        for options in option_sets:
            args = run_arguments(spec, family, candidate.shape, options) + checkpoint_args
            config = counter.resolve(args, family, options)
            series_key = digest([family.class_path, settings_of(config, varying)])
            for seed in spec.seeds:
                config = {**config, "seed_everything": seed}
                config_key = digest(settings_of(config, ()))
                run_id = f"{family.name}-{_slug(candidate.shape)}"
                run_id += f"-{_slug(options)}" if options else ""
                run_id += f"-s{seed}-{config_key}"
                runs.append(
                    RunRecord(
                        run_id=run_id,
                        family=family.name,
                        class_path=family.class_path,
                        shape=candidate.shape_text,
                        options=options_text(options),
                        seed=seed,
                        budget=candidate.budget,
                        params_total=candidate.params_total,
                        params_trainable=candidate.params_trainable,
                        metric=metric,
                        mode=mode,
                        config_key=config_key,
                        series_key=series_key,
                        root=str(out / "runs" / run_id),
                        cwd=os.getcwd(),
                        args=[*args, f"--seed_everything={seed}"],
                        config=config,
                        current=True,
                    )
                )
    # budget by budget, so that a sweep stopped early has compared the families at the budgets it reached
    runs.sort(key=lambda r: (r.budget, r.seed, r.family, r.params_total, r.shape))
    return Plan(spec, out, candidates, runs, metric, mode, notes, time.monotonic() - start)


def _sweep_metric(
    spec: SweepSpec,
    counter: ShapeCounter,
    candidates: list[Candidate],
    options: dict[str, Any],
) -> tuple[str, str]:
    """The metric the runs are judged by and its direction: the metric their best checkpoint follows.

    The sweep's ``metric`` when given (the runs' checkpoints are set to it); else ``checkpoint.monitor``
    when the recipes or overrides set it (the runs' best checkpoints, and so ``best_val`` and ``test``,
    follow it); else the task's own monitor.

    Raises:
        ConfigError: When the families' runs keep their best checkpoints by different metrics, or the
            direction of a ``checkpoint.monitor`` cannot be told.
    """
    if spec.metric is not None:
        return spec.metric, str(spec.mode)
    task = counter.task
    task_metric = getattr(task, "monitor", None) or "val/loss"
    task_mode = getattr(task, "monitor_mode", None) or "min"
    monitors: dict[str, tuple[str, str | None]] = {}
    for candidate in candidates:
        family = candidate.family
        if candidate.budget is None or family.name in monitors:
            continue
        config = counter.resolve(run_arguments(spec, family, candidate.shape, options), family, options)
        checkpoint = config.get("checkpoint") or {}
        monitors[family.name] = (checkpoint.get("monitor") or task_metric, checkpoint.get("mode"))
    if len({monitor for monitor, _ in monitors.values()}) > 1:
        found = ", ".join(f"{name} by {monitor}" for name, (monitor, _) in monitors.items())
        raise ConfigError(
            f"{spec.name}: checkpoint.monitor: the families' runs keep their best checkpoints by different "
            f"metrics ({found}); set metric: (and mode:) in the sweep file to judge them all by one"
        )
    metric, mode = next(iter(monitors.values()), (task_metric, None))
    if mode is None:
        mode = task_mode if metric == task_metric else metric_mode(metric)
    if mode is None:
        raise ConfigError(
            f"{spec.name}: the runs keep their best checkpoint by {metric} (checkpoint.monitor), whose "
            "direction cannot be told from its name: set metric: and mode: (max or min) in the sweep file"
        )
    return metric, mode


def _check_option_keeps_sizes(
    spec: SweepSpec,
    candidates: list[Candidate],
    first: dict[str, Any],
    options: dict[str, Any],
    extra_args: Sequence[str],
) -> None:
    """Refuse option values that change a model's size: every count and budget is taken with ``first``.

    One kept shape of each family is counted again with ``options`` (an option that changes the size of
    a model changes it for every shape of the family).

    Raises:
        ConfigError: When that shape's count differs, or when it cannot be built with ``options`` (a file,
            family, task or DataModule refuses them): the line names the options and the family.
    """
    counter = ShapeCounter(spec, options, extra_args)
    checked = set()
    for candidate in candidates:
        if candidate.budget is None or candidate.family.name in checked:
            continue
        checked.add(candidate.family.name)
        other = counter.count(candidate.family, candidate.shape)
        if other.refused is not None:  # the runs with these values would fail (they were planned regardless)
            changed = options_given({key: value for key, value in options.items() if first.get(key) != value})
            raise ConfigError(
                f"{spec.name}: options: {changed or options_given(options)}: the {candidate.family.name} "
                f"runs cannot be built with it: {other.refused}"
            )
        if other.params_total != candidate.params_total:
            raise ConfigError(
                f"{spec.name}: options: the {candidate.family.name} shape {candidate.shape_text} has "
                f"{other.params_total:,} parameters with {options_text(options)} but "
                f"{candidate.params_total:,} with {options_text(first)}: options must not change a model's "
                "size (counts and budgets are taken with their first values); make it a grid argument of "
                "the families instead"
            )


def options_given(options: dict[str, Any]) -> str:
    """Option values as the sweep file gives them: ``model.init_args.optimizer.init_args.lr=0.001``."""
    return " ".join(f"{key}={format_value(value)}" for key, value in options.items())


def options_text(options: dict[str, Any]) -> str:
    """Option values as ``lr=0.001 weight_decay=0.1`` (the last part of each key)."""
    return " ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in options.items())


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
            if low <= getattr(closest, key) <= high:  # within the band, but nearer another budget
                raise ConfigError(
                    f"{spec.name}: budgets: every shape within {band} is nearer another budget (each "
                    f"shape is counted at its nearest budget only: {closest.family.name} "
                    f"{closest.shape_text} with {pareto.format_count(getattr(closest, key))} at "
                    f"{pareto.format_count(closest.budget)}); drop the budget or move it apart"
                )
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
