"""``mlplab export``: a trained run's model as safetensors, ONNX or TorchScript, with its config.

``mlplab export --run lightning_logs/version_0 --format onnx`` writes ``<run>/export/onnx/model.onnx``
and ``config.json`` beside it, which says what the file holds: the task and family with every argument
(enough for :func:`load_exported` to rebuild a safetensors export), the inputs by name and shape, the
output, the preprocessing the inputs need (normalisation statistics, the scaler and series names, the
vocabulary: see :func:`mlplab.load_run`) and the check below.

What is exported is the trained model alone, as the task calls it: the family (``task.backbone``), or
what a task's ``inference_module()`` returns (a forecaster with the task's RevIN or calendar features; a
tabular family that predicts as ``mlplab predict`` does: an ensemble's members averaged, class
probabilities or values in the target's units). A module with an ``output_description`` says in
``config.json`` what its output is.
Its inputs come from the task's shapes (``example_inputs``): images ``(B, C, H, W)``, a standardised
history ``(B, L, N)`` (and ``time_features`` ``(B, L, F)``), tokens ``(B, T)``, a neural field's pixel
``coords`` ``(B, 2)``, a fitted function's ``inputs`` ``(B, d)``, a table's transformed numeric columns
``x_num`` ``(B, N)`` and category codes ``x_cat`` ``(B, C)``.

Every export is checked: the written file is loaded back (safetensors into a rebuilt model, TorchScript
with ``torch.jit.load``, ONNX with onnxruntime when it is installed) and its outputs on a fresh batch
must equal the checkpoint's (within 1e-4 of their scale; bit for bit for safetensors). ONNX uses
torch's ``torch.export``-based exporter with a dynamic batch axis (a static one when that fails) and
writes one file (weights over 1 GiB go beside it, in ``model.onnx.data``; ``config.json``'s ``files``
lists what to ship);
TorchScript is traced (``torch.jit.trace`` with its consistency check). When a format cannot hold the
model, the layer responsible is found by exporting the submodules one by one with the inputs they get,
and named in one line.

A sequence model (language modelling, associative recall) is traced on ``context_length`` tokens; its
ONNX export makes the length axis dynamic too, and both formats are then checked on sequences of 1,
2, about half the context and one less than it. An export that passes takes any length up to
``context_length`` (``config.json``: ``tokens`` of shape ``["batch", "length"]``). Layers that loop over
chunks in Python (the scans of ``GatedLinearAttention`` and ``Mamba``) take a length-generic form while
traced (:func:`mlplab.models.sequence.scans.exporting`), and ``GatedConv`` sums its long convolution
directly under ``torch.export`` (onnxruntime runs a dynamic-length inverse FFT wrongly). One whose graph
still holds the traced length (a family that uses the length as a Python number; an ONNX graph with a
dynamic length that computes wrong on others is written again with the traced length) says so in
``config.json`` (shape ``["batch", T]``, ``any_length: false``) and in the line ``mlplab export``
prints.
A safetensors export rebuilds the model, which takes any length.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlplab.errors import DEBUG_ENV_VAR, ConfigError, MLPLabError, OneLineParser, exit_with_error_line

#: File suffix of each format.
FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}
#: Largest difference from the checkpoint's outputs, relative to their largest magnitude (at least 1).
TOLERANCE = 1e-4
#: Largest ONNX model written as one file (protobuf's limit is 2 GiB); larger ones keep their weights
#: beside it in ``model.onnx.data``, which ``config.json``'s ``files`` names.
ONNX_SINGLE_FILE_BYTES = 1 << 30
#: Packages each format needs beyond torch: import name -> what to install.
REQUIRED = {"safetensors": ["safetensors"], "onnx": ["onnx", "onnxscript"], "torchscript": []}


@dataclass
class Exported:
    """What :func:`export` wrote and how it was checked."""

    path: Path
    config: Path
    difference: float | None
    any_batch: bool
    note: str = ""
    #: Whether a sequence model's file takes any length up to its context (None: no length axis).
    any_length: bool | None = None


# ------------------------------------------------------------------------------- model and inputs
def inference_module(task: nn.Module) -> nn.Module:
    """The trained model a task's forward runs: ``task.inference_module()`` or ``task.backbone``."""
    make = getattr(task, "inference_module", None)
    return make() if callable(make) else task.backbone


