"""Trained runs outside the command line: :func:`load_run` gives the model and what its inputs need.

A run directory (``<default_root_dir>/lightning_logs/version_N``) holds ``config.yaml`` and
``checkpoints/{best,last}.ckpt``. The checkpoint alone rebuilds the model: the task's
hyper-parameters (its class, the family and every argument, the shapes the data gave) and weights are
in it, and so is the DataModule's ``preprocessing`` (image normalisation statistics, an image folder's
class names, the forecasting scaler and series names, a table's encoding), which the DataModules keep
there (their ``state_dict``); :meth:`Run.datamodule` rebuilds the run's DataModule with it (a table's
``inputs(rows)`` encodes new raw rows). The vocabulary of a character model is a task argument.

    >>> run = mlplab.load_run("lightning_logs/version_0")      # doctest: +SKIP
    >>> run.model(x)                                           # the task's forward, in eval mode
    >>> run.preprocessing["mean"], run.preprocessing["std"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from mlplab.errors import CheckpointError


@dataclass
class Run:
    """A trained run: its model in evaluation mode, and what preparing its inputs takes.

    Attributes:
        model: The task (a ``LightningModule``) with the trained weights, in eval mode; calling it is the
            task's forward (logits, restored images, forecasts on the standardised scale, ...).
        preprocessing: What the inputs need: for images ``image_shape``, ``pixel_scale`` (1/255),
            ``normalize``, ``mean`` and ``std`` per channel (and ``class_names`` for an image folder, in
            the order of the model's outputs); for forecasting ``series_names``,
            ``lookback``, ``horizon``, ``freq``, ``num_time_features``, ``mean`` and ``std`` per series
            (the model's scaler); for tables ``numeric_columns``, ``categorical_columns``,
            ``categories`` (values in code order), ``numeric_transform``, ``classes``, ``target_scale``
            (see :meth:`mlplab.data.TabularDataModule.state_dict`); for character models ``vocabulary``;
            plus ``task`` (its class name).
        config: The run's ``config.yaml`` (empty when the checkpoint lies outside a run directory).
        checkpoint: The checkpoint file the weights come from.
        hyper_parameters: The task's arguments as the checkpoint holds them (``_class_path`` names the
            task); they rebuild the model without the data.
        data_states: The checkpoint's DataModule state (its ``state_dict``) by DataModule class name, as
            Lightning keeps it; :meth:`datamodule` hands it to the DataModule it builds.
    """

    model: nn.Module
    preprocessing: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    data_states: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def backbone(self) -> nn.Module:
        """The trained family (``model.backbone``)."""
        return self.model.backbone

    def datamodule(self) -> Any:
        """The run's DataModule, built from ``config.yaml``, with the checkpoint's data state.

        As when Lightning restores the checkpoint (``mlplab test``, ``predict``), the DataModule gets the
        checkpoint's state (its ``load_state_dict``): the image normalisation statistics and the
        forecasting scaler are those the model was trained with, even when the data has changed since
        (a folder with more images, a longer file), and a folder with other classes or a file with other
        series is refused in one line. A table is encoded with the checkpoint's category codes and numeric
        transform (``datamodule().inputs(rows)`` gives the model's inputs for new raw rows). It reads its
        data when set up.

        Raises:
            CheckpointError: No ``config.yaml`` beside the checkpoint, or data the checkpoint's model was
                not trained on (the DataModule's ``load_state_dict``), or a table that has changed since a
                checkpoint that keeps no encoding of it (an earlier mlplab's) was written.
        """
        if not self.config.get("data"):
            raise CheckpointError(f"{self.checkpoint}: no config.yaml beside it names the run's data")
        from jsonargparse import ArgumentParser
        from lightning.pytorch import LightningDataModule

        import mlplab.data  # noqa: F401  (short class names)

        parser = ArgumentParser(exit_on_error=False)
        parser.add_subclass_arguments(LightningDataModule, "data", fail_untyped=False)
        data = parser.instantiate_classes(parser.parse_object({"data": self.config["data"]})).data
        state = self.data_states.get(type(data).__qualname__)  # the key Lightning saves it under
        if state is not None:
            data.load_state_dict(state)
        else:
            self._check_table(data)
        return data

    def _check_table(self, data: Any) -> None:
        """A checkpoint that keeps no encoding of its table (an earlier mlplab's): the table's must match."""
        now, then = getattr(data, "table_digest", None), self.hyper_parameters.get("table_digest")
        if now is None or then is None:
            return
        if now != then:
            raise CheckpointError(
                f"{self.checkpoint} keeps no encoding of its table (an earlier mlplab wrote it) and the "
                f"table is encoded otherwise now (digest {then} then, {now} now): the codes and numeric "
                "transform the model was trained with are lost; use the table and data settings it was "
                "trained with"
            )
        from mlplab.data.common import say_once

        say_once(
            f"{self.checkpoint} keeps no encoding of its table (an earlier mlplab wrote it): the DataModule "
            "encodes with the codes and numeric transform it fits to the table's training split, which is "
            "the one the model was trained on (same digest)"
        )


def find_checkpoint(run: str | Path, checkpoint: str = "best") -> Path:
    """The checkpoint of a run directory (``best``, ``last`` or a file name), or ``run`` itself if a file.

    Raises:
        CheckpointError: There is no such checkpoint.
    """
    path = Path(run).expanduser()
    if path.is_file():
        return path
    if Path(checkpoint).expanduser().is_file():
        return Path(checkpoint).expanduser()
    name = checkpoint if checkpoint.endswith(".ckpt") else f"{checkpoint}.ckpt"
    found = path / "checkpoints" / name
    if found.is_file():
        return found
    if not path.is_dir():
        raise CheckpointError(f"no run at {path}: give a run directory such as lightning_logs/version_0")
    others = sorted(other.stem for other in (path / "checkpoints").glob("*.ckpt"))
    if others:  # a fit that ended before its first validation has last.ckpt and no best.ckpt
        raise CheckpointError(
            f"no {name} in {path / 'checkpoints'}, which holds {', '.join(f'{o}.ckpt' for o in others)}: "
            f"choose one (mlplab export --checkpoint {others[0]}, mlplab.load_run(run, {others[0]!r}))"
        )
    raise CheckpointError(
        f"no {name} in {path / 'checkpoints'}: give a run directory (lightning_logs/version_N) that holds "
        "checkpoints/best.ckpt, or a checkpoint file"
    )


def load_run(run: str | Path, checkpoint: str = "best", map_location: str | torch.device = "cpu") -> Run:
    """Load a trained run for use in a notebook or a script.

    Args:
        run: A run directory (``lightning_logs/version_0``, holding ``checkpoints/``) or a checkpoint file.
        checkpoint: Which checkpoint of the directory: ``best``, ``last`` or a file name or path.
        map_location: Where the weights go.

    Returns:
        The :class:`Run`: ``run.model`` (eval mode), ``run.preprocessing``, ``run.config``.

    Raises:
        CheckpointError: No checkpoint there, or one that mlplab's command line did not write.
    """
    from lightning.pytorch import LightningModule
    from lightning.pytorch.cli import instantiate_module

    import mlplab.models  # noqa: F401  (the registry's families)
    import mlplab.tasks  # noqa: F401
    from mlplab.models import registry

    path = find_checkpoint(run, checkpoint)
    state = torch.load(path, map_location=map_location, weights_only=True)
    hparams = dict(state.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    if "_class_path" not in hparams:
        raise CheckpointError(
            f"{path} was not written by mlplab's command line (its hyper-parameters name no task class); "
            "load it with the task class: Task.load_from_checkpoint(path, backbone=...)"
        )
    hparams = registry.expand_config(hparams)
    model = instantiate_module(LightningModule, hparams)
    model.on_load_checkpoint(state)
    model.load_state_dict(state["state_dict"])
    model.to(map_location).eval()

    config_file = path.parent.parent / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    preprocessing: dict[str, Any] = {"task": type(model).__name__}
    data_states = {  # the DataModule's state, under its class name
        key: value
        for key, value in state.items()
        if isinstance(value, dict) and isinstance(value.get("preprocessing"), dict)
    }
    for value in data_states.values():
        preprocessing.update(value["preprocessing"])
    if getattr(model, "hparams", {}).get("vocabulary"):
        preprocessing["vocabulary"] = model.hparams["vocabulary"]
    if hasattr(model, "series_mean"):  # the forecasting scaler the model was trained with
        preprocessing["mean"] = model.series_mean.tolist()
        preprocessing["std"] = model.series_std.tolist()
    return Run(model, preprocessing, config or {}, path, hparams, data_states)
