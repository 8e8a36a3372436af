"""What a run was and how it did: ``summary.json`` in the run directory and TensorBoard's HParams tab.

``mlplab compare`` (:mod:`mlplab.tools.compare`) tables and plots any set of runs from their
``summary.json``; TensorBoard's HParams tab shows the same columns for every run of a log folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from mlplab.callbacks.throughput import leading_batch_size

SUMMARY_FILE = "summary.json"

#: Config keys that are not part of a run's settings: its seed, the config files named (``--config``),
#: where it writes (root folder, loggers, checkpoint folder), the checkpoint it resumes, and what it
#: prints (and a ``settings_key`` given to the summary). Runs whose ``settings_key``
#: (:func:`settings_digest`) is equal differ by these alone.
NOT_SETTINGS = (
    "seed_everything", "config", "ckpt_path", "trainer.default_root_dir", "trainer.logger",
    "checkpoint.dirpath", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "summary.settings_key",
)  # fmt: skip

#: Trainer options that decide how much of the test split a test evaluates, with their defaults.
TEST_COVERAGE = {"limit_test_batches": 1.0, "fast_dev_run": False}

#: The metrics of the HParams tab (scalars under these tags; ``hp_metric`` is not used).
HPARAMS_METRICS = ("hp/best_val", "hp/test", "hp/time_s")
#: The key of ``summary.json`` that lists the tests of the run's checkpoints under other evaluation options.
OTHER_TESTS = "other_tests"


def family_and_arguments(pl_module: L.LightningModule) -> tuple[str, dict[str, Any]]:
    """The backbone's family (its registered short name, else its class name) and its arguments.

    The arguments are those the run's config gave the family (``model.backbone.init_args``; nested
    sections such as ``channel_mlp`` flattened to ``channel_mlp.kind``), so they read as in the config,
    with the values the task filled in from the data on top (its ``data_given_backbone_arguments``: a
    forecasting family's ``num_time_features``).
    """
    from mlplab.models import registry

    backbone = getattr(pl_module, "backbone", None)
    if backbone is None:
        return type(pl_module).__name__, {}
    spec = registry.find(type(backbone))
    family = spec.name if spec is not None else type(backbone).__name__
    given = getattr(pl_module, "hparams", {}).get("backbone")
    if isinstance(given, dict) or hasattr(given, "as_dict"):
        given = given.as_dict() if hasattr(given, "as_dict") else given
        arguments = given.get("init_args") or {}
    else:
        arguments = dict(getattr(registry.expand_variant(given), "keywords", {}) or {})  # a variant's, too
    arguments = {**arguments, **getattr(pl_module, "data_given_backbone_arguments", {})}
    return family, flatten(arguments)


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"a.b": value}`` with plain values (lists and others as text)."""
    if hasattr(values, "as_dict"):
        values = values.as_dict()
    if not isinstance(values, dict):
        return {prefix: plain_value(values)} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def plain_value(value: Any) -> Any:
    """``value`` as a JSON and HParams-friendly scalar: numbers, text, booleans; anything else as text."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def settings_digest(config: Any) -> str:
    """A short hash of a run's config without the keys of :data:`NOT_SETTINGS`: its settings but the seed.

    Args:
        config: The run's parsed config (a jsonargparse namespace or a mapping: ``model``, ``data``,
            ``trainer``, ...), as ``config.yaml`` holds it.

    Returns:
        12 hexadecimal digits; equal for runs that differ only by their seed (and where they write).
    """
    leaves = {
        key: value
        for key, value in flatten(config).items()
        if not any(key == skip or key.startswith(skip + ".") for skip in NOT_SETTINGS)
    }
    text = json.dumps(leaves, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``summary.json`` of a run directory, or None when it has none (or an unreadable one)."""
    try:
        loaded = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def write_summary(run_dir: str | os.PathLike, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` through a temporary file and a rename (a reader never sees half of it)."""
    path = Path(run_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{SUMMARY_FILE}.tmp")
    temporary.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    os.replace(temporary, path)


def selection_metric(trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[str, str]:
    """The metric that chooses the run's best checkpoint and its mode (``min`` / ``max``).

    The checkpoint callback's ``monitor`` (``--checkpoint.monitor``), which is the task's main metric
    unless another is given; the task's when no checkpoint callback monitors one.
    """
    checkpoint = trainer.checkpoint_callback
    monitor = getattr(checkpoint, "monitor", None)
    if monitor:
        return monitor, checkpoint.mode
    return getattr(pl_module, "monitor", "val/loss"), getattr(pl_module, "monitor_mode", "min")


def changed_options(
    trained: dict[str, Any],
    tested: dict[str, Any],
    model_neutral: tuple[str, ...] = (),
    data_neutral: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The evaluation options a test gives other values than the run's config: ``{"model.noise_std": 0.5}``.

    ``trained`` is the run's ``config.yaml``, ``tested`` the test's ``{"model": ..., "data": ...}``
    (each ``{"class_path": ..., "init_args": {...}}``) and, when it has one, its ``"trainer"`` section.
    Arguments in ``model_neutral`` and ``data_neutral`` (those that do not change the test metric, and
    the architecture, which a checkpoint fixes) and arguments only one of the two configs has (another
    version's) are left out; another data class is ``{"data": its class path}``. Of the trainer, the
    options that decide how much of the test split is evaluated (:data:`TEST_COVERAGE`) are compared:
    ``--trainer.limit_test_batches 2`` against a run's config without it is
    ``{"trainer.limit_test_batches": 2}``.
    """
    changed: dict[str, Any] = {}
    for section, neutral in (("model", model_neutral), ("data", data_neutral)):
        before, after = _json_like(trained.get(section)), _json_like(tested.get(section))
        if not isinstance(before, dict) or not isinstance(after, dict):
            continue
        short = [str(config.get("class_path", "")).rsplit(".", 1)[-1] for config in (before, after)]
        if short[0] != short[1]:
            changed[section] = after.get("class_path")
            continue
        before, after = before.get("init_args") or {}, after.get("init_args") or {}
        for key in sorted(before.keys() & after.keys()):
            if key not in neutral:
                changed.update(_differences(before[key], after[key], f"{section}.{key}"))
    if isinstance(tested.get("trainer"), dict):
        before, after = trained.get("trainer") or {}, tested["trainer"]
        for key, default in TEST_COVERAGE.items():
            if _coverage(before.get(key), default) != _coverage(after.get(key), default):
                changed[f"trainer.{key}"] = after.get(key)
    return changed


def _coverage(value: Any, default: Any) -> tuple[str, Any]:
    """A trainer option's value in one form: ``None`` is the default; ``1`` (batches) is not ``1.0`` (all)."""
    value = default if value is None else value
    if isinstance(value, bool):
        value = int(value)
    return type(value).__name__, value


def _json_like(value: Any) -> Any:
    """``value`` with tuples as lists and other objects as text, as ``config.yaml`` reads back."""
    return json.loads(json.dumps(value, default=str))


def _differences(before: Any, after: Any, name: str) -> dict[str, Any]:
    """``{dotted name: value after}`` of each leaf where ``after`` differs from ``before``."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: dict[str, Any] = {}
        for key in sorted(before.keys() | after.keys()):
            found.update(_differences(before.get(key), after.get(key), f"{name}.{key}"))
        return found
    return {} if before == after else {name: after}


def same_best_checkpoint(earlier: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether two summaries of a run name the same best checkpoint: same file and same best value.

    The file is always ``best.ckpt``; a resumed fit that found a better epoch rewrote it, and the test
    values of the earlier one no longer belong to it.
    """
    if earlier.get("best_checkpoint") != current.get("best_checkpoint"):
        return False
    before, now = earlier.get("best_val"), current.get("best_val")
    if before is None or now is None:
        return before == now
    return math.isclose(before, now, rel_tol=1e-9)


def completed_epochs(trainer: L.Trainer) -> int:
    """The epochs a fit finished: an epoch cut short (by ``max_time``, ``max_steps``, a stop) not counted.

    Lightning's ``current_epoch`` after a fit counts the epoch it was in when it stopped, finished or not:
    a stop in the middle of the second epoch leaves it at 2 (and an error there, at 1). This counts the
    epochs begun, less the last one unless it ran to its last training batch: 1 in both cases.
    """
    begun = trainer.fit_loop.epoch_progress.current.started
    if begun and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
        begun -= 1
    return begun


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    value = plain_value(value)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class RunSummary(Callback):
    """Record what a run trains and how it did, for ``mlplab compare`` and TensorBoard's HParams tab.

    At the end of ``fit`` the run directory gets ``summary.json``: the task, the family and the arguments
    the config gave it, parameters (total and trainable), FLOPs per sample (forward and backward of one
    training sample, as the throughput callback counts them), the metric that chooses the best checkpoint
    (the task's main metric, ``val/psnr``, ..., or the one ``--checkpoint.monitor`` names, so that its best
    value and the test value are the same checkpoint's), its best value (the best checkpoint's), the wall
    time of the fit (summed over the parts of a resumed run: every checkpoint holds the time up to it, so a
    fit resumed after a kill, or in a new run directory, counts the time before its checkpoint), the epochs
    completed (an epoch cut short by ``max_time`` or ``max_steps`` not counted: :func:`completed_epochs`),
    steps, seed and learning rate, and ``settings_key``: a digest of the run's config without its seed
    (:func:`settings_digest`, set by the CLI), equal for the seeds of one configuration, which ``mlplab
    compare`` averages into one point. A Trainer built in Python has no config: its summary's
    ``settings_key`` is the one given (``RunSummary(settings_key=...)``, the same for the seeds of one
    setting, e.g. ``settings_digest`` of the script's settings), else ``null``, and ``mlplab compare`` keeps
    such a run a point of its own (and says so). ``test`` with a checkpoint of a run directory (``mlplab
    test --ckpt_path <run>/checkpoints/best.ckpt``, or ``best``) adds the test value of the same metric
    (``test/psnr``) to that run's summary, whatever folder the test itself logs to. That is the run's
    ``test`` (and ``hp/test``) only when the test evaluates as the run's ``config.yaml`` does: a test with
    other evaluation options (``--model.noise_std 0.5``, another ``--data.*`` setting, another
    ``--trainer.limit_test_batches`` or ``fast_dev_run``; not those that cannot change the figure, the
    tasks' and DataModules' ``evaluation_neutral_arguments``) is kept apart, in the list ``other_tests`` of
    ``{"options": {"model.noise_std": 0.5}, "test": ..., "tested_checkpoint": ...}`` (one entry per
    checkpoint and options, the newest kept), so ``mlplab compare`` and TensorBoard show only figures of the
    run's own recipe. The command line hands its test config over as :attr:`evaluation_config`; without it
    (a ``trainer.test`` in Python) every test counts as the run's own.

    ``status`` is ``ok`` for a fit that ended, and ``diverged`` for one that
    :class:`~mlplab.callbacks.DivergenceGuard` stopped: its summary is written then too (the best value
    is that of the checkpoints before, if any), with ``diverged``: ``{"step", "epoch", "value"}`` (the
    non-finite loss or metric as text, ``"nan"``; ``null`` when the weights went first) and ``"error"``,
    the line the command printed. ``mlplab compare`` lists such a run as diverged and leaves it out of
    its figures.

    In TensorBoard every run gets one HParams entry with the same columns: the hyper-parameters above
    and the metrics ``hp/best_val``, ``hp/test`` and ``hp/time_s`` (Lightning's ``hp_metric = -1``
    placeholder is switched off). Without a logger a run has no directory and nothing is written.

    Args:
        enabled: Whether to write the summary at all.
        settings_key: What the runs that differ only by their seed share, for ``mlplab compare`` to
            average them (``None``: the command line's digest of its config; none in Python).
    """

    def __init__(self, enabled: bool = True, settings_key: str | None = None):
        self.enabled = enabled
        #: The test's ``{"model": ..., "data": ...}`` config, compared with the tested run's config.yaml.
        self.evaluation_config: dict[str, Any] | None = None
        self._started: float | None = None
        #: Seconds of fitting before this session: the resumed checkpoint's (None: not resumed from one).
        self._before: float | None = None
        self._flops_per_sample: float | None = None
        self._best: float | None = None
        self._session_written = False
        self._log_dir: str | None = None
        #: The run's :func:`settings_digest`, set by the CLI unless given (None: not known, as in a script's
        #: Trainer without one).
        self.settings_key: str | None = settings_key

    # ------------------------------------------------------------------------------------- fit
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._before = self._started = None  # a checkpoint's time, if any, is loaded after this
        if not self.enabled:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and hasattr(logger, "_default_hp_metric"):
                logger._default_hp_metric = False  # the HParams entry is written here, with real metrics

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()
        self._best = None
        self._session_written = False
        # read here by every process: ``trainer.log_dir`` is a collective (a broadcast) under DDP
        self._log_dir = trainer.log_dir

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._session_written or not self.enabled or self._log_dir is None:
            return
        self._session_written = True  # on every process, so that all of them stop here alike
        flops = getattr(pl_module, "flops_per_batch", None)
        if flops:
            self._flops_per_sample = flops / max(1, leading_batch_size(batch))
        self._write_hparams_session(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the seconds of fitting up to it."""
        return {"time_s": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._before = float(state_dict.get("time_s") or 0.0)

    def elapsed(self) -> float:
        """Seconds of fitting so far, the parts before the resumed checkpoint included."""
        now = time.monotonic() - self._started if self._started is not None else 0.0
        return (self._before or 0.0) + now

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        monitor, mode = selection_metric(trainer, pl_module)
        value = finite_or_none(trainer.callback_metrics.get(monitor))
        larger = mode == "max"
        if value is not None and (self._best is None or (value > self._best) == larger):
            self._best = value

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_fit_summary(trainer, pl_module, {"status": "ok"})

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """A fit stopped by :class:`~mlplab.errors.TrainingDivergedError` gets its summary too, so marked."""
        from mlplab.errors import TrainingDivergedError

        if not isinstance(exception, TrainingDivergedError) or trainer.state.fn != "fit":
            return
        where = {"step": exception.step, "epoch": exception.epoch, "value": exception.value}
        try:
            self._write_fit_summary(
                trainer, pl_module, {"status": "diverged", "diverged": {**where, "error": str(exception)}}
            )
        except Exception as error:  # the divergence's own line must reach the user, not this one
            rank_zero_warn(f"could not write {SUMMARY_FILE} of the diverged run: {error}")

    def _write_fit_summary(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outcome: dict[str, Any]
    ) -> None:
        """Write ``summary.json`` at the end of a fit, with ``outcome`` (its ``status``) on top."""
        if not self.enabled or not trainer.loggers or self._log_dir is None:
            return
        run_dir = Path(self._log_dir)
        earlier = read_summary(run_dir) or {}
        resumed = trainer.ckpt_path is not None and earlier.get("steps", 0) < trainer.global_step
        summary = {**self.describe(trainer, pl_module), **outcome}
        if self._before is None:  # a checkpoint without the time (older versions): the summary's
            self._before = (earlier.get("time_s") or 0) if resumed else 0
        summary["time_s"] = round(self.elapsed(), 1)
        if same_best_checkpoint(earlier, summary):  # tested before: its tests still hold
            if earlier.get("test") is not None:
                summary["test"] = earlier["test"]
            if earlier.get(OTHER_TESTS):
                summary[OTHER_TESTS] = earlier[OTHER_TESTS]
        metrics = {"hp/best_val": summary["best_val"], "hp/time_s": summary["time_s"]}
        self._publish(trainer, run_dir, summary, metrics)

    # ------------------------------------------------------------------------------------ test
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Add the test value of the task's metric to the summary of the tested checkpoint's run."""
        if not self.enabled or trainer.ckpt_path is None:
            return
        checkpoint = Path(trainer.ckpt_path)
        run_dir = checkpoint.parent.parent
        summary = read_summary(run_dir) if checkpoint.parent.name == "checkpoints" else None
        if summary is None:
            return
        name = summary.get("test_metric") or ""
        value = finite_or_none(trainer.callback_metrics.get(name))
        if value is None:
            return
        changed = self._changed_options(trainer, pl_module, run_dir)
        self._log_dir = trainer.log_dir  # every process (a collective under DDP)
        if changed:
            tested = str(checkpoint.resolve())
            record = {"options": changed, "test": value, "tested_checkpoint": tested}
            kept = [
                other
                for other in summary.get(OTHER_TESTS) or []
                if (other.get("options"), other.get("tested_checkpoint")) != (changed, tested)
            ]
            summary[OTHER_TESTS] = [*kept, record]
            if trainer.is_global_zero:
                write_summary(run_dir, summary)
            shown = ", ".join(f"{key} {value!r}" for key, value in changed.items())
            rank_zero_info(
                f"this test evaluates with other options than the run's config ({shown}): its {name} is "
                f"kept under {OTHER_TESTS} in {run_dir / SUMMARY_FILE}, not as the run's test"
            )
            return
        summary["test"] = value
        summary["tested_checkpoint"] = str(checkpoint.resolve())
        self._publish(trainer, run_dir, summary, {"hp/test": value})

    def _changed_options(
        self, trainer: L.Trainer, pl_module: L.LightningModule, run_dir: Path
    ) -> dict[str, Any]:
        """The evaluation options this test gives other values than the run's ``config.yaml``."""
        if self.evaluation_config is None:
            return {}
        try:
            trained = yaml.safe_load((run_dir / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return {}
        if not isinstance(trained, dict):
            return {}
        model_neutral = (
            *getattr(pl_module, "architecture_arguments", ("backbone",)),
            *getattr(pl_module, "evaluation_neutral_arguments", ()),
        )
        data_neutral = getattr(trainer.datamodule, "evaluation_neutral_arguments", ())
        return changed_options(trained, self.evaluation_config, model_neutral, data_neutral)

    # ---------------------------------------------------------------------------------- helpers
    def describe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The summary of the run as it stands (``test`` left empty)."""
        from mlplab.models.counting import count_parameters

        family, arguments = family_and_arguments(pl_module)
        module = getattr(pl_module, "backbone", pl_module)
        total, trainable = count_parameters(module)
        monitor, mode = selection_metric(trainer, pl_module)
        best, best_path = self._best, ""
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and getattr(checkpoint, "monitor", None) == monitor:
            if checkpoint.best_model_score is not None:
                best = finite_or_none(checkpoint.best_model_score)
            best_path = str(Path(checkpoint.best_model_path).resolve()) if checkpoint.best_model_path else ""
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        group = optimizer.param_groups[0] if optimizer is not None else {}
        seed = os.environ.get("PL_GLOBAL_SEED", "")  # what seed_everything set
        return {
            "run_dir": str(Path(self._log_dir).resolve()) if self._log_dir else None,
            "task": type(pl_module).__name__,
            "family": family,
            "arguments": arguments,
            "params_total": total,
            "params_trainable": trainable,
            "flops_per_sample": round(self._flops_per_sample) if self._flops_per_sample else None,
            "metric": monitor,
            "mode": mode,
            "best_val": best,
            "best_checkpoint": best_path,
            "test_metric": "test/" + monitor.split("/", 1)[-1],
            "test": None,
            "time_s": None,
            "epochs": completed_epochs(trainer),
            "steps": trainer.global_step,
            "seed": int(seed) if seed.lstrip("-").isdigit() else None,
            "lr": finite_or_none(group.get("initial_lr", group.get("lr"))),
            "settings_key": self.settings_key,
        }

    @rank_zero_only
    def _write_hparams_session(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """One HParams entry per run: its hyper-parameters and the metric tags it will log."""
        from torch.utils.tensorboard.summary import hparams

        summary = self.describe(trainer, pl_module)
        shown = {
            "task": summary["task"],
            "family": summary["family"],
            **{f"family.{key}": value for key, value in summary["arguments"].items() if value is not None},
            "params_total": summary["params_total"],
            "params_trainable": summary["params_trainable"],
            "flops_per_sample": summary["flops_per_sample"] or 0,
            "metric": summary["metric"],
            "lr": summary["lr"] if summary["lr"] is not None else 0.0,
            "seed": summary["seed"] if summary["seed"] is not None else "",
        }
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                writer = logger.experiment._get_file_writer()
                for part in hparams(shown, dict.fromkeys(HPARAMS_METRICS, math.nan)):
                    writer.add_summary(part)

    @rank_zero_only
    def _publish(
        self, trainer: L.Trainer, run_dir: Path, summary: dict[str, Any], metrics: dict[str, Any]
    ) -> None:
        write_summary(run_dir, summary)
        values = {key: value for key, value in metrics.items() if value is not None}
        same_run = self._log_dir is not None and Path(self._log_dir).resolve() == run_dir.resolve()
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if same_run and loggers:
            for logger in loggers:
                logger.log_metrics(values, step=trainer.global_step)
                logger.experiment.flush()
        elif values and not same_run and any(run_dir.glob("events.out.tfevents.*")):
            # a test of another run's checkpoint: its metric joins that run's TensorBoard events (a run
            # logged without TensorBoard, as with the CSV preset, gets no events file)
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(run_dir)) as writer:
                for key, value in values.items():
                    writer.add_scalar(key, value, global_step=summary.get("steps", 0))
