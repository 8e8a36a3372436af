"""The sweep file of ``mlplab sweep``: its typed keys (the command's help), reading it, checking it.

A sweep file is a config like every other mlplab config: jsonargparse parses it against the typed
dataclasses below, whose docstrings are the help of ``mlplab sweep --help``, and any key can also be
given on the command line (``--budgets '[1M, 2M]'``, ``--seeds '[0, 1]'``). A family entry is
checked against :class:`FamilyConfig` the same way. Every mistake raises
:class:`~mlplab.errors.ConfigError` with one line that names the file, the key, the value and the fix.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from mlplab.errors import ConfigError
from mlplab.metrics import metric_mode
from mlplab.models import registry


@dataclass
class FamilyConfig:
    """One family of a sweep: one curve of the Pareto figure.

    Args:
        class_path: The backbone class: a family mlplab ships (``HourglassMLP``) or ``module.Class``.
        grid: Shape arguments and their values; every combination is one shape (a single value is
            a list of one).
        fit: Optional name of one integer argument that is solved, for every grid point and
            budget, so that the count meets the budget (e.g. ``mlp_dim``).
        init_args: Fixed backbone arguments of every shape.
        base: This family's own recipe (or list of recipes), relative to the sweep file; default:
            the sweep's ``base``.
    """

    class_path: str
    grid: dict[str, Any]
    fit: str | None = None
    init_args: dict[str, Any] = field(default_factory=dict)
    base: str | list[str] | None = None


@dataclass
class SweepConfig:
    """The keys of a sweep file (each can also be given on the command line).

    Args:
        families: A name for each family (any name; one curve each) and its entry: class_path,
            grid, and optionally fit, init_args and base (see FamilyConfig).
        base: The recipe every run starts from, relative to the sweep file (a list composes several).
        budgets: Parameter budgets: numbers, 2e6, or k / M / G suffixes (50k, 2.5M).
        tolerance: Keep the shapes within this fraction of a budget (0.1: ±10 percent); each kept shape
            gets its nearest budget.
        count: Which parameter count meets the budgets: total, or trainable (a fixed input
            projection counts in total only).
        metric: The validation metric that chooses the best checkpoint and configuration
            (default: checkpoint.monitor when a recipe or override sets it, else the task's own monitor).
        mode: Whether a higher (max) or lower (min) metric is better (default: the task's own; for
            another metric, told from its name: min for loss, bpc, ppl, mse, mae, rmse, logloss, ...,
            max for acc, psnr, ssim, r2, auroc, ...; other names need it).
        seeds: The seeds every configuration is trained with (default [0]).
        repeats: Instead of seeds: train seeds 0 .. repeats-1.
        options: More settings to sweep (any CLI key and its values); every value with every
            shape. They must not change a model's size.
        overrides: Fixed settings of every run (any CLI key, e.g. trainer.max_epochs: 20); the
            command line's --key=value arguments come after them.
    """

    families: dict[str, dict[str, Any]]
    base: str | list[str] | None = None
    budgets: list[int | float | str] = field(default_factory=list)
    tolerance: float = 0.1
    count: Literal["total", "trainable"] = "total"
    metric: str | None = None
    mode: Literal["min", "max"] | None = None
    seeds: list[int] | None = None
    repeats: int | None = None
    # plain dicts: with dict[str, Any] jsonargparse would expand a value's {class_path, init_args} into
    # every argument of the class (an optimizer's params=None), which the run's parser then refuses
    options: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)


SWEEP_KEYS = tuple(f.name for f in fields(SweepConfig))
#: The largest seed ``seed_everything`` takes (numpy's bound); seeds are 0 .. MAX_SEED.
MAX_SEED = 2**32 - 1
FAMILY_KEYS = tuple(f.name for f in fields(FamilyConfig))


@dataclass
class FamilySpec:
    """One checked family: the backbone class, fixed arguments, the grid of shapes, its base recipes."""

    name: str
    class_path: str
    family_class: type
    grid: dict[str, list[Any]]
    init_args: dict[str, Any]
    base: list[Path]
    fit: str | None = None

    def ordered(self, shape: dict[str, Any]) -> dict[str, Any]:
        """``shape`` with its arguments in the order of the family's signature."""
        order = list(class_arguments(self.family_class) or {})
        return dict(sorted(shape.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99))


@dataclass
class SweepSpec:
    """A parsed and checked sweep: what :func:`~mlplab.tools.sweep.plan.plan_sweep` plans from.

    ``overrides`` are the command-line arguments of every run: the file's ``overrides`` and then the
    command line's own ``--key=value`` arguments. ``resolved`` is the sweep file as parsed (with the
    command line's changes to its keys), written to ``OUT/sweep.yaml``. ``command_line`` are the
    command line's own arguments (the last of ``overrides``), so that an error can say where it came from.
    """

    path: Path
    families: list[FamilySpec]
    budgets: list[int]
    tolerance: float
    count: str
    metric: str | None
    mode: str | None
    seeds: list[int]
    options: dict[str, list[Any]]
    overrides: list[str] = field(default_factory=list)
    resolved: str = ""
    command_line: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


# --------------------------------------------------------------------------------------------- values
def parse_count(value: Any, where: str) -> int:
    """A parameter count from ``2000000``, ``2e6``, ``"2M"``, ``"500k"``; ``ConfigError`` otherwise."""
    text = str(value).strip()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgG]?)", text)
    if isinstance(value, bool) or not match or float(match.group(1)) <= 0:
        raise ConfigError(
            f"{where}: expected a positive parameter count such as 2000000, 2e6 or 2M, got {value!r}"
        )
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    return int(round(float(match.group(1)) * scale))


