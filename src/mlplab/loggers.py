"""Images, figures and text to every configured logger, and the logger presets of ``configs/logger/``.

Scalars reach every Lightning logger through ``self.log``; images, figures and text have no common
Lightning call, so the tasks and tools send them through :func:`log_image`, :func:`log_figure` and
:func:`log_text`, which write them to whichever loggers a run has:

* ``TensorBoardLogger``: the Images and Text tabs (``add_image``, ``add_figure``, ``add_text``);
* ``CSVLogger``: files beside ``metrics.csv``, ``<run dir>/media/<tag>/step_<N>.png`` (``.txt``, ``.md``);
* ``WandbLogger``: ``wandb.Image`` (figures rendered to pixels) and a one-column text table;
* ``MLFlowLogger``: run artifacts ``media/<tag>/step_<N>.png`` (``.txt``, ``.md``) (``log_image``,
  ``log_figure``, ``log_text`` of the MLflow client).

A logger of another kind is skipped, with one warning per kind. Only the process of rank zero writes.

Presets: ``configs/logger/{tensorboard,csv,wandb,mlflow}.yaml`` set ``trainer.logger``; a logger
argument whose value holds ``{default_root_dir}`` gets the run's ``trainer.default_root_dir`` (``.``
when unset) there, so that every preset keeps the run directory ``<default_root_dir>/lightning_logs/
version_N`` with its checkpoints and ``config.yaml``. :func:`prepare_logger_config` does that, and
refuses in one line a logger whose package is not installed; :func:`check_preset_file` names the
presets when a ``--config`` under ``configs/logger/`` does not exist. An ``MLFlowLogger`` without a
``tracking_uri`` writes to a local file store (``save_dir``), which MLflow 3 accepts only with
``MLFLOW_ALLOW_FILE_STORE=true``: mlplab sets that for such a run unless it is set already.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from mlplab.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: What a logger argument may hold to mean the run's ``trainer.default_root_dir``.
ROOT_PLACEHOLDER = "{default_root_dir}"

#: Loggers that need a package mlplab does not depend on: class name -> (import name, pip extra).
OPTIONAL_LOGGERS = {"WandbLogger": ("wandb", "wandb"), "MLFlowLogger": ("mlflow", "mlflow")}

_warned: set[str] = set()


# ------------------------------------------------------------------------------------------- media
def log_image(loggers: Iterable[Logger], tag: str, image: torch.Tensor, step: int) -> None:
    """Write an image ``(C, H, W)`` with values in [0, 1] (C = 1 or 3) to every logger.

    Values outside [0, 1] are clipped; pixels that are not finite (a diverged model's) are drawn black
    (NaN, -inf) or white (+inf) instead of whatever their cast to bytes gives.

    Args:
        loggers: The run's loggers (``trainer.loggers`` or ``module.loggers``).
        tag: Name such as ``val/samples``.
        image: The image, on any device.
        step: The global step it belongs to.
    """
    image = image.detach().float().nan_to_num(nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1).cpu()
    _write(loggers, tag, step, "image", image)


def log_figure(loggers: Iterable[Logger], tag: str, figure: Figure, step: int) -> None:
    """Write a matplotlib figure to every logger (the caller closes it)."""
    _write(loggers, tag, step, "figure", figure)


def log_text(loggers: Iterable[Logger], tag: str, text: str, step: int, markdown: bool = False) -> None:
    """Write a text to every logger.

    Args:
        loggers: The run's loggers.
        tag: Name such as ``val/sample``.
        text: The text.
        step: The global step it belongs to.
        markdown: The text is markdown (a table, say): TensorBoard renders it and files get ``.md``;
            otherwise TensorBoard shows it preformatted.
    """
    _write(loggers, tag, step, "markdown" if markdown else "text", text)


def _write(loggers: Iterable[Logger], tag: str, step: int, kind: str, payload: Any) -> None:
    if rank_zero_only.rank != 0:
        return
    for logger in loggers:
        writer = _WRITERS.get(type(logger)) or next(
            (w for cls, w in _WRITERS.items() if isinstance(logger, cls)), None
        )
        if writer is None:
            name = type(logger).__name__
            if name not in _warned:
                _warned.add(name)
                rank_zero_warn(
                    f"{name} gets no images, figures or text from mlplab (it writes them to TensorBoard, "
                    "CSV files, Weights & Biases and MLflow); its scalars are logged as usual"
                )
            continue
        writer(logger, tag, step, kind, payload)


def _pixels(kind: str, payload: Any) -> np.ndarray:
    """An image or a figure as ``(H, W, 3)`` (or ``(H, W)``) uint8 pixels."""
    if kind == "figure":
        payload.canvas.draw()
        return np.asarray(payload.canvas.buffer_rgba())[..., :3].copy()
    pixels = (payload * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _media_path(tag: str, step: int, suffix: str) -> str:
    """``media/<tag>/step_<step><suffix>``, the tag's characters limited to letters, digits and ``._-/``."""
    clean = "/".join(re.sub(r"[^\w.-]+", "_", part) for part in tag.split("/") if part not in ("", ".", ".."))
    return f"media/{clean}/step_{step}{suffix}"


def _tensorboard(logger: TensorBoardLogger, tag: str, step: int, kind: str, payload: Any) -> None:
    writer = logger.experiment
    if kind == "image":
        writer.add_image(tag, payload, global_step=step)
    elif kind == "figure":
        writer.add_figure(tag, payload, global_step=step, close=False)
    elif kind == "markdown":
        writer.add_text(tag, payload, global_step=step)
    else:
        writer.add_text(tag, "\n".join("    " + line for line in payload.splitlines()), global_step=step)


def _csv(logger: CSVLogger, tag: str, step: int, kind: str, payload: Any) -> None:
    path = Path(logger.log_dir) / _media_path(tag, step, _SUFFIXES[kind])
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in ("text", "markdown"):
        path.write_text(payload, encoding="utf-8")
    elif kind == "figure":
        payload.savefig(path)
    else:
        from PIL import Image

        Image.fromarray(_pixels(kind, payload)).save(path)


def _wandb(logger: WandbLogger, tag: str, step: int, kind: str, payload: Any) -> None:
    if kind in ("text", "markdown"):
        logger.log_text(key=tag, columns=["text"], data=[[payload]], step=step)
    else:
        logger.log_image(key=tag, images=[_pixels(kind, payload)], step=step)


def _mlflow(logger: MLFlowLogger, tag: str, step: int, kind: str, payload: Any) -> None:
    client, run_id, path = logger.experiment, logger.run_id, _media_path(tag, step, _SUFFIXES[kind])
    if kind in ("text", "markdown"):
        client.log_text(run_id, payload, path)
    elif kind == "figure":
        client.log_figure(run_id, payload, path)
    else:
        client.log_image(run_id, _pixels(kind, payload), path)


_SUFFIXES = {"image": ".png", "figure": ".png", "text": ".txt", "markdown": ".md"}
_WRITERS = {TensorBoardLogger: _tensorboard, CSVLogger: _csv, WandbLogger: _wandb, MLFlowLogger: _mlflow}


# ----------------------------------------------------------------------------------------- presets
def prepare_logger_config(trainer_config: Any) -> None:
    """Fill ``{default_root_dir}`` into the configured loggers' arguments; refuse missing packages.

    Args:
        trainer_config: The parsed ``trainer`` section (a jsonargparse namespace), changed in place.

    Raises:
        ConfigError: A configured logger's package is not installed.
    """
    entries = trainer_config.get("logger")
    if entries is None or isinstance(entries, bool):
        return
    root = str(trainer_config.get("default_root_dir") or ".")
    for entry in entries if isinstance(entries, list) else [entries]:
        class_path = str(entry.get("class_path", "")) if hasattr(entry, "get") else ""
        name = class_path.rsplit(".", 1)[-1]
        if name in OPTIONAL_LOGGERS:
            module, extra = OPTIONAL_LOGGERS[name]
            if importlib.util.find_spec(module) is None:
                raise ConfigError(
                    f"trainer.logger: {name} needs the {module} package, which is not installed: "
                    f"pip install 'mlplab[{extra}]' (or pip install {module})"
                )
        init_args = entry.get("init_args") if hasattr(entry, "get") else None
        for key in list(init_args.keys() if init_args is not None else ()):
            value = init_args[key]
            if isinstance(value, str) and ROOT_PLACEHOLDER in value:
                init_args[key] = value.replace(ROOT_PLACEHOLDER, root)
        if name == "MLFlowLogger" and not (init_args or {}).get("tracking_uri"):
            # a local file store, chosen explicitly: MLflow 3 refuses one unless this is set
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def share_run_directory(loggers: Iterable[Logger]) -> None:
    """Give TensorBoard and CSV loggers that share a folder the first one's run directory.

    Each of them numbers its own ``version_N`` (the next free one in ``<save_dir>/<name>``), so a
    TensorBoard and a CSV logger of one run got two directories: the second found the first's folder
    taken and wrote ``metrics.csv`` and the media into the next. A logger given its own ``version``
    keeps it.
    """
    numbered = [logger for logger in loggers if isinstance(logger, (TensorBoardLogger, CSVLogger))]
    for logger in numbered[1:]:
        first = next(other for other in numbered if other.root_dir == logger.root_dir)
        if first is not logger and logger._version is None:
            logger._version = first.version


def continue_in_run_directory(loggers: Sequence[Logger], run: Path, step: int) -> bool:
    """Point the configured loggers of a resumed fit at the checkpoint's run directory ``run``.

    When the first logger (whose directory Lightning's checkpoints and ``trainer.log_dir`` use) is a
    TensorBoard or CSV logger of ``run``'s folder without a ``version`` of its own, it and every such
    logger of that folder take ``run``'s name as their version, as the fit without a logger preset
    does: TensorBoard drops what the killed run logged from ``step`` on (``purge_step``), and the CSV
    logger, which would delete ``metrics.csv``, keeps its rows before ``step`` and appends to them.

    Args:
        loggers: The trainer's loggers, not yet written to.
        run: The checkpoint's run directory (``<save_dir>/<name>/<version>``).
        step: The checkpoint's global step.

    Returns:
        Whether the loggers continue in ``run``.
    """
    numbered = [logger for logger in loggers if isinstance(logger, (TensorBoardLogger, CSVLogger))]
    first = loggers[0] if loggers else None
    if first not in numbered or first._version is not None:
        return False
    folder = Path(first.root_dir).expanduser().resolve()
    if folder != run.resolve().parent:
        return False
    for logger in numbered:
        if logger._version is None and Path(logger.root_dir).expanduser().resolve() == folder:
            logger._version = run.name
            if isinstance(logger, TensorBoardLogger):
                logger._kwargs["purge_step"] = step
            else:
                _keep_csv_metrics(logger, step)
    return True


@rank_zero_only
def _keep_csv_metrics(logger: CSVLogger, step: int) -> None:
    """Keep the rows of the run's ``metrics.csv`` before ``step``; the logger appends after them."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = [row for row in reader if _step_of(row) < step]
    with warnings.catch_warnings():  # the writer warns of, and deletes, the metrics file it finds
        warnings.filterwarnings("ignore", message=".*exists and is not empty")
        writer = logger.experiment
    with open(path, "w", newline="") as handle:
        table = csv.DictWriter(handle, fieldnames=fields)
        table.writeheader()
        table.writerows(rows)
    writer.metrics_keys = fields


def _step_of(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.nan


def check_preset_file(path: str | Path) -> None:
    """Raise :class:`ConfigError` naming the presets when ``path``, in a ``logger`` folder, does not exist.

    ``--config configs/logger/neptune.yaml`` then ends with one line listing ``csv, mlflow, ...``
    instead of jsonargparse's bare ``File does not exist``.
    """
    file = Path(path)
    if file.exists() or file.parent.name != "logger":
        return
    presets = sorted(p.stem for p in file.parent.glob("*.yaml")) if file.parent.is_dir() else []
    listed = ", ".join(presets or ["tensorboard", "csv", "wandb", "mlflow"])
    raise ConfigError(f"no logger preset {file.stem!r}: {file} does not exist; the presets are {listed}")