def sequence_length(task: nn.Module) -> int | None:
    """The longest sequence of a sequence task (its tokens' axis 1 may be shorter), else None."""
    from mlplab.tasks.sequence import SequenceTask

    return task.context_length if isinstance(task, SequenceTask) else None


def example_inputs(
    task: nn.Module, batch_size: int, generator: torch.Generator, length: int | None = None
) -> dict[str, torch.Tensor]:
    """Inputs of :func:`inference_module` by name, from the task's shapes (or its ``example_inputs``).

    ``length``: the tokens per sequence of a sequence task (default: its ``context_length``).

    Raises:
        ConfigError: The task says nothing about its inputs.
    """
    from mlplab.tasks import ImageClassification, ImageRestoration
    from mlplab.tasks.sequence import SequenceTask

    make = getattr(task, "example_inputs", None)
    if callable(make):
        return make(batch_size, generator)
    if isinstance(task, ImageRestoration):
        return {"images": torch.rand(batch_size, *task.input_shape, generator=generator)}
    if isinstance(task, ImageClassification):
        return {"images": torch.randn(batch_size, *task.image_shape, generator=generator)}
    if isinstance(task, SequenceTask):
        shape = (batch_size, length or task.context_length)
        return {"tokens": torch.randint(0, task.vocab_size, shape, generator=generator)}
    raise ConfigError(
        f"export does not know the inputs of {type(task).__name__}: give the task an "
        "example_inputs(batch_size, generator) method returning its inputs by name"
    )


# ---------------------------------------------------------------------------------- the formats
def _quietly() -> contextlib.ExitStack:
    """Silence the exporters' progress prints and tracer warnings."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _write(
    format: str, module: nn.Module, inputs: dict[str, torch.Tensor], path: Path, dynamic: bool, length: bool
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """Write ``module`` to ``path`` in ``format``; return a function that runs the written file.

    ONNX: ``dynamic`` makes the batch axis (0) of every input dynamic, ``length`` axis 1 too.
    """
    values = tuple(inputs.values())
    if format == "safetensors":
        from safetensors.torch import load_model, save_model

        save_model(module, str(path))

        def run_safetensors(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            copy = _copy_without_weights(module)
            load_model(copy, str(path))  # strict: every weight must be in the file
            return copy(*batch.values())

        return run_safetensors
    if format == "torchscript":
        with _quietly():
            traced = torch.jit.trace(module, values, check_trace=True)
        traced.save(str(path))
        with _quietly():
            loaded = torch.jit.load(str(path))
        return lambda batch: loaded(*batch.values())
    with _quietly():
        axes = {0: torch.export.Dim.DYNAMIC, **({1: torch.export.Dim.DYNAMIC} if length else {})}
        shapes = tuple(dict(axes) for _ in values) if dynamic else None
        torch.onnx.export(
            module,
            values,
            str(path),
            dynamo=True,
            input_names=list(inputs),
            output_names=["output"],
            dynamic_shapes=shapes,
            external_data=_weight_bytes(module) >= ONNX_SINGLE_FILE_BYTES,  # one file when it fits
        )
    if importlib.util.find_spec("onnxruntime") is None:
        return None  # type: ignore[return-value]
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # a graph that refuses a shape raises; its log line would be noise
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run_onnx(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {name: value.numpy() for name, value in zip(names, batch.values())}
        return torch.from_numpy(session.run(None, feed)[0])

    return run_onnx


def _weight_bytes(module: nn.Module) -> int:
    """Bytes of the module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def written_files(path: Path) -> list[str]:
    """The files an export to ``path`` consists of: the model and, for a large ONNX one, its weights."""
    return [p.name for p in (path, path.with_name(path.name + ".data")) if p.is_file()]