def format_value(value: Any) -> str:
    """A value as the command line takes it: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def resolve_class(class_path: str, where: str) -> type:
    """The class a config names: an import path, or the short name of a family mlplab ships."""
    import mlplab.models

    module_name, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name) if module_name else None
    except ImportError:
        found = None
    if found is None and not module_name:
        found = getattr(mlplab.models, name, None)
    if not isinstance(found, type):
        raise ConfigError(
            f"{where}: unknown class {class_path!r}: give an importable class path or a family mlplab has"
        )
    return found


def class_arguments(family_class: type) -> dict[str, inspect.Parameter] | None:
    """The constructor arguments of a family, following ``**kwargs`` into its bases (as the CLI does).

    ``None`` when the class takes ``**kwargs`` that no base declares, so any name goes.
    """
    parameters = registry.constructor_parameters(family_class)
    own = inspect.signature(family_class).parameters.values()
    accepts_anything = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own) and not parameters
    return None if accepts_anything else parameters


#: The types whose values the sweep checks before counting (others are left to the run's parser).
_PLAIN_TYPES = (int, float, bool, str, type(None))


def argument_types(family_class: type) -> dict[str, Any]:
    """The type hints of a family's constructor arguments, following ``**kwargs`` into its bases.

    An argument without a hint, or whose hint cannot be resolved, maps to ``None``.
    """
    import torch.nn

    hints: dict[str, Any] = {}
    for klass in family_class.__mro__:
        if klass in (object, torch.nn.Module) or "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        try:
            resolved = typing.get_type_hints(init)
        except Exception:  # a hint naming what the module imports only for type checking
            resolved = {}
        parameters = inspect.signature(init).parameters
        for name, parameter in parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                hints.setdefault(name, resolved.get(name))
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return hints


def _plain(hint: Any) -> bool:
    """Whether ``hint`` is built from ints, floats, bools, strings, None, literals, lists and tuples."""
    if hint in _PLAIN_TYPES:
        return True
    origin = typing.get_origin(hint)
    if origin is Literal:
        return True
    if origin in (typing.Union, types.UnionType, list, tuple):
        return all(_plain(arg) for arg in typing.get_args(hint) if arg is not Ellipsis)
    return False


def type_text(hint: Any) -> str:
    """A type hint in words: ``int``, ``int or null``, ``one of 'sigmoid', 'none'``, ``tuple[int, ...]``."""
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(arg) for arg in typing.get_args(hint))
    return str(hint).replace("typing.", "")


def value_error(family: FamilySpec, key: str, value: Any) -> str | None:
    """Why ``value`` is not of the type the family's argument ``key`` takes, in words; ``None`` if it is.

    Only plain types (see :func:`_plain`) are checked, by jsonargparse as the run's parser checks them;
    for others (and arguments without a hint) ``None``: the run's parser judges them.
    """
    hint = argument_types(family.family_class).get(key)
    if hint is None or not _plain(hint):
        return None
    parser = ArgumentParser(exit_on_error=False, default_env=False)
    parser.add_argument("--value", type=hint)
    try:
        parser.parse_object({"value": value})
    except argparse.ArgumentError:
        return f"expected {type_text(hint)}, got {value!r}"
    except Exception:  # not a refusal of the value: leave it to the run's parser
        return None
    return None


# -------------------------------------------------------------------------------------------- parsing
def add_sweep_arguments(parser: ArgumentParser) -> None:
    """Add ``--config`` (the sweep file) and the sweep file's keys to ``parser``."""
    parser.add_argument("--config", action=ActionConfigFile, help="the sweep file (YAML)")
    parser.add_class_arguments(SweepConfig, None, as_group=True)


