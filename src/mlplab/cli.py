"""The mlplab command line: ``python cli.py`` or ``mlplab`` followed by fit / validate / test / predict.

``MLPLabCLI`` is a ``LightningCLI`` in subclass mode for both the task (``model:``) and the DataModule
(``data:``). Short class names work for everything mlplab ships (``class_path: HourglassMLP``) because
this module imports the task, data and model packages. What the DataModule knows about the data
(image shape, number of classes, ...) is linked into the task, which hands it to its backbone, so a
config never states a dimension twice. Five callbacks are always present and configured under their
own top-level keys: ``checkpoint`` (``checkpoints/best.ckpt`` by the task's main metric, and
``last.ckpt``), ``throughput`` (samples/s, FLOPs/s, MFU), ``lr_monitor``, ``compile`` (opt-in
``torch.compile``) and ``predictions`` (``predict`` writes ``predictions.pt`` to the run directory).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import get_loader, set_loader
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import mlplab.data  # noqa: F401  (registers the DataModules for short class names)
import mlplab.models  # noqa: F401  (registers the families)
import mlplab.tasks  # noqa: F401  (registers the tasks)
from mlplab.callbacks import (
    BestCheckpoint,
    CompileBackbone,
    LearningRates,
    SavePredictions,
    SaveRunConfig,
    Throughput,
)
from mlplab.errors import CheckpointError, MLPLabError
from mlplab.models import registry

#: DataModule attributes handed to the task argument of the same name, when both exist.
LINKED_DATA_ATTRIBUTES = (
    "image_shape",
    "num_classes",
    "lookback",
    "horizon",
    "num_series",
    "num_time_features",
    "vocab_size",
    "context_length",
    "vocabulary",
)

DEBUG_ENV_VAR = "MLPLAB_DEBUG"

DESCRIPTION = (
    "mlplab: train MLP-centred architectures. fit / validate / test / predict run one config (see "
    "`mlplab fit --help`); `mlplab sweep --config SWEEP.yaml --out DIR` trains parameter-matched shapes of "
    "one or more families and draws their Pareto frontiers (see `mlplab sweep --help`); `mlplab models` "
    "lists the registered families, their named variants and parameter counts."
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


def condense_parser_error(message: str) -> str:
    """Turn jsonargparse's nested, multi-line error into one line: the key and what is wrong with it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    keys = [match.group(1) for line in lines if (match := re.match(r'Parser key "([^"]+)"', line))]
    where = ".".join(dict.fromkeys(keys))
    prefix = f"{where}: " if where else ""
    missing_import = (
        r"Problem with given class_path '([^']+)':\s*(?:module '[^']+' has no attribute|No module named)"
    )
    if match := re.search(r"Expected a dot import path string: (\S+)", message) or re.search(
        missing_import, message
    ):
        return (
            f"{prefix}unknown class {match.group(1)!r}: give an importable class path or a class mlplab has"
        )
    if match := re.search(r"Option '([^']+)' is not accepted.*?class_path='([^']+)'", message):
        option, class_path = match.group(1), match.group(2)
        spec = registry.find(class_path)
        renamed = spec.renamed.get(option.rsplit(".", 1)[-1]) if spec is not None else None
        hint = f" (it is now called {renamed!r})" if renamed else ""
        return f"{prefix}{class_path.rsplit('.', 1)[-1]} has no argument {option!r}{hint}"
    expected = re.findall(r"Expected a <class '([^']+)'>", message)
    nested_arg = r"(?:NestedArg\(key='[^']*', val=)?"
    given = re.search(rf"Given value: {nested_arg}'?([^']+?)'?\)?$", message, re.MULTILINE)
    wanted = [name for name in expected if name != "NoneType"]
    if wanted and given:
        return f"{prefix}expected {' or '.join(wanted)}, got {given.group(1)!r}"
    details = [
        re.sub(r'^Parser key "[^"]+":\s*', "", line.lstrip("- "))
        for line in lines
        if not line.startswith(("Does not validate", "Subtypes:", "Errors:", "Given value"))
        and "NoneType" not in line
    ]
    details = [line for line in details if line]
    return prefix + (details[-1] if details else message.strip())


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

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "best"})
        parser.add_lightning_class_args(Throughput, "throughput")
        parser.add_lightning_class_args(LearningRates, "lr_monitor")
        parser.add_lightning_class_args(CompileBackbone, "compile")
        parser.add_lightning_class_args(SavePredictions, "predictions")
        for attribute in LINKED_DATA_ATTRIBUTES:
            parser.link_arguments(f"data.{attribute}", f"model.init_args.{attribute}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("best", "last", "hpc", "registry"):
            check_checkpoint_file(ckpt_path)


def check_checkpoint_file(path: str) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a readable Lightning checkpoint."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        try:
            checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # not a zip-format file: load without mmap to learn why
            checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"cannot read the checkpoint {path}: damaged or not a PyTorch checkpoint "
            f"({type(error).__name__}: {reason})"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict in it)")


def find_user_error(error: BaseException) -> MLPLabError | None:
    """The :class:`MLPLabError` behind ``error``, following the exceptions it was raised from.

    jsonargparse re-raises errors from a class's ``__init__`` inside its own; this finds ours.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MLPLabError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def main(args: list[str] | None = None) -> None:
    """Entry point of ``mlplab`` and ``python cli.py``: run the CLI, report user errors in one line.

    ``mlplab sweep ...`` goes to :func:`mlplab.tools.sweep.main` and ``mlplab models ...`` to
    :func:`mlplab.models.registry.main` before LightningCLI parses anything.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # users' own modules in the working directory are importable
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv[:1] == ["sweep"]:
            from mlplab.tools.sweep import main as sweep_main

            sweep_main(argv[1:])
        elif argv[:1] == ["models"]:
            registry.main(argv[1:])
        else:
            MLPLabCLI(args=args)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None or os.environ.get(DEBUG_ENV_VAR):
            raise
        sys.stderr.write(f"error: {user_error}\n")
        sys.exit(2)