def _copy_without_weights(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every weight set to NaN (so that a weight not loaded shows)."""
    clone = deepcopy(module)
    with torch.no_grad():
        for tensor in [*clone.parameters(), *clone.buffers()]:
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))
    return clone


def _difference(expected: torch.Tensor, got: torch.Tensor) -> float:
    """Largest absolute difference, relative to the largest magnitude of ``expected`` (at least 1)."""
    if expected.shape != got.shape:
        return math.inf
    scale = max(1.0, float(expected.abs().max()))
    return float((expected.float() - got.float()).abs().max()) / scale


def _attempt(
    format: str,
    module: nn.Module,
    trace: dict[str, torch.Tensor],
    check: dict[str, torch.Tensor],
    path: Path,
    dynamic: bool,
    length: bool = False,
) -> tuple[float | None, Callable[[dict[str, torch.Tensor]], torch.Tensor] | None]:
    """Export ``module`` on ``trace`` and run the file on ``check`` (``dynamic``, ``length``: :func:`_write`).

    The export runs on a copy of ``module``, which stays as it was.

    Returns:
        The relative difference from the module's outputs and the function that runs the file (both
        ``None`` when the file cannot be run here: ONNX without onnxruntime).

    Raises:
        Exception: Whatever the exporter raises, or ``ValueError`` when the outputs differ.
    """
    module = deepcopy(module)
    run = _write(format, module, trace, path, dynamic, length)
    if run is None:
        return None, None
    with torch.no_grad():
        expected, got = module(*check.values()), run(check)
    difference = _difference(expected, got)
    if not difference <= TOLERANCE:
        raise ValueError(
            f"its outputs on another batch differ from the model's by {difference:.3g} of their scale (the "
            "exported graph holds values of the first batch)"
        )
    return difference, run


def _same_outputs(
    module: nn.Module, run: Callable[[dict[str, torch.Tensor]], torch.Tensor], inputs: dict[str, torch.Tensor]
) -> bool:
    """Whether the exported file gives the module's outputs on ``inputs`` (another batch size, say)."""
    try:
        with torch.no_grad(), _quietly():
            return _difference(deepcopy(module)(*inputs.values()), run(inputs)) <= TOLERANCE
    except Exception:  # noqa: BLE001 -- a graph built for one batch size refuses another
        return False


