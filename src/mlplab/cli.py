"""The mlplab command line: ``python cli.py`` or ``mlplab`` followed by fit / validate / test / predict.

``MLPLabCLI`` is a ``LightningCLI`` in subclass mode for both the task (``model:``) and the DataModule
(``data:``). Short class names work for everything mlplab ships (``class_path: HourglassMLP``) because
this module imports the task, data and model packages. What the DataModule knows about the data
(image shape, number of classes, ...) is linked into the task, which hands it to its backbone, so a
config never states a dimension twice. These callbacks are always present and configured under their
own top-level keys: ``checkpoint`` (``checkpoints/best.ckpt`` by the task's main metric, and
``last.ckpt``), ``divergence`` (stop on a non-finite loss or weights), ``throughput`` (samples/s,
FLOPs/s, MFU), ``lr_monitor``, ``compile`` (opt-in ``torch.compile``), ``predictions`` (``predict``
writes ``predictions.pt`` to the run directory) and ``summary`` (``summary.json`` and TensorBoard's
HParams entry of the run, read by ``mlplab compare``). The progress bar is Lightning's Rich bar when
``rich`` is installed, its TQDM bar otherwise, redrawn ten times a second rather than after every step
(:mod:`mlplab.callbacks.progress`); the model summary beside it counts the backbone's forward FLOPs
per sample on the meta device (:mod:`mlplab.callbacks.model_summary`).

With ``--ckpt_path`` the run's arguments meet the checkpoint's (see :meth:`MLPLabCLI._parse_ckpt_path`
and ``docs/reliability.md``): what the config files and the command line give explicitly is honoured,
except architecture arguments that differ from the checkpoint's, which are refused in one line; what
they leave out comes from the checkpoint. The DataModule takes the checkpoint's data state as soon as it
is built (:class:`WithCheckpointState`), so the shapes linked from it into the task are the
checkpoint's. ``--ckpt_path best`` / ``last`` name that file of the run whose ``config.yaml`` is given,
else the newest one of the run directories under ``default_root_dir`` (:func:`newest_checkpoint`), and
a resumed ``fit`` continues in its run directory.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace, get_loader, set_loader
from jsonargparse._actions import _ActionPrintConfig
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, _get_module_type, _InstantiatorFn
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only

import mlplab.data  # noqa: F401  (registers the DataModules for short class names)
import mlplab.models  # noqa: F401  (registers the families)
import mlplab.tasks  # noqa: F401  (registers the tasks)
from mlplab.callbacks import (
    BestCheckpoint,
    CompileBackbone,
    DistributedWatchdog,
    DivergenceGuard,
    LearningRates,
    RunSummary,
    SavePredictions,
    SaveRunConfig,
    Throughput,
)
from mlplab.callbacks.checkpoint import verify_checkpoint_file
from mlplab.callbacks.model_summary import count_flops_in_summary
from mlplab.callbacks.progress import default_progress_bar
from mlplab.callbacks.summary import settings_digest
from mlplab.callbacks.watchdog import collective_failure_line, is_collective_failure, received_signals
from mlplab.errors import DEBUG_ENV_VAR, CheckpointError, ConfigError, MLPLabError, exit_with_error_line
from mlplab.loggers import (
    ROOT_PLACEHOLDER,
    check_preset_file,
    continue_in_run_directory,
    prepare_logger_config,
    share_run_directory,
)
from mlplab.metrics import metric_mode
from mlplab.models import registry
from mlplab.runtime import QuietProfiler
from mlplab.startup import startup_done
from mlplab.tasks.base import DATA_GIVEN_ARGUMENTS, RUN_SEED_KEY, plain

#: DataModule attributes handed to the task argument of the same name, when both exist.
LINKED_DATA_ATTRIBUTES = DATA_GIVEN_ARGUMENTS  # linked from data.<name> to model.init_args.<name>


SUBCOMMANDS = ("fit", "validate", "test", "predict")

#: Task arguments whose state a resumed fit takes from the checkpoint (optimiser moments, schedule).
RESUMED_STATE_ARGUMENTS = ("optimizer", "lr_scheduler", "lr_scheduler_interval", "exclude_from_weight_decay")

#: ``--ckpt_path`` values Lightning resolves itself.
LIGHTNING_CKPT_NAMES = ("hpc", "registry")

#: Trainer arguments where an integer counts batches and a float is a fraction of them.
BATCH_COUNT_OR_FRACTION = (
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "overfit_batches",
)

DESCRIPTION = (
    "mlplab: train MLP-centred architectures. fit / validate / test / predict run one config (see "
    "`mlplab fit --help`); `mlplab sweep --config SWEEP.yaml --out DIR` trains parameter-matched shapes of "
    "one or more families and draws their Pareto frontiers (see `mlplab sweep --help`); `mlplab models` "
    "lists the registered families, their named variants and parameter counts; `mlplab compare DIR...` "
    "tables and plots finished runs side by side; `mlplab export --run DIR --format "
    "safetensors|onnx|torchscript` writes a trained model (see `mlplab export --help`); `mlplab analyze "
    "similarity|density`, `mlplab drop-layers` and `mlplab prune --run DIR` ask questions of a trained run "
    "(see `mlplab analyze --help`)."
)

#: The jsonargparse parser mode of mlplab's configs: YAML in which a registered family's
#: ``init_args`` may name a ``variant`` and former argument names still work
#: (:func:`mlplab.models.registry.expand_config`).
PARSER_MODE = "mlplab"


def load_config_text(text: str) -> Any:
    """Load a config (or a value given on the command line) as YAML, then expand family variants."""
    return registry.expand_config(get_loader("yaml")(text))


def resolve_registered_names_first() -> None:
    """Resolve a short class name that names a registered family to that family, before jsonargparse looks.

    jsonargparse resolves a short name among all imported subclasses of the argument's type and refuses
    a name two of them share, such as mlplab's ``MlpMixer`` and timm's; the registry knows which one a
    config means. (jsonargparse has no public hook for this, so its resolver is wrapped;
    ``tests/test_cli_models.py`` checks that it still takes effect.)
    """
    from jsonargparse import _typehints

    resolve = _typehints.resolve_class_path_by_name
    if getattr(resolve, "registry_first", False):
        return

    @functools.wraps(resolve)
    def registry_first(cls: Any, name: str) -> str:
        return registry.resolve_short_name(name) or resolve(cls, name)

    registry_first.registry_first = True  # type: ignore[attr-defined]
    _typehints.resolve_class_path_by_name = registry_first


set_loader(PARSER_MODE, load_config_text, (yaml.YAMLError,))
resolve_registered_names_first()


def keep_batch_counts_integer(parser: LightningArgumentParser) -> None:
    """Parse ``--trainer.limit_val_batches=1`` (and the others of :data:`BATCH_COUNT_OR_FRACTION`) as 1 batch.

    The Trainer declares these ``Optional[Union[int, float]]``, but ``typing`` caches unions by their
    set of members, so the annotation Python hands out can be ``Union[float, int, None]`` (whichever
    order was built first in the process); jsonargparse tries the members in that order and turned the
    integer 1 into the float 1.0, i.e. every batch instead of one. Here the arguments try ``int``
    first, so an integer stays an integer and a float (``0.25``, ``1.0``) stays a fraction, from the
    command line and from YAML alike. (jsonargparse has no public way to retype an argument a class
    signature added; ``tests/test_cli.py`` checks that this still takes effect.)
    """
    wanted = {f"trainer.{name}" for name in BATCH_COUNT_OR_FRACTION}
    for action in parser._actions:
        if action.dest in wanted and hasattr(action, "_typehint"):
            action._typehint = int | float | None


def _unquoted(text: str) -> str:
    """``text`` without one pair of surrounding quotes (jsonargparse shows some values as their ``repr``)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _given_value(message: str, key: str) -> str | None:
    """The value that a type error in jsonargparse's ``message`` is about, as the user gave it.

    A value from the command line appears at the top level as ``NestedArg(key=..., val=...)``; the
    innermost failed check shows the value too (``Got value: ...`` after what it expected, or ``Given
    value: ...`` under a union's alternatives), and comes first in the message: it names the element of
    a list or tuple that failed.
    """
    nested = re.search(r"^\s*Given value: NestedArg\(key='([^']*)', val=(.*)\)$", message, re.MULTILINE)
    if (
        nested
        and key
        and nested.group(1).rsplit(".", 1)[-1] == key
        and not nested.group(2).startswith(("[", "{"))
    ):
        return _unquoted(nested.group(2))  # as typed: 1e3, not the 1000.0 that jsonargparse read from it
    for match in re.finditer(r"(?:Got|Given) value: (.*?)(?:\. Got value: .*)?$", message, re.MULTILINE):
        if not match.group(1).startswith("NestedArg("):
            return _unquoted(match.group(1))
    return _unquoted(nested.group(2)) if nested else None