def sweep_parser() -> ArgumentParser:
    """A parser of the sweep file's keys alone (what :func:`load_sweep` reads a file with)."""
    parser = ArgumentParser(prog="mlplab sweep", exit_on_error=False, default_env=False)
    add_sweep_arguments(parser)
    return parser


def _family_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="family", exit_on_error=False, default_env=False)
    parser.add_class_arguments(FamilyConfig, None)
    return parser


def parser_error_line(error: BaseException) -> str:
    """One line from a jsonargparse error: the key and what is wrong with it."""
    from mlplab.cli import condense_parser_error

    message = str(error)
    unknown = re.search(r"(?:Option|Key) '([^']+)' is not (?:accepted|expected)", message) or re.search(
        r"Unrecognized arguments: --?([^\s=]+)", message
    )
    if unknown:
        return f"unknown key {unknown.group(1)!r}"
    missing = re.search(r"the following arguments are required: ([\w, .]+)", message)
    if missing:
        return f"missing key {missing.group(1).strip()}"
    return condense_parser_error(message)


def load_sweep(path: str | Path, extra_args: Sequence[str] = ()) -> SweepSpec:
    """Read and check a sweep file; ``extra_args`` are command-line overrides applied to every run.

    Raises:
        ConfigError: With one line naming the key, the value and the fix, for any mistake in the file.
    """
    path = Path(path)
    check_sweep_file(path)
    parser = sweep_parser()
    try:
        config = parser.parse_args([f"--config={path}"])
    except (argparse.ArgumentError, ValueError, TypeError) as error:
        raise sweep_error(path, error) from error
    return check_sweep(config, path, extra_args)


def check_sweep_file(path: Path) -> None:
    """Raise :class:`ConfigError` in one line (file, line, reason) unless ``path`` is a YAML mapping."""
    from mlplab.cli import check_config_file

    if path.is_dir():
        raise ConfigError(f"sweep file {path} is a folder: give a YAML file")
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    check_config_file(path, keys=f"the sweep keys {', '.join(SWEEP_KEYS)}")


def sweep_error(path: Path | None, error: BaseException) -> ConfigError:
    """The one-line :class:`ConfigError` of a parser error in the sweep file (or its keys given as options).

    The file's name prefixes the line when the error concerns one of the file's keys.
    """
    line = parser_error_line(error)
    key = re.split(r"[:.\s]", line.removeprefix("argument --"), maxsplit=1)[0]
    in_file = key in SWEEP_KEYS or line.startswith(("unknown key", "missing key"))
    prefix = f"{path.name}: " if path is not None and in_file else ""
    if line.startswith("unknown key"):
        return ConfigError(f"{prefix}{line} (a sweep file has {', '.join(SWEEP_KEYS)})")
    if line.startswith("missing key families"):
        return ConfigError(
            f"{prefix}families: give at least one family (name: {{class_path: ..., grid: ...}})"
        )
    return ConfigError(prefix + line)


def _base_files(value: str | list[str], folder: Path, where: str) -> list[Path]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{where}: expected the path of a recipe (or a list of them), got {value!r}")
    files = [(folder / os.path.expanduser(v)).resolve() for v in values]
    for file in files:
        if not file.is_file():
            raise ConfigError(f"{where}: recipe not found: {file} (paths are relative to the sweep file)")
    return files