# ---------------------------------------------------------------------------- finding the layer
def _calls(module: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, tuple]:
    """The arguments each submodule (by name) gets first in a forward pass of a copy of ``module``.

    The pass runs on a copy: layers that cache something at their first call (ConViT's attention caches
    its relative positions) stay as they were.
    """
    copy = deepcopy(module)
    calls: dict[str, tuple] = {}

    def keeper(name: str) -> Callable[..., None]:
        def keep(sub: nn.Module, args: tuple, kwargs: dict) -> None:
            calls.setdefault(name, (args, {k: v for k, v in kwargs.items() if v is not None}))

        return keep

    hooks = [
        sub.register_forward_pre_hook(keeper(name), with_kwargs=True) for name, sub in copy.named_modules()
    ]
    try:
        with torch.no_grad():
            copy(*inputs.values())
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def failing_layer(
    format: str,
    module: nn.Module,
    trace: dict[str, torch.Tensor],
    check: dict[str, torch.Tensor],
    reason: str = "",
) -> tuple[str, nn.Module, str]:
    """The deepest submodule that ``format`` cannot export although all of its children can.

    Each submodule (a fresh copy) is exported alone with the tensors it gets in the model's forward
    pass and checked on those of another batch; the search descends into the first one that fails.
    Submodules called with keywords or non-tensors are not tried alone: their children are.

    Args:
        format: The export format.
        module: The model that failed to export (not yet called, or as it was before).
        trace: Its inputs for the export.
        check: Other inputs, to check the exported file on.
        reason: Why the model itself failed (reported when no submodule fails).

    Returns:
        ``(dotted name, module, reason)``; the name is ``""`` when the model's own forward fails.
    """
    first, second = _calls(module, trace), _calls(module, check)

    def alone(name: str) -> bool:
        args, kwargs = first.get(name, ((), {}))
        tensors = all(isinstance(a, torch.Tensor) for a in args)
        return name in first and name in second and not kwargs and tensors

    def descend(node: nn.Module, prefix: str, why: str) -> tuple[str, nn.Module, str]:
        pending = [(f"{prefix}{name}", child) for name, child in node.named_children()]
        while pending:
            name, child = pending.pop(0)
            if not alone(name):  # a container, or called with keywords: look at its children
                pending[:0] = [(f"{name}.{n}", c) for n, c in child.named_children()]
                continue
            names = [f"input{i}" for i in range(len(first[name][0]))]
            try:
                with tempfile.TemporaryDirectory() as folder:
                    _attempt(
                        format,
                        child,
                        dict(zip(names, first[name][0])),
                        dict(zip(names, second[name][0])),
                        Path(folder) / f"layer{FORMATS[format]}",
                        dynamic=False,
                    )
            except Exception as error:  # noqa: BLE001 -- any exporter error counts
                return descend(child, f"{name}.", _reason(error))
        return prefix.rstrip("."), node, why

    return descend(module, "", reason)


