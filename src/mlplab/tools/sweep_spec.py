"""The sweep file of ``mlplab sweep``: reading it, checking it, and what it describes.

See :mod:`mlplab.tools.sweep` for the keys of the file and what the command does with them. Every
mistake in a sweep file raises :class:`~mlplab.errors.ConfigError` with one line that names the file,
the key, the value and the fix.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlplab.errors import ConfigError

SWEEP_KEYS = (
    "base", "families", "budgets", "tolerance", "count", "metric", "mode", "seeds", "repeats", "options",
    "overrides",
)  # fmt: skip
FAMILY_KEYS = ("class_path", "grid", "fit", "init_args", "base")


@dataclass
class FamilySpec:
    """One family of a sweep: a backbone class, fixed arguments, a grid of shapes, its base recipes."""

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
    """A parsed and checked sweep file (see the module docstring for its keys)."""

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

    @property
    def name(self) -> str:
        return self.path.name


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
    """The constructor arguments of a family (``None`` when it takes ``**kwargs``, so any name goes)."""
    parameters = dict(inspect.signature(family_class).parameters)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return parameters


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path.name}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: a sweep file is a mapping with the keys {', '.join(SWEEP_KEYS)}")
    return data


def _base_files(value: Any, folder: Path, where: str) -> list[Path]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{where}: expected the path of a recipe (or a list of them), got {value!r}")
    files = [(folder / v).resolve() for v in values]
    for file in files:
        if not file.is_file():
            raise ConfigError(f"{where}: recipe not found: {file} (paths are relative to the sweep file)")
    return files


def _value_lists(value: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{where}: expected a mapping of argument names to lists of values, got {value!r}")
    lists = {}
    for key, values in value.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"{where}.{key}: the list of values is empty")
        lists[str(key)] = values
    return lists


def load_sweep(path: str | Path, extra_args: Sequence[str] = ()) -> SweepSpec:
    """Read and check a sweep file; ``extra_args`` are command-line overrides applied to every run.

    Raises:
        ConfigError: With one line naming the key, the value and the fix, for any mistake in the file.
    """
    path = Path(path)
    data = _read_mapping(path)
    name = path.name
    unknown = [key for key in data if key not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"{name}: unknown key {unknown[0]!r} (a sweep file has {', '.join(SWEEP_KEYS)})")
    folder = path.resolve().parent
    base = _base_files(data["base"], folder, f"{name}: base") if "base" in data else None

    families_data = data.get("families")
    if not isinstance(families_data, dict) or not families_data:
        raise ConfigError(
            f"{name}: families: give at least one family (name: {{class_path: ..., grid: ...}})"
        )
    families = []
    for family_name, entry in families_data.items():
        where = f"{name}: families.{family_name}"
        if not isinstance(entry, dict) or "class_path" not in entry or "grid" not in entry:
            raise ConfigError(f"{where}: expected a mapping with class_path and grid")
        unknown = [key for key in entry if key not in FAMILY_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (a family has {', '.join(FAMILY_KEYS)})")
        family_class = resolve_class(str(entry["class_path"]), f"{where}.class_path")
        grid = _value_lists(entry["grid"], f"{where}.grid")
        init_args = entry.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise ConfigError(f"{where}.init_args: expected a mapping of fixed arguments, got {init_args!r}")
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
        fit = entry.get("fit")
        if fit is not None:
            if not isinstance(fit, str) or fit in grid or fit in init_args:
                raise ConfigError(
                    f"{where}.fit: expected the name of one integer argument that is not in the grid or "
                    f"init_args (e.g. fit: d_h), got {fit!r}"
                )
            if accepted is not None and fit not in accepted:
                raise ConfigError(f"{where}.fit: {family_class.__name__} takes no argument {fit!r}")
        family_base = _base_files(entry["base"], folder, f"{where}.base") if "base" in entry else base
        if family_base is None:
            raise ConfigError(f"{where}: no base recipe: set base at the top of the file or for this family")
        families.append(FamilySpec(str(family_name), str(entry["class_path"]), family_class, grid,
                                   init_args, family_base, fit))  # fmt: skip

    budgets_data = data.get("budgets")
    budgets_data = budgets_data if isinstance(budgets_data, list) else [budgets_data]
    if not budgets_data or budgets_data == [None]:
        raise ConfigError(f"{name}: budgets: give one or more parameter budgets, e.g. [1M, 2M, 4M]")
    budgets = sorted({parse_count(value, f"{name}: budgets") for value in budgets_data})

    tolerance = data.get("tolerance", 0.1)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ConfigError(
            f"{name}: tolerance: expected a fraction between 0 and 1 (0.1 = ±10 %), got {tolerance!r}"
        )
    count = data.get("count", "total")
    if count not in ("total", "trainable"):
        raise ConfigError(f"{name}: count: expected 'total' or 'trainable', got {count!r}")
    metric = data.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise ConfigError(f"{name}: metric: expected a logged metric name such as val/psnr, got {metric!r}")
    mode = data.get("mode")
    if mode not in (None, "min", "max"):
        raise ConfigError(f"{name}: mode: expected 'min' or 'max', got {mode!r}")

    if "seeds" in data and "repeats" in data:
        raise ConfigError(f"{name}: give seeds or repeats, not both")
    if "repeats" in data:
        repeats = data["repeats"]
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats <= 0:
            raise ConfigError(f"{name}: repeats: expected a positive integer, got {repeats!r}")
        seeds = list(range(repeats))
    else:
        seeds = data.get("seeds", [0])
        seeds = seeds if isinstance(seeds, list) else [seeds]
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ConfigError(f"{name}: seeds: expected a list of integers, got {data.get('seeds')!r}")
        seeds = list(dict.fromkeys(seeds))

    options = _value_lists(data["options"], f"{name}: options") if data.get("options") else {}
    overrides_data = data.get("overrides") or {}
    if not isinstance(overrides_data, dict):
        raise ConfigError(f"{name}: overrides: expected a mapping of settings, e.g. trainer.max_epochs: 20")
    overrides = [f"--{key}={format_value(value)}" for key, value in overrides_data.items()]
    return SweepSpec(path, families, budgets, tolerance, count, metric, mode, seeds, options,
                     overrides + list(extra_args))  # fmt: skip