def _expected_values(message: str) -> list[str]:
    """What jsonargparse expected, in words: ``int``, ``'step' or 'epoch'``, ``a tuple of 2 values``."""
    expected = [
        name for name in re.findall(r"Expected (?:a )?<class '([^']+)'>", message) if name != "NoneType"
    ]
    choices: dict[str, str] = {}  # a Literal's values, and those of a union of Literals, each shown once
    for listed in re.findall(r"Expected a typing\.Literal\[([^\]]*)\]", message):
        for choice in listed.split(", "):
            choices.setdefault(_unquoted(choice), choice)
    if choices:
        *first, last = choices.values()
        expected.append(f"{', '.join(first)} or {last}" if first else last)
    expected += [
        f"a tuple of {size} values" for size in re.findall(r"Expected a tuple with (\d+) elements", message)
    ]
    return list(dict.fromkeys(expected))


def condense_parser_error(message: str) -> str:
    """Turn jsonargparse's nested, multi-line error into one line: the key and what is wrong with it.

    A wrongly typed value reads ``<key>: expected <what>, got <value>`` with the full dotted key, down to
    the argument of a nested class (``model.optimizer.lr``) or of a callback in ``trainer.callbacks``.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    keys = re.findall(r'Parser key "([^"]+)"', message)  # also after "expects a ... callable class: "
    where = ".".join(dict.fromkeys(keys))
    prefix = f"{where}: " if where else ""
    wanted = _expected_values(message)
    value = _given_value(message, keys[-1] if keys else "")
    if wanted and value is not None:
        return f"{prefix}expected {' or '.join(wanted)}, got {value!r}"
    if match := re.search(
        r"(?:Expected a dot import path string|Unexpected import path format): (\{\S*)", message
    ):
        return (
            f"{prefix}cannot read {match.group(1)!r}: write a class as '{{class_path: Name, init_args: "
            "{name: value}}', with a space after each colon"
        )
    if (
        "." in where
        and re.search(r"Expected a dot import path string: None\b", message)
        and ("Expected a <class 'NoneType'>" in message)
    ):  # jsonargparse hands a nested argument's null to its class as the text 'None'
        parent, name = where.rsplit(".", 1)
        return (
            f"{prefix}null cannot reach an argument nested this deep on the command line; give it with its "
            f'class\'s arguments: --{parent} \'{{"init_args": {{"{name}": null}}}}\' (or in the YAML)'
        )
    missing_import = (
        r"Problem with given class_path '([^']+)':\s*(?:module '[^']+' has no attribute|No module named)"
    )
    missing_callable = (
        r"callable class: (?:module '[^']+' has no attribute|No module named)[^.]*\. Got value: (\S+)"
    )
    if match := (
        re.search(r"Expected a dot import path string: (\S+)", message)
        or re.search(missing_import, message)
        or re.search(missing_callable, message)
    ):
        return (
            f"{prefix}unknown class {match.group(1)!r}: give an importable class path or a class mlplab has"
        )
    if match := re.search(r"Not a valid subclass of (\w+)\. Got value: (.*)$", message, re.MULTILINE):
        kind = f"a {match.group(1)} (a class path, or class_path and init_args)"
        return f"{prefix}expected {kind}, got {match.group(2)!r}"
    if match := re.search(r"Option '([^']+)' is not accepted.*?class_path='([^']+)'", message):
        option, class_path = match.group(1), match.group(2)
        spec = registry.find(class_path)
        renamed = spec.renamed.get(option.rsplit(".", 1)[-1]) if spec is not None else None
        hint = f" (it is now called {renamed!r})" if renamed else ""
        name = class_path.rsplit(".", 1)[-1]
        if option.rsplit(".", 1)[-1] == "variant" and spec is not None and where:
            given = re.search(r"variant='([^']+)'", message)
            chosen = given.group(1) if given else next(iter(spec.variants))
            hint = (  # jsonargparse checks each argument given alone against the class's signature
                f"; a variant ({', '.join(spec.variants)}) is chosen together with the class: "
                f"--{where} '{{class_path: {name}, init_args: {{variant: {chosen}}}}}'"
            )
        return f"{prefix}{name} has no argument {option!r}{hint}"
    first = re.search(r"Problem with given class_path '([^']+)':\s*Option '([^']+)' is not accepted", message)
    if first and first.group(1).rsplit(".", 1)[-1] == "Callback":
        # a list of callbacks with none given yet: jsonargparse tried the argument on the base class
        key, option = where or "trainer.callbacks", first.group(2)
        return (
            f"{prefix}unknown argument {option!r}: a callback's argument follows its class "
            f"(--{key}+=EarlyStopping --{key}.{option}=...)"
        )
    if match := re.search(r"Option '([^']+)' is not accepted", message):
        return f"{prefix}unknown argument {match.group(1)!r}"
    details = [
        re.sub(r'^Parser key "[^"]+":\s*', "", line.lstrip("- "))
        for line in lines
        if not line.startswith(("Does not validate", "Subtypes:", "Errors:", "Given value"))
        and "NoneType" not in line
    ]
    details = [line for line in details if line]
    return prefix + (details[-1] if details else message.strip())


class _StrictYAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{self.name}, line {line}: the key {key!r} is given twice in one mapping (first on "
                    f"line {seen[key]}); keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def check_config_file(path: str | Path, keys: str = "keys such as model, data and trainer") -> None:
    """Raise :class:`ConfigError`, naming the file, the line and the reason, unless ``path`` is a usable
    config: valid UTF-8 YAML, no key twice in one mapping, a mapping at the top level.

    jsonargparse reads config files too, but reports problems without the file or in words like
    ``Unexpected config:``; this check runs first.

    Args:
        path: The YAML file.
        keys: What the top-level mapping holds, for the messages (the sweep file has other keys).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from error
    except OSError as error:
        raise ConfigError(f"cannot read the config {path} ({error.strerror or error})") from error
    loader = _StrictYAMLLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        lines = text.splitlines()
        if mark is not None and mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
            reason = "a tab character: YAML indents with spaces only"
        else:
            reason = " ".join(filter(None, (error.context, error.problem)))
        raise ConfigError(f"{path}{where}: not valid YAML ({reason})") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError(f"{path} is empty: a config is a mapping with {keys}")
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a single string"}.get(type(data), f"a {type(data).__name__}")
        raise ConfigError(f"{path}: the top level must be a mapping ({keys}), not {kind}")