def _reason(error: BaseException) -> str:
    """The first informative line of the error an exporter's error was raised from, shortened."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Traceback", "File "))] or [type(error).__name__]
    first = " ".join(useful[:2]) if len(useful[0]) < 40 else useful[0]  # "Tracing failed sanity checks!"
    return first if len(first) <= 160 else first[:157] + "..."


# -------------------------------------------------------------------------------------- export
def export(
    task: nn.Module,
    format: str,
    folder: str | Path,
    batch_size: int = 2,
    preprocessing: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    hyper_parameters: dict[str, Any] | None = None,
) -> Exported:
    """Write a task's trained model in ``format`` to ``folder`` (``model.<ext>`` and ``config.json``).

    Args:
        task: The task with its trained weights (e.g. ``mlplab.load_run(DIR).model``).
        format: ``safetensors``, ``onnx`` or ``torchscript``.
        folder: Where the two files go (created).
        batch_size: Samples in the batches the model is traced and checked on.
        preprocessing: What the inputs need (``Run.preprocessing``), recorded in the config.
        source: Where the model comes from (run directory, checkpoint), recorded in the config.
        hyper_parameters: The task's arguments as a checkpoint holds them (``Run.hyper_parameters``),
            recorded so that :func:`load_exported` can rebuild the model; default: ``task.hparams``.

    Raises:
        ConfigError: An unknown format, a missing package, or a model the format cannot hold (naming
            the layer).
    """
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    missing = [name for name in REQUIRED[format] if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"--format {format} needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: pip install 'mlplab[export]'"
        )
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size}")
    task = task.cpu().eval()
    module = inference_module(task).eval()
    generator = torch.Generator().manual_seed(0)
    trace, check = example_inputs(task, batch_size, generator), example_inputs(task, batch_size, generator)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, no permission
        raise ConfigError(f"cannot create the export folder {folder} ({error.strerror or error})") from error
    path = folder / f"model{FORMATS[format]}"
    path.with_name(path.name + ".data").unlink(missing_ok=True)  # an earlier export's ONNX weights
    longest = sequence_length(task)
    # ONNX: dynamic batch (and length) axes; retried with a static length, then a static batch size
    tries = [(True, True), (True, False), (False, False)] if longest else [(True, False), (False, False)]
    if format != "onnx":
        tries = [(False, False)]

    def write(tries: list[tuple[bool, bool]]) -> tuple[float | None, Any, bool]:
        for number, (dynamic, length) in enumerate(tries, 1):
            try:
                return (*_attempt(format, module, trace, check, path, dynamic, length), length)
            except Exception:  # noqa: BLE001
                if number == len(tries):
                    raise
        raise AssertionError("no tries")  # unreachable: the last try returns or raises

    def takes_shorter(run: Any) -> bool:
        return run is not None and all(
            _same_outputs(module, run, example_inputs(task, batch_size, generator, shorter))
            for shorter in checked_lengths(longest)
        )

    try:
        difference, run, length = write(tries)
        any_length = None if longest is None else format == "safetensors" or takes_shorter(run)
        if length and any_length is False:  # a dynamic length axis computing wrong: declare the traced one
            difference, run, length = write([t for t in tries if not t[1]])
    except Exception as error:  # noqa: BLE001
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".data").unlink(missing_ok=True)
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        name, layer, reason = failing_layer(format, module, trace, check, _reason(error))
        family = type(module).__name__
        where = f"its layer {name} ({type(layer).__name__})" if name else f"{family}'s own forward"
        raise ConfigError(
            f"{format} cannot export {family}: {where} fails: {reason}; --format safetensors holds any model"
        ) from error
    any_batch = run is not None and _same_outputs(
        module, run, example_inputs(task, batch_size + 1, generator)
    )
    hparams = dict(hyper_parameters if hyper_parameters is not None else getattr(task, "hparams", {}))
    hparams.pop("_instantiator", None)
    config = _config(task, module, format, path, trace, check, difference, any_batch, hparams, any_length)
    config.update(preprocessing=preprocessing or {}, source=source or {})
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config, indent=2, default=_jsonable) + "\n")
    note = "" if difference is not None else "not checked: onnxruntime is not installed"
    return Exported(path, config_path, difference, any_batch, note, any_length)


def checked_lengths(context_length: int) -> list[int]:
    """The shorter sequence lengths an export is checked on: 1, 2, about half the context, and one less."""
    return sorted({1, 2, context_length // 2 + 1, context_length - 1} - {0, context_length})


def _config(
    task: nn.Module,
    module: nn.Module,
    format: str,
    path: Path,
    trace: dict[str, torch.Tensor],
    check: dict[str, torch.Tensor],
    difference: float | None,
    any_batch: bool,
    hparams: dict[str, Any],
    any_length: bool | None = None,
) -> dict[str, Any]:
    backbone = hparams.get("backbone") if isinstance(hparams.get("backbone"), dict) else {}
    with torch.no_grad():
        output = module(*check.values())
    batch = "batch" if any_batch else len(next(iter(trace.values())))

    def described(name: str, value: torch.Tensor) -> dict[str, Any]:
        return {
            "name": name,
            "shape": [batch, *value.shape[1:]],
            "dtype": str(value.dtype).replace("torch.", ""),
        }

    inputs = [described(name, value) for name, value in trace.items()]
    inputs[0].update(_description(task, "input_description"))  # the task's words for its (first) input
    produced = {**described("output", output), **_description(module, "output_description")}
    if any_length is not None:  # a sequence model's tokens: (batch, length), length <= context_length
        longest = sequence_length(task)
        inputs[0]["shape"][1] = produced["shape"][1] = "length" if any_length else longest
        inputs[0]["description"] = (
            f"token ids (batch, length), any length from 1 to the context length {longest}"
            if any_length
            else f"token ids (batch, {longest}): this file takes sequences of exactly {longest} tokens (its "
            "graph holds the length it was traced at; --format safetensors rebuilds the model, which takes "
            "any length up to it)"
        )

    return {
        "format": format,
        "file": path.name,
        "files": written_files(path),
        "model": type(module).__name__,
        "task": hparams.get("_class_path", f"{type(task).__module__}.{type(task).__name__}"),
        "family": backbone.get(
            "class_path", f"{type(task.backbone).__module__}.{type(task.backbone).__name__}"
        ),
        "family_args": backbone.get("init_args", {}),
        "task_args": hparams,
        "inputs": inputs,
        **({"any_length": any_length} if any_length is not None else {}),
        "output": produced,
        "check": {
            "batch_size": len(next(iter(check.values()))),
            "largest_relative_difference": difference,
            "tolerance": TOLERANCE,
        },
        "torch": torch.__version__,
    }


def _description(owner: nn.Module, attribute: str) -> dict[str, str]:
    """``{"description": ...}`` from ``owner``'s ``attribute`` (``output_description``; none without one)."""
    text = getattr(owner, attribute, None)
    return {"description": text} if isinstance(text, str) else {}


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def load_exported(folder: str | Path) -> nn.Module:
    """The model of a safetensors export (``model.safetensors`` and ``config.json``), rebuilt and loaded.

    The task of ``config.json`` is built from its arguments and its inference module gets the weights;
    for ONNX use onnxruntime and for TorchScript ``torch.jit.load`` on the file directly.
    """
    from lightning.pytorch import LightningModule
    from lightning.pytorch.cli import instantiate_module
    from safetensors.torch import load_model

    import mlplab.models  # noqa: F401
    import mlplab.tasks  # noqa: F401

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    if config.get("format") != "safetensors":
        raise ConfigError(
            f"{folder} holds a {config.get('format')} export; load_exported reads safetensors ones"
        )
    task = instantiate_module(LightningModule, dict(config["task_args"]))
    module = inference_module(task).eval()
    load_model(module, str(folder / config["file"]))
    return module