def _value_lists(value: dict[str, Any], where: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{where}: expected a mapping of argument names to lists of values, got {value!r}")
    from mlplab.tasks.base import plain  # a class given as {class_path, init_args} arrives as a Namespace

    lists = {}
    for key, values in value.items():
        values = plain(values) if isinstance(values, list) else [plain(values)]
        if not values:
            raise ConfigError(f"{where}.{key}: the list of values is empty")
        lists[str(key)] = values
    return lists


def _check_family(
    name: str, family_name: str, entry: Any, folder: Path, base: list[Path] | None
) -> FamilySpec:
    where = f"{name}: families.{family_name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with class_path and grid, got {entry!r}")
    try:
        config = _family_parser().parse_object(entry)
    except (argparse.ArgumentError, ValueError, TypeError) as error:
        line = parser_error_line(error)
        if line.startswith("unknown key"):
            line += f" (a family has {', '.join(FAMILY_KEYS)})"
        elif line.startswith("missing key"):
            line = "expected a mapping with class_path and grid"
        raise ConfigError(f"{where}: {line}") from error
    family_class = resolve_class(config.class_path, f"{where}.class_path")
    grid = _value_lists(config.grid, f"{where}.grid")
    init_args = dict(config.init_args)
    accepted = class_arguments(family_class)
    if accepted is not None:
        tunable = [n for n, p in accepted.items() if p.default is not inspect.Parameter.empty]
        for section, keys in (("grid", grid), ("init_args", init_args)):
            for key in keys:
                if key not in accepted:
                    raise ConfigError(
                        f"{where}.{section}: {family_class.__name__} takes no argument {key!r} "
                        f"(it takes {', '.join(tunable)})"
                    )
    checked = FamilySpec(family_name, config.class_path, family_class, grid, init_args, [], config.fit)
    for section, values in (("grid", grid), ("init_args", {k: [v] for k, v in init_args.items()})):
        for key, key_values in values.items():
            for value in key_values:
                reason = value_error(checked, key, value)
                if reason is not None:
                    raise ConfigError(f"{where}.{section}: {key}: {reason} ({family_class.__name__}'s {key})")
    fit = config.fit
    if fit is not None:
        if fit in grid or fit in init_args:
            raise ConfigError(
                f"{where}.fit: expected the name of one integer argument that is not in the grid or "
                f"init_args (e.g. fit: mlp_dim), got {fit!r}"
            )
        if accepted is not None and fit not in accepted:
            raise ConfigError(f"{where}.fit: {family_class.__name__} takes no argument {fit!r}")
    family_base = _base_files(config.base, folder, f"{where}.base") if config.base is not None else base
    if family_base is None:
        raise ConfigError(f"{where}: no base recipe: set base at the top of the file or for this family")
    return FamilySpec(family_name, config.class_path, family_class, grid, init_args, family_base, fit)


def check_sweep(config: Namespace, path: Path, extra_args: Sequence[str] = ()) -> SweepSpec:
    """Check a parsed sweep config and turn it into a :class:`SweepSpec`.

    Args:
        config: What the sweep parser (:func:`add_sweep_arguments`) parsed.
        path: The sweep file (names the sweep; relative paths in it are relative to its folder).
        extra_args: Command-line arguments of every run, after the file's overrides.

    Raises:
        ConfigError: With one line naming the file, the key, the value and the fix.
    """
    name = path.name
    folder = path.resolve().parent
    base = _base_files(config.base, folder, f"{name}: base") if config.base is not None else None
    if not config.families:
        raise ConfigError(
            f"{name}: families: give at least one family (name: {{class_path: ..., grid: ...}})"
        )
    families = [
        _check_family(name, str(family_name), entry, folder, base)
        for family_name, entry in config.families.items()
    ]

    if not config.budgets:
        raise ConfigError(f"{name}: budgets: give one or more parameter budgets, e.g. [1M, 2M, 4M]")
    budgets = sorted({parse_count(value, f"{name}: budgets") for value in config.budgets})
    tolerance = config.tolerance
    if not 0 < tolerance < 1:
        raise ConfigError(
            f"{name}: tolerance: expected a fraction between 0 and 1 (0.1 = ±10 %), got {tolerance!r}"
        )

    if config.seeds is not None and config.repeats is not None:
        raise ConfigError(f"{name}: give seeds or repeats, not both")
    if config.repeats is not None:
        if config.repeats <= 0:
            raise ConfigError(f"{name}: repeats: expected a positive integer, got {config.repeats!r}")
        seeds = list(range(config.repeats))
    else:
        seeds = list(dict.fromkeys(config.seeds if config.seeds is not None else [0]))
        if not seeds:
            raise ConfigError(f"{name}: seeds: expected a list of integers, got []")
        outside = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
        if outside:  # seed_everything refuses them: every run would fail
            raise ConfigError(f"{name}: seeds: expected integers from 0 to {MAX_SEED}, got {outside[0]}")

    mode = config.mode
    if config.metric is not None and mode is None:
        mode = metric_mode(config.metric)
        if mode is None:
            raise ConfigError(
                f"{name}: mode: give mode: max or mode: min for metric {config.metric} (whether a higher or "
                "a lower value is better cannot be told from its name)"
            )
    options = _value_lists(config.options, f"{name}: options") if config.options else {}
    from mlplab.tasks.base import plain  # a class given as {class_path, init_args} arrives as a Namespace

    overrides = [f"--{key}={format_value(plain(value))}" for key, value in (config.overrides or {}).items()]
    resolved = sweep_parser().dump(Namespace({key: config[key] for key in SWEEP_KEYS}), skip_validation=True)
    return SweepSpec(path, families, budgets, tolerance, config.count, config.metric, mode, seeds,
                     options, overrides + list(extra_args), resolved, list(extra_args))  # fmt: skip