def config_files_in(argv: list[str]) -> list[str]:
    """The files named by ``--config`` / ``-c`` in a command line."""
    files = []
    for index, argument in enumerate(argv):
        if argument in ("--config", "-c") and index + 1 < len(argv):
            files.append(argv[index + 1])
        elif argument.startswith("--config="):
            files.append(argument.split("=", 1)[1])
    return files


def _trainer_section(path: str) -> dict[str, Any]:
    """The ``trainer`` mapping of a config file (empty when it has none or cannot be read)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    trainer = data.get("trainer") if isinstance(data, dict) else None
    return trainer if isinstance(trainer, dict) else {}


def keep_validation_by_batches(trainer: Namespace, argv: list[str]) -> str | None:
    """Keep a config file's ``check_val_every_n_epoch: null`` over a later file's number; say so.

    A file that sets an integer ``val_check_interval`` with ``check_val_every_n_epoch: null`` (the
    profile preset) asks for validation every that many training batches, counted across epochs. A
    config file composed after it that sets ``check_val_every_n_epoch`` (a recipe's epoch cadence) would
    turn that into "every N batches within every k-th epoch", which Lightning refuses when an epoch is
    shorter than N batches and which otherwise validates later than asked. The order of ``--config``
    files then does not matter: the null is kept (``trainer`` is changed in place), unless the command
    line sets ``--trainer.check_val_every_n_epoch`` itself or a later file another ``val_check_interval``.

    Returns:
        The line that says what was kept, or ``None`` when nothing changed.
    """
    if any(argument.startswith("--trainer.check_val_every_n_epoch") for argument in argv):
        return None
    if trainer.get("check_val_every_n_epoch") is None:
        return None
    interval = trainer.get("val_check_interval")
    if not isinstance(interval, int) or isinstance(interval, bool):
        return None
    sections = [(file, _trainer_section(file)) for file in config_files_in(argv) if Path(file).is_file()]
    setters = [(file, section) for file, section in sections if "check_val_every_n_epoch" in section]
    by_batches = [
        file
        for file, section in setters
        if section["check_val_every_n_epoch"] is None and section.get("val_check_interval") == interval
    ]
    if not by_batches or setters[-1][1]["check_val_every_n_epoch"] is None:
        return None
    later, value = setters[-1][0], setters[-1][1]["check_val_every_n_epoch"]
    trainer.check_val_every_n_epoch = None
    return (
        f"trainer.check_val_every_n_epoch: null from {by_batches[-1]} (validation every {interval} training "
        f"batches, across epochs) is kept over {value} from {later}, composed after it, as in the other "
        "order; --trainer.check_val_every_n_epoch sets it"
    )


def check_output_folder(folder: str | os.PathLike | None) -> None:
    """Raise :class:`ConfigError` when a run could not create or write ``folder`` (``default_root_dir``)."""
    given = Path(folder if folder is not None else os.getcwd()).expanduser()
    probe = given.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"trainer.default_root_dir {str(given)!r}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"trainer.default_root_dir {str(given)!r}: cannot write in {probe} (no permission)")
    if probe != given.absolute():  # the folder is to be made: make sure it can be (root passes access())
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".mlplab-probe-", dir=probe))
        except OSError as error:
            raise ConfigError(
                f"trainer.default_root_dir {str(given)!r}: cannot create folders in {probe} "
                f"({error.strerror or error})"
            ) from error


def import_class(path: str) -> Any:
    """The class at a dotted import path, or ``None`` when it cannot be imported."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def qualified_name(cls: type) -> str:
    """``module.Name`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def same_class(first: Any, second: Any) -> bool:
    """Whether two class paths name the same class (``mlplab.models.X`` and the module path of ``X``)."""
    if first == second:
        return True
    if not (isinstance(first, str) and isinstance(second, str)):
        return False
    one, other = import_class(first), import_class(second)
    return one is not None and one is other


def leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf of a nested config (class paths are leaves too)."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            found += leaves(item, f"{prefix}.{key}" if prefix else str(key))
        return found
    return [(prefix, value)]


def lookup(config: Any, dotted: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted key in a nested dict."""
    for key in dotted.split("."):
        if not isinstance(config, dict) or key not in config:
            return False, None
        config = config[key]
    return True, config


def run_folders(logs: Path) -> list[Path]:
    """The run directories in a logger's folder (``<default_root_dir>/lightning_logs/*``)."""
    return [path for path in logs.iterdir() if path.is_dir()] if logs.is_dir() else []


def checkpoint_folders(config: Any) -> tuple[list[Path], Path]:
    """The folders a run's checkpoint callback writes into, and how to name them in a message.

    ``checkpoint.dirpath`` when set; else ``checkpoints`` in the run directory a configured logger names
    (``save_dir`` / ``name`` / ``version``; of several loggers the first, whose directory Lightning
    uses), or in every run directory of the logger's folder (``<default_root_dir>/lightning_logs/*`` by
    default). A ``save_dir`` holding ``{default_root_dir}`` (the logger presets) means the run's root.
    """
    dirpath = config.get("checkpoint", {}).get("dirpath")
    if dirpath:
        return [Path(dirpath).expanduser()], Path(dirpath)
    given_root = config.trainer.get("default_root_dir")
    root = Path(given_root or os.getcwd()).expanduser()
    logger = plain(config.trainer.get("logger"))
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    options = logger.get("init_args") or {} if isinstance(logger, dict) else {}
    save_dir = str(options.get("save_dir") or root).replace(ROOT_PLACEHOLDER, str(given_root or "."))
    logs = Path(save_dir).expanduser() / (options.get("name") or "lightning_logs")
    version = options.get("version")
    if version is not None:
        run = logs / (version if isinstance(version, str) else f"version_{version}")
        return [run / "checkpoints"], run / "checkpoints"
    return [run / "checkpoints" for run in run_folders(logs)], logs / "*" / "checkpoints"


def newest_checkpoint(config: Any, name: str) -> Path:
    """``<name>.ckpt`` of the run whose ``config.yaml`` is given, else the newest one of any run.

    A ``--config`` that is the ``config.yaml`` of one of the runs of :func:`checkpoint_folders` names
    that run: ``mlplab predict --config lightning_logs/version_0/config.yaml --ckpt_path best`` takes
    version 0's ``best.ckpt`` even when a later run of the folder has a newer one, and never another
    run's. Otherwise the newest ``<name>.ckpt`` (by modification time) in those folders.

    Raises:
        CheckpointError: When there is none (naming the checkpoints the folder holds instead).
    """
    folders, where = checkpoint_folders(config)
    candidates = {folder.resolve() for folder in folders}
    for given in reversed(config.get("config") or []):  # the last config file given that is a run's
        beside = Path(os.fspath(given)).parent / "checkpoints"
        if Path(os.fspath(given)).name == "config.yaml" and beside.resolve() in candidates:
            folders, where = [beside], beside
            break
    found = [folder / f"{name}.ckpt" for folder in folders if (folder / f"{name}.ckpt").is_file()]
    if not found:
        others = sorted({file.name for folder in folders for file in folder.glob("*.ckpt")})
        if others:
            named = [other[: -len(".ckpt")] for other in others if other in ("best.ckpt", "last.ckpt")]
            keyword = f"--ckpt_path {named[0]} or " if named else ""
            advice = f"it holds {', '.join(others)}: give {keyword}a checkpoint's path"
            if name == "best":
                advice = f"no validation has written one yet; {advice}"
        elif name == "last":
            advice = "nothing to resume: run fit without --ckpt_path to start a new run"
        else:
            advice = "fit first, or give the checkpoint's path"
        raise CheckpointError(f"--ckpt_path {name}: there is no {name}.ckpt in {where}; {advice}")
    return max(found, key=lambda path: (path.stat().st_mtime, str(path)))


class MLPLabArgumentParser(LightningArgumentParser):
    """A ``LightningArgumentParser`` whose errors end the program with one clear line."""

    def error(self, message: str, ex: Exception | None = None) -> None:
        if not getattr(self, "exit_on_error", True) or os.environ.get(DEBUG_ENV_VAR):
            return super().error(message, ex)
        sys.stderr.write(f"error: {condense_parser_error(message)} (see --help)\n")
        self.exit(2)


class MLPLabCLI(LightningCLI):
    """LightningCLI with mlplab's defaults: subclass mode, data-to-task links, standard callbacks.

    Args:
        args: Arguments to parse instead of ``sys.argv[1:]`` (a list, or a dict like a config).
        run: Whether to run the subcommand (``False``: only parse and instantiate).
        **kwargs: Passed to ``LightningCLI``.
    """

    def __init__(self, args: Any = None, run: bool = True, **kwargs: Any):
        argv = sys.argv[1:] if args is None else args
        self._argv = list(argv) if isinstance(argv, (list, tuple)) else None
        self._explicit: Namespace | None = None  # the arguments given, without defaults (parsed on demand)
        # build only the named subcommand's parser: each takes about a quarter of a second
        self._only_subcommand = self._argv[0] if run and self._argv and self._argv[0] in SUBCOMMANDS else None
        for file in config_files_in(self._argv or []):
            if Path(file).is_file():
                check_config_file(file)
            check_preset_file(file)
        self._resume_logger: dict[str, Any] | None = None
        #: The ``--ckpt_path`` checkpoint's dict entries but its weights (a DataModule's state among them,
        #: under its class name): the DataModule takes its state before the task is built.
        self._checkpoint_states: dict[str, dict[str, Any]] = {}
        #: A resumed fit under configured loggers: the checkpoint's run directory and global step.
        self._resume_run: tuple[Path, int] | None = None
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("auto_configure_optimizers", False)  # tasks own their optimiser arguments
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("parser_class", MLPLabArgumentParser)
        kwargs.setdefault("save_config_callback", SaveRunConfig)
        kwargs["parser_kwargs"] = {
            "description": DESCRIPTION,
            "parser_mode": PARSER_MODE,
            **(kwargs.get("parser_kwargs") or {}),
        }
        super().__init__(args=args, run=run, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:  # LightningCLI's is static; every caller uses self
        every = LightningCLI.subcommands()
        only = getattr(self, "_only_subcommand", None)
        return {only: every[only]} if only else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        keep_batch_counts_integer(parser)
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "best"})
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.add_lightning_class_args(Throughput, "throughput")
        parser.add_lightning_class_args(LearningRates, "lr_monitor")
        parser.add_lightning_class_args(CompileBackbone, "compile")
        parser.add_lightning_class_args(SavePredictions, "predictions")
        parser.add_lightning_class_args(RunSummary, "summary")
        parser.add_lightning_class_args(DistributedWatchdog, "watchdog")
        for attribute in LINKED_DATA_ATTRIBUTES:
            parser.link_arguments(f"data.{attribute}", f"model.init_args.{attribute}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        # --print_config waits until the carried arguments are dropped: it prints the config that runs
        with _ActionPrintConfig.skip_print_config():
            super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        with _ActionPrintConfig.skip_print_config():
            self._drop_carried_init_args(subcommand)
        if subcommand and self._argv is not None:
            note = keep_validation_by_batches(self.config[subcommand].trainer, self._argv)
            if note:
                rank_zero_info(note)
        _ActionPrintConfig.print_config_if_requested(parser, self.config)
        if not subcommand:
            return
        config = self.config[subcommand]
        check_output_folder(config.trainer.get("default_root_dir"))
        interval = config.trainer.get("val_check_interval")
        if interval is not None and interval <= 0:
            raise ConfigError(f"trainer.val_check_interval must be positive, got {interval}")
        ckpt_path = config.get("ckpt_path")
        if ckpt_path in ("best", "last"):
            ckpt_path = config.ckpt_path = str(newest_checkpoint(config, ckpt_path))
        if ckpt_path and ckpt_path not in LIGHTNING_CKPT_NAMES:
            verify_checkpoint_file(ckpt_path)
        if subcommand == "predict" and not ckpt_path:
            raise ConfigError(
                "predict needs --ckpt_path: a trained model's checkpoint, or best / last for the newest "
                "of the runs under trainer.default_root_dir (without one the predictions would come from "
                "an untrained model)"
            )

    def _drop_carried_init_args(self, subcommand: str | None) -> None:
        """Give a class the config switches to (``optimizer: torch.optim.Adam``) its own defaults.

        jsonargparse keeps the ``init_args`` of the class a value had before (the task's default
        ``AdamW``, with its ``weight_decay: 0.01``) that the new class also accepts, so a recipe that
        switches to ``Adam`` would train with AdamW's L2 decay of 0.01 without saying so. Here every
        argument of such a class that no config file or command-line argument gives explicitly is set
        back to the new class's own default. Only a task argument whose class differs from the task's
        default class can be affected, so the other runs pay nothing.
        """
        model = (self.config[subcommand] if subcommand else self.config).get("model")
        task = import_class(model.get("class_path", "")) if model is not None else None
        if task is None or self._argv is None:
            return
        parameters: dict[str, inspect.Parameter] = {}
        for cls in reversed(task.__mro__):  # a subclass passes the optimiser trio on as **kwargs
            if "__init__" in vars(cls) and cls is not object:
                parameters.update(inspect.signature(cls.__init__).parameters)
        switched = []
        for name, node in vars(model.get("init_args") or {}).items():
            default = parameters[name].default if name in parameters else None
            if (
                isinstance(node, Namespace) and isinstance(node.get("class_path"), str)
                and isinstance(default, type) and default is not inspect.Parameter.empty
                and not same_class(node.class_path, qualified_name(default))
            ):  # fmt: skip
                switched.append(name)
        if not switched:
            return
        explicit = self._explicit_model_config(subcommand).get("init_args") or {}
        for name in switched:
            node = model.init_args[name]
            given = explicit.get(name) or {}
            if not isinstance(given, dict) or not same_class(given.get("class_path"), node.class_path):
                continue
            cls = import_class(node.class_path)
            own = inspect.signature(cls).parameters if cls is not None else {}
            for key in list(vars(node.get("init_args") or {})):
                if key in (given.get("init_args") or {}) or key not in own:
                    continue
                if own[key].default is not inspect.Parameter.empty:
                    node.init_args[key] = own[key].default

    def _explicit_model_config(self, subcommand: str | None) -> dict[str, Any]:
        """The model arguments the config files and the command line give, without any default."""
        config = self.config[subcommand] if subcommand else self.config
        if self._argv is None:  # arguments given as a dict: all of it is explicit
            return plain(config.get("model")) or {}
        if self._explicit is None:  # parsed once: both the class-switch and the checkpoint rules read it
            self._explicit = self.parser.parse_args(self._argv, defaults=False)
        explicit = self._explicit
        return plain((explicit.get(subcommand) or {}) if subcommand else explicit).get("model") or {}

    def _parse_ckpt_path(self) -> None:
        """Meet the run's model arguments with the hyper-parameters of ``--ckpt_path``'s checkpoint.

        Lightning lets the checkpoint's hyper-parameters replace everything, so an explicit
        ``--model.noise_std 0.5`` was silently evaluated at the checkpoint's noise level. Here the order
        is defaults < checkpoint < what the config files and the command line give, and an explicit
        value that differs from the checkpoint's is refused (one line naming the argument and both
        values) when it is an architecture argument (the task's ``architecture_arguments``: the
        backbone's class and arguments, and for instance the restoration ``mode``) or, when resuming a
        fit, optimiser or schedule state that the checkpoint restores. What is applied is what the run
        records in ``config.yaml`` and ``hparams.yaml``.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
        self._checkpoint_states = {
            key: value for key, value in checkpoint.items() if isinstance(value, dict) and key != "state_dict"
        }
        hparams = plain(dict(checkpoint.get("hyper_parameters") or {}))
        hparams.pop("_instantiator", None)
        if "_class_path" not in hparams:
            return  # not written by mlplab's CLI: its weights alone are loaded
        saved = {"class_path": hparams.pop("_class_path"), "init_args": hparams}
        explicit = self._explicit_model_config(subcommand)
        refusals = self._refusals(saved, explicit, subcommand)
        if refusals:
            name, theirs, given, why = refusals[0]
            others = ", ".join(refusal[0] for refusal in refusals[1:])
            more = f" (and {len(refusals) - 1} more: {others})" if others else ""
            raise CheckpointError(
                f"{name}: the checkpoint {Path(ckpt_path).name} was trained with {theirs!r}, this run gives "
                f"{given!r}{more}; {why}"
            )
        from_checkpoint = {"class_path": saved["class_path"], "dict_kwargs": saved["init_args"]}
        self.config = self.parser.parse_object({subcommand: {"model": from_checkpoint}}, self.config)
        if explicit.get("init_args"):
            self.config = self.parser.parse_object({subcommand: {"model": explicit}}, self.config)
        if subcommand == "fit":
            self._keep_run_seed(checkpoint.get(RUN_SEED_KEY), Path(ckpt_path).name)
            self._plan_resumed_logger(Path(ckpt_path), int(checkpoint.get("global_step", 0)))

    def _keep_run_seed(self, saved: Any, name: str) -> None:
        """A resumed fit keeps its run's seed: taken when none is given, a different one refused.

        The seed orders the rest of the run's training batches (``train_seed``) and is what
        ``summary.json`` records; a fit resumed under another one (the CLI's default 0 when the run was
        seeded otherwise) continued with another batch order and was recorded as a run of that seed.
        """
        if not isinstance(saved, int) or isinstance(saved, bool):
            return  # a checkpoint written before the seed was kept, or by an unseeded run
        if self._argv is None:  # arguments given as a dict: all of it is explicit
            given = self.config["fit"].get("seed_everything")
        else:
            if self._explicit is None:
                self._explicit = self.parser.parse_args(self._argv, defaults=False)
            given = (self._explicit.get("fit") or {}).get("seed_everything")
        if isinstance(given, int) and not isinstance(given, bool) and given != saved:
            raise CheckpointError(
                f"seed_everything: the run of {name} was seeded with {saved}, this run gives {given}; a "
                "resumed fit continues the run's random generators and batch order: leave it out (or give "
                f"{saved}), or start a new fit"
            )
        self.config["fit"].seed_everything = saved

    @staticmethod
    def _refusals(saved: dict[str, Any], explicit: dict[str, Any], subcommand: str) -> list[tuple]:
        """``(argument, checkpoint's value, given value, why)`` of each explicit value that may not differ."""
        if explicit.get("class_path") and not same_class(explicit["class_path"], saved["class_path"]):
            short = saved["class_path"].rsplit(".", 1)[-1]
            return [
                ("model", saved["class_path"], explicit["class_path"],
                 f"it holds a model of the {short} task: use the config it was trained with")
            ]  # fmt: skip
        task = import_class(saved["class_path"])
        architecture = getattr(task, "architecture_arguments", ("backbone",))
        resumed = RESUMED_STATE_ARGUMENTS if subcommand == "fit" else ()
        refusals = []
        for key, given in (explicit.get("init_args") or {}).items():
            if key not in architecture and key not in resumed:
                continue
            why = (
                "the architecture of a trained model cannot change: leave the argument out to use the "
                "checkpoint's, or train a new model"
                if key in architecture
                else "a resumed fit continues with the checkpoint's optimiser and schedule state: leave the "
                "argument out, or start a new fit"
            )
            theirs = saved["init_args"].get(key)
            free: tuple[str, ...] = ()  # the class's computation_arguments: how it computes, not what
            if isinstance(given, dict) and isinstance(theirs, dict) and "class_path" in given:
                if not same_class(given["class_path"], theirs.get("class_path")):
                    refusals.append((f"model.{key}", theirs.get("class_path"), given["class_path"], why))
                    continue
                free = getattr(import_class(given["class_path"]), "computation_arguments", ())
                given, theirs = given.get("init_args") or {}, theirs.get("init_args") or {}
                prefix = f"model.{key}."
            else:
                given, theirs, prefix = {key: given}, {key: theirs}, "model."
            for name, value in leaves(given):
                if name.split(".")[0] in free:
                    continue
                found, their_value = lookup(theirs, name)
                if found and not same_class(value, their_value) and plain(value) != plain(their_value):
                    refusals.append((prefix + name, their_value, value, why))
        return refusals

    def _plan_resumed_logger(self, ckpt_path: Path, step: int) -> None:
        """Continue a resumed fit in its own run directory when the checkpoint lies in one of this root's.

        TensorBoard is told to drop what the killed run logged after the checkpoint (``purge_step``),
        so the curves continue without a fold. Under configured loggers (the presets of
        ``configs/logger/``) :func:`mlplab.loggers.continue_in_run_directory` does the same once they
        are built.
        """
        config = self.config["fit"]
        logger = config.trainer.get("logger")
        if logger is False or config.get("checkpoint", {}).get("dirpath"):
            return
        given_root = config.trainer.get("default_root_dir") or os.getcwd()
        root = Path(given_root).expanduser().resolve()
        run = ckpt_path.resolve().parent.parent
        if ckpt_path.resolve().parent.name != "checkpoints":
            return
        if logger not in (None, True):  # configured loggers (a preset): see continue_in_run_directory
            self._resume_run = (run, step)
        elif run.parent == root / "lightning_logs":
            self._resume_logger = {"save_dir": str(given_root), "version": run.name, "purge_step": step}

    def _add_instantiators(self) -> None:
        """Lightning's instantiators, and with ``--ckpt_path`` the checkpoint's data state for the DataModule.

        The task's data-derived shapes (``cardinalities``, ``num_numeric``, ``num_classes``,
        ``num_series``, ...) are linked from the DataModule when it is built (``LINKED_DATA_ATTRIBUTES``),
        before Lightning restores the checkpoint. A DataModule that takes the checkpoint's state (its
        ``load_state_dict``: a table's category codes, an image folder's classes, the forecasting series)
        right after it is built hands on the shapes the model was trained with, so data that has changed
        since (a category more or fewer in a table's training split) is served with the checkpoint's
        encoding, and data the checkpoint cannot serve is refused in the DataModule's own line rather than
        as weights of another shape. Lightning gives the DataModule the same state again when it restores.
        """
        super()._add_instantiators()
        if self._checkpoint_states:
            self.parser.add_instantiator(
                WithCheckpointState(_InstantiatorFn(cli=self, key="data"), self._checkpoint_states),
                _get_module_type(self._datamodule_class),
                subclasses=self.subclass_mode_data,
            )

    def _run_subcommand(self, subcommand: str) -> None:
        startup_done()  # everything is built: the collector resumes without the start-up objects
        super()._run_subcommand(subcommand)

    def before_instantiate_classes(self) -> None:
        """Put ``default_root_dir`` into the loggers' ``{default_root_dir}`` (:mod:`mlplab.loggers`)."""
        subcommand = self.config.get("subcommand")
        prepare_logger_config((self.config[subcommand] if subcommand else self.config).trainer)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("allow_abbrev", False)  # --model.noise must not silently mean --model.noise_std
        return super().init_parser(**kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Build the Trainer; what its arguments' checks raise is reported as one ``trainer:`` line."""
        if self._resume_logger is not None and "logger" not in kwargs:
            kwargs["logger"] = TensorBoardLogger(**self._resume_logger)
        trainer_config = self._get(self.config_init, "trainer", default={})
        progress_bar = default_progress_bar({**trainer_config, **kwargs})
        if progress_bar is not None and "callbacks" not in kwargs:
            given = trainer_config.get("callbacks") or []
            kwargs["callbacks"] = [*(given if isinstance(given, list) else [given]), progress_bar]
        if trainer_config.get("profiler") is None and "profiler" not in kwargs:
            kwargs["profiler"] = QuietProfiler()  # records nothing, as Lightning's default, more cheaply
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (ValueError, TypeError, MisconfigurationException) as error:
            if isinstance(error, MLPLabError):
                raise
            raise ConfigError(f"trainer: {' '.join(str(error).split())}") from error
        count_flops_in_summary(trainer)
        in_place = self._resume_logger is not None
        if self._resume_run is not None:
            in_place = continue_in_run_directory(trainer.loggers, *self._resume_run)
        share_run_directory(trainer.loggers)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        if config.get("trainer", {}).get("sync_batchnorm") and trainer.world_size > 1:
            if trainer.strategy.root_device.type == "cpu":
                raise ConfigError(
                    "trainer.sync_batchnorm: torch's SyncBatchNorm runs on GPUs only; on CPUs every process "
                    "normalises with its own batch's statistics: leave the flag out"
                )
        if subcommand in ("fit", None):
            self._direct_early_stopping(trainer, subcommand)
        for callback in trainer.callbacks:
            if isinstance(callback, BestCheckpoint) and in_place:
                callback.resuming_in_place = True
            if isinstance(callback, DistributedWatchdog):
                callback.configure_strategy(trainer.strategy)
            if isinstance(callback, RunSummary):
                callback.settings_key = callback.settings_key or settings_digest(config)  # unless given
                if subcommand == "test":
                    # compared with the tested run's config.yaml: a test under other evaluation options
                    # is kept apart from the run's own test value
                    callback.evaluation_config = {
                        "model": plain(config.get("model")),
                        "data": plain(config.get("data")),
                        "trainer": plain(config.get("trainer")),
                    }
        return trainer

    def _direct_early_stopping(self, trainer: Any, subcommand: str | None) -> None:
        """Give an ``EarlyStopping`` whose ``mode`` was not given the direction its metric's name tells.

        Lightning's default, ``min`` for every metric, stopped a run monitoring ``val/psnr`` after
        ``patience`` epochs of improvement, without a word. As for ``--checkpoint.monitor``: the task's
        own metric goes the task's way, another by its name (:func:`mlplab.metrics.metric_mode`), and a
        name that tells neither is refused in one line asking for the mode.
        """
        if self._argv is None:
            return
        if self._explicit is None:
            self._explicit = self.parser.parse_args(self._argv, defaults=False)
        explicit_config = plain((self._explicit.get(subcommand) or {}) if subcommand else self._explicit)
        given = explicit_config.get("trainer", {}).get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        explicit = [
            entry.get("init_args") or {} for entry in given if isinstance(entry, dict)
            and isinstance(cls := import_class(str(entry.get("class_path", ""))), type)
            and issubclass(cls, EarlyStopping)
        ]  # fmt: skip
        built = [callback for callback in trainer.callbacks if isinstance(callback, EarlyStopping)]
        if len(explicit) != len(built):
            return  # not all of them from the command line or a config file: leave them as they are
        task = self.model
        for callback, arguments in zip(built, explicit):
            if "mode" in arguments or not callback.monitor:
                continue
            if callback.monitor == getattr(task, "monitor", None):
                mode = getattr(task, "monitor_mode", None)
            else:
                mode = metric_mode(callback.monitor)
            if mode is None:
                raise ConfigError(
                    f"trainer.callbacks.mode: give max or min for EarlyStopping's monitor {callback.monitor}"
                    ": whether a higher or a lower value is better cannot be told from its name"
                )
            if mode != callback.mode:  # Lightning derives the sign of min_delta and the start from the mode
                callback.mode = mode
                callback.min_delta = -callback.min_delta
                callback.best_score = -callback.best_score


class WithCheckpointState:
    """Builds a DataModule as ``instantiate`` does, then hands it the checkpoint's state for its class.

    Args:
        instantiate: Lightning's DataModule instantiator.
        states: The checkpoint's entries; Lightning keeps a DataModule's ``state_dict()`` under its class's
            ``__qualname__``.
    """

    def __init__(self, instantiate: Any, states: dict[str, dict[str, Any]]):
        self.instantiate = instantiate
        self.states = states

    def __call__(self, class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any) -> Any:
        data = self.instantiate(class_type, *args, applied_instantiation_links=applied_instantiation_links,
                                **kwargs)  # fmt: skip
        state = self.states.get(type(data).__qualname__)
        if state and hasattr(data, "load_state_dict"):
            data.load_state_dict(state)
        return data


@contextlib.contextmanager
def plain_argv() -> Iterator[None]:
    """Hide the calling command's own arguments from a CLI built in process (LightningCLI warns of them)."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


class DropAdvertisement(logging.Filter):
    """Drop Lightning's line advertising its cloud logger (printed by every Trainer since Lightning 2.6)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pypi.org/project/litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(DropAdvertisement())


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Set the named loggers to ``level`` (to keep Lightning's chatter off), then restore theirs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, saved in zip(loggers, levels):
            logger.setLevel(saved)


def check_checkpoint_file(path: str) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is an intact, readable Lightning checkpoint."""
    verify_checkpoint_file(path)


def find_user_error(error: BaseException) -> MLPLabError | None:
    """The :class:`MLPLabError` behind ``error``, following the exceptions it was raised from.

    jsonargparse re-raises errors from a class's ``__init__`` inside its own; this finds ours. Lightning's
    ``MisconfigurationException`` (a Trainer argument it cannot use, such as ``accelerator: gpu``
    without a GPU) counts as a :class:`ConfigError` naming the trainer, W&B's ``UsageError`` (the
    ``wandb`` logger preset without ``wandb login``) as one naming the logger, and a failure of
    ``torch.compile``'s backend at the first compiled call (``--compile.enabled``: a C++ compiler
    missing or failing, a damaged kernel cache) as one naming its cause.
    """
    seen: set[int] = set()
    misconfiguration = None
    dynamo = sys.modules.get("torch._dynamo.exc")  # imported only by a run that compiles
    while error is not None and id(error) not in seen:
        if isinstance(error, MLPLabError):
            return error
        if dynamo is not None and isinstance(error, dynamo.BackendCompilerFailed):
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            cause = lines[0] if lines else type(error).__name__
            return ConfigError(
                f"compile: torch.compile could not compile the backbone ({cause}); run without "
                f"--compile.enabled, or with {DEBUG_ENV_VAR}=1 for the traceback"
            )
        if isinstance(error, MisconfigurationException) and misconfiguration is None:
            misconfiguration = error
        if type(error).__module__.startswith("wandb.") and type(error).__name__ == "UsageError":
            message = " ".join(str(error).split()).rstrip(".")  # no API key, a bad key, an unknown entity
            return ConfigError(
                f"trainer.logger: Weights & Biases: {message} (or set WANDB_MODE=offline to log locally)"
            )
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    if misconfiguration is not None:
        message = " ".join(str(misconfiguration).split())
        return ConfigError(f"trainer: {message}")
    return None


def main(args: list[str] | None = None) -> None:
    """The training commands (fit / validate / test / predict): run the CLI, report user errors in one line.

    The ``mlplab`` program is :func:`mlplab.__main__.main`, which sends ``mlplab sweep`` to
    :mod:`mlplab.tools.sweep` (that imports this module; this module imports nothing of it) and
    ``mlplab models`` to :func:`mlplab.models.registry.main`.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # users' own modules in the working directory are importable
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] in (["sweep"], ["models"], ["compare"]):  # a `mlplab` script older than mlplab.__main__
        sys.stderr.write(
            f"error: this `mlplab` script predates mlplab.__main__, which runs `mlplab {argv[0]}`: reinstall "
            f"mlplab (pip install -e .) or run `python -m mlplab {argv[0]} ...`\n"
        )
        sys.exit(2)
    try:
        MLPLabCLI(args=args)
    except SIGTERMException:  # Ctrl-C or SIGTERM in a multi-process run: every process stopped at one step
        sys.exit(128 + (received_signals[0] if received_signals else signal.SIGTERM))
    except Exception as error:
        if is_collective_failure(error) and not os.environ.get(DEBUG_ENV_VAR):
            world_size = int(os.environ.get("WORLD_SIZE", "1"))
            sys.stderr.write(f"error: {collective_failure_line(error, rank_zero_only.rank, world_size)}\n")
            sys.exit(1)
        user_error = find_user_error(error)
        if user_error is None or os.environ.get(DEBUG_ENV_VAR):
            raise
        exit_with_error_line(user_error)