def export_run(
    run: str | Path,
    format: str,
    checkpoint: str = "best",
    out: str | Path | None = None,
    batch_size: int = 2,
) -> Exported:
    """Export the model of a run directory (see :func:`export`) to ``out`` (``<run>/export/<format>``)."""
    from mlplab.runs import load_run

    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    loaded = load_run(run, checkpoint)
    base = Path(run) if Path(run).is_dir() else loaded.checkpoint.parent.parent
    folder = Path(out) if out is not None else base / "export" / format
    source = {"run": str(run), "checkpoint": str(loaded.checkpoint)}
    return export(
        loaded.model, format, folder, batch_size, loaded.preprocessing, source, loaded.hyper_parameters
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mlplab export`` command line."""
    parser = OneLineParser(
        prog="mlplab export",
        description="Write a trained run's model as safetensors, ONNX or TorchScript with a config.json "
        "(task, family and arguments, inputs, preprocessing); the file's outputs are checked against the "
        "checkpoint's on a batch.",
    )
    parser.add_argument(
        "--run", required=True, help="the run directory (lightning_logs/version_N) or a .ckpt"
    )
    parser.add_argument("--format", required=True, help="safetensors, onnx or torchscript")
    parser.add_argument("--checkpoint", default="best", help="best (default), last or a checkpoint file")
    parser.add_argument("--out", help="the output folder (default: <run>/export/<format>)")
    parser.add_argument("--batch-size", type=int, default=2, help="samples per check batch (default 2)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """``mlplab export``: export a run; a user error ends with one ``error:`` line (exit status 2)."""
    parser = build_parser()
    options = parser.parse_args(list(argv) if argv is not None else None)
    try:
        result = export_run(options.run, options.format, options.checkpoint, options.out, options.batch_size)
    except MLPLabError as error:
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        exit_with_error_line(error)
    checked = (
        f"checked on a batch of {options.batch_size}: largest difference {result.difference:.2g} of the "
        "outputs' scale"
        if result.difference is not None
        else result.note
    )
    batch = "" if result.any_batch else f"; the exported model takes batches of {options.batch_size} only"
    if result.any_length is False:
        config = json.loads(result.config.read_text())
        batch += f"; it takes sequences of {config['inputs'][0]['shape'][1]} tokens only"
    print(f"wrote {result.path} and {result.config} ({checked}{batch})")
