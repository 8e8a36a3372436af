"""What every mlplab task shares: the injected backbone, optimiser wiring, counts and FLOPs."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import random
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from mlplab.analysis.density import ActivationDensity, DensityProbe
from mlplab.analysis.layers import drop_layers
from mlplab.data.common import BatchSamples
from mlplab.errors import CheckpointError, ConfigError
from mlplab.models import registry
from mlplab.models.counting import count_forward_flops, count_parameters, count_training_flops
from mlplab.models.registry import check_channel_mlps, expand_variant, upgrade_state_dict
from mlplab.nn.moe import MixtureOfExperts, auxiliary_loss
from mlplab.optim import LinearWarmupDecay, WeightDecayExclusion, build_optimizer, weight_decay_groups
from mlplab.runtime import skip_unusable_nvml_check

#: A family class (or ``functools.partial`` of one) whose first two arguments are the shape of one input
#: sample and the shape of one output sample; the task calls it with the shapes it gets from the data.
ImageBackbone = Callable[[tuple[int, ...], tuple[int, ...]], nn.Module]

#: Checkpoint key of the random generators' states, one entry per process (rank).
RNG_STATES_KEY = "rng_states"
#: The checkpoint's entry holding the run's ``seed_everything``.
RUN_SEED_KEY = "run_seed"

#: A task's arguments that the DataModule's attributes of the same name give: the command line links
#: them (``data.<name>`` to ``model.init_args.<name>``); a task built in Python is handed them
#: (``num_classes=data.num_classes``), and :meth:`Task.setup` refuses one left at its default where the
#: data gives another value.
DATA_GIVEN_ARGUMENTS = (
    "image_shape",
    "num_classes",
    "lookback",
    "horizon",
    "num_series",
    "num_time_features",
    "vocab_size",
    "context_length",
    "vocabulary",
    "num_numeric",
    "cardinalities",
    "target_scale",
    "table_digest",
    "num_inputs",
    "num_outputs",
)
#: Data-given arguments a task built in Python may leave at their defaults: a table's fingerprint (the
#: checkpoint checks that need it are then skipped) and a character model's vocabulary (the language
#: modelling task takes the DataModule's at setup).
OPTIONAL_DATA_ARGUMENTS = ("table_digest", "vocabulary")


def collect_rng_states() -> dict[str, Any]:
    """The states of every global random generator this process draws from, as plain tensors and numbers.

    Python's ``random``, NumPy's global generator (timm's mixup draws from it), torch's CPU generator
    (dropout, noise and augmentation on the CPU) and the current CUDA device's generator. Plain types
    keep checkpoints loadable with ``torch.load(weights_only=True)``.
    """
    version, python_state, gauss = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global random generators to states returned by :func:`collect_rng_states`."""
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def seed_process(rank: int) -> None:
    """Give process ``rank`` random streams of its own, derived from the run's seed and the rank.

    Lightning seeds every process of a multi-process run alike (``seed_everything``), so noise, crops,
    flips, mixup and dropout would repeat on every process. Processes other than rank 0 reseed Python's,
    NumPy's and torch's generators (CPU and CUDA) from ``(seed, rank)``; rank 0 keeps its streams, so a
    single-process run draws what it always drew.
    """
    if rank == 0:
        return
    base = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))
    seed = int(np.random.SeedSequence([base % 2**64, rank]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def current_loader(trainer: L.Trainer | None) -> Any:
    """The loader of the evaluation or prediction loop running now (``None`` outside one, or with several)."""
    if trainer is None:
        return None
    stage = trainer.state.stage
    if stage in (RunningStage.VALIDATING, RunningStage.SANITY_CHECKING):
        loaders = trainer.val_dataloaders
    elif stage == RunningStage.TESTING:
        loaders = trainer.test_dataloaders
    elif stage == RunningStage.PREDICTING:
        loaders = trainer.predict_dataloaders
    else:
        return None
    return None if isinstance(loaders, (list, tuple, dict)) else loaders


class Task(L.LightningModule):
    """Base class of the tasks: builds the backbone, wires the optimiser, counts parameters and FLOPs.

    Subclasses build ``self.backbone`` by calling :meth:`build_backbone` with the shapes they derive
    from the DataModule, implement :meth:`training_loss` and :meth:`evaluation_step` (one evaluation batch
    into the stage's metrics; ``validation_step`` and ``test_step`` call it), and set ``monitor`` /
    ``monitor_mode`` to their main validation metric (the checkpoint callback keeps the best epoch by
    it). The training step adds the auxiliary losses the backbone's layers leave (the mixture-of-experts
    channel MLPs' load balancing, whatever the family and the task). Only parameters that require
    gradients reach the optimiser, so frozen weights keep no optimiser state and never change.

    A subclass declares its own arguments and passes the optimiser arguments below on with ``**kwargs``
    (``super().__init__(**kwargs)``): the CLI shows them for every task from this docstring.

    Args:
        optimizer: Optimiser class with its arguments (``class_path`` / ``init_args``); AdamW with
            PyTorch's defaults when not given. Adam and AdamW run torch's fused implementation unless
            ``fused`` or ``foreach`` is set (:func:`mlplab.optim.build_optimizer`).
        lr_scheduler: LR scheduler with its arguments; ``None`` keeps the LR constant. The default,
            :class:`~mlplab.optim.LinearWarmupDecay`, decays linearly to zero over the whole run. A
            scheduler whose ``total_steps`` is left at ``None`` (mlplab's, torch's ``OneCycleLR``) gets
            the run's length in optimiser steps.
        lr_scheduler_interval: Step the scheduler every optimiser ``step`` or every ``epoch``.
        exclude_from_weight_decay: Parameters the optimiser's weight decay leaves out:
            ``norms_biases_embeddings`` (norm scales and shifts, biases and other one-dimensional
            parameters, embedding tables, and what a module lists in ``no_weight_decay()``, as timm does),
            ``norms_biases`` (nanoGPT's choice: embedding tables decay) or ``nothing`` (every parameter
            decays, as ``torch.optim`` does with ``model.parameters()``). See
            :func:`mlplab.optim.weight_decay_groups`.
        density: Log the activation density of the channel MLPs per block (``val/density/block{i}``) and,
            with a ``weight``, add DEFT's density loss to the training loss
            (:class:`~mlplab.analysis.density.ActivationDensity`); ``null``: neither.
        dropped_layers: Residual blocks and branches removed from the backbone (module paths such as
            ``blocks.3.mixer``), as ``mlplab drop-layers`` writes them into a dropped model's config;
            an architecture argument.
    """

    #: Name of the validation metric the best checkpoint is chosen by.
    monitor: str = "val/loss"
    #: Whether larger (``max``) or smaller (``min``) values of ``monitor`` are better.
    monitor_mode: Literal["min", "max"] = "min"
    #: Arguments that define the trained model rather than how it is trained or evaluated. Given on the
    #: command line with a checkpoint (``--ckpt_path``) they must equal the checkpoint's; every other
    #: argument given there is honoured (see ``docs/reliability.md``). The backbone always counts,
    #: with its class and every one of its arguments.
    architecture_arguments: ClassVar[tuple[str, ...]] = ("backbone", "dropped_layers")
    #: Arguments whose value does not change the task's test metric: the optimiser, what only training
    #: uses, how much is logged. A ``test`` of a run's checkpoint that gives other values for them (or for
    #: ``architecture_arguments``' computation-only parts) still records the run's own test value in its
    #: ``summary.json``; other values of any other argument make it a test under other evaluation options
    #: (:class:`mlplab.callbacks.RunSummary`).
    evaluation_neutral_arguments: ClassVar[tuple[str, ...]] = (
        "optimizer", "lr_scheduler", "lr_scheduler_interval", "exclude_from_weight_decay", "density"
    )  # fmt: skip

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = LinearWarmupDecay,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        exclude_from_weight_decay: WeightDecayExclusion = "norms_biases_embeddings",
        density: ActivationDensity | None = None,
        dropped_layers: list[str] | None = None,
    ):
        super().__init__()
        if exclude_from_weight_decay not in ("norms_biases_embeddings", "norms_biases", "nothing"):
            raise ConfigError(
                "model.exclude_from_weight_decay must be norms_biases_embeddings, norms_biases or nothing, "
                f"got {exclude_from_weight_decay!r}"
            )
        self.density = density
        self.density_probe: DensityProbe | None = None
        self.dropped_layers = list(dropped_layers or [])
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.exclude_from_weight_decay = exclude_from_weight_decay
        self._saved_param_groups: int | None = None
        self.flops_per_batch: int | None = None
        self._backbone_factory: Callable[..., nn.Module] | None = None
        self._backbone_args: tuple = ()
        self._rng_states_to_restore: dict[str, Any] | None = None
        self._run_length: int | None = None
        self._adds_auxiliary_loss = False
        #: The training epoch's weighted sums and weights fed by :meth:`log_epoch_mean`, by logged name.
        self._epoch_means: dict[str, tuple[torch.Tensor | float, int | torch.Tensor]] = {}

    # ------------------------------------------------------------------------------- backbone
    def build_backbone(self, factory: Callable[..., nn.Module], *shapes: Any) -> nn.Module:
        """Call the injected family ``factory`` with the task's shapes and keep both for re-building.

        A ``functools.partial(Family, variant=NAME, ...)`` of a registered family builds that named
        variant with the other arguments on top, as a config's ``init_args: {variant: NAME}`` does
        (:func:`mlplab.models.registry.expand_variant`).

        Raises:
            ConfigError: When ``factory`` is an already-built module or a name rather than a class or
                partial, or when a registered family holds a channel-MLP kind it does not support.
        """
        if isinstance(factory, nn.Module):
            raise ConfigError(
                f"{type(self).__name__}: backbone must be a family class or functools.partial of one "
                f"(the task passes it the data's shapes), got an instance of {type(factory).__name__}"
            )
        if isinstance(factory, str):
            raise ConfigError(
                f"{type(self).__name__}: backbone must be a family class or functools.partial of one, got "
                f"the name {factory!r}: import the class (from mlplab.models import ...) and pass it, with a "
                "named variant as functools.partial(Family, variant=NAME) (mlplab models lists them)"
            )
        factory = expand_variant(factory)
        self._backbone_factory, self._backbone_args = factory, shapes
        backbone = drop_layers(factory(*shapes), self.dropped_layers)
        check_channel_mlps(backbone)
        if self.density is not None:
            self.density_probe = DensityProbe(backbone, self.density)
        self._adds_auxiliary_loss = any(isinstance(m, MixtureOfExperts) for m in backbone.modules())
        return backbone

    def example_backbone_input(self, batch_size: int) -> Any:
        """Inputs of ``batch_size`` samples for the backbone, shaped as the training batches give them.

        A tensor, or a tuple of tensors (``None`` for an optional input left out), as :meth:`run_backbone`
        takes them; made on the current default device, so under ``torch.device("meta")`` they hold no
        memory. The model summary counts its FLOPs with them (:meth:`forward_flops`). None here: a task
        that knows the shape of its data overrides this.
        """
        return None

    def run_backbone(self, backbone: nn.Module, inputs: Any) -> torch.Tensor:
        """Call ``backbone`` on ``inputs`` held as :meth:`example_backbone_input` holds them."""
        return backbone(*inputs) if isinstance(inputs, tuple) else backbone(inputs)

    def _meta_backbone(self) -> nn.Module:
        """A copy of the backbone, built on the current default device (the meta device, for counting)."""
        return drop_layers(self._backbone_factory(*self._backbone_args), self.dropped_layers)

    def measure_flops(self, example_input: Any) -> int:
        """FLOPs of a training step (forward and backward) of the backbone on a batch like ``example_input``.

        The backbone is re-built on the meta device, so this costs no memory and no real compute.
        """
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            meta_backbone = self._meta_backbone()
            meta_input = _on_meta(example_input)
            return count_training_flops(lambda: self.run_backbone(meta_backbone, meta_input))

    def forward_flops(self) -> dict[str, int] | None:
        """FLOPs of the backbone's forward pass on one sample, by module (named as in the model summary).

        ``{"backbone": total, "backbone.blocks": ..., "backbone.blocks.0": ...}``, counted by PyTorch's
        ``FlopCounterMode`` on a copy of the backbone built on the meta device with
        :meth:`example_backbone_input` (no memory, no compute). None when the task cannot say its inputs
        or the family cannot run on the meta device.
        """
        if self._backbone_factory is None:
            return None
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                inputs = self.example_backbone_input(1)
                if inputs is None:
                    return None
                meta_backbone = self._meta_backbone().eval()  # batch norm takes one sample in eval mode
                counts = count_forward_flops(lambda: self.run_backbone(meta_backbone, inputs))
        except Exception:  # a family that cannot run on the meta device: the summary shows no FLOPs
            return None
        root = type(meta_backbone).__name__
        return {
            "backbone" + name[len(root) :]: flops
            for name, flops in counts.items()
            if name == root or name.startswith(root + ".")
        }

    def record_flops(self, backbone_input: Any) -> None:
        """Measure ``flops_per_batch`` once, at the first training batch (read by the throughput monitor)."""
        if self.flops_per_batch is None and self._backbone_factory is not None:
            try:
                self.flops_per_batch = self.measure_flops(backbone_input)
            except Exception:  # a family that cannot run on the meta device: throughput without FLOPs
                self.flops_per_batch = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def evaluation_samples(self, batch_idx: int, size: int) -> BatchSamples:
        """Which samples of its split the evaluation or prediction batch ``batch_idx`` (``size`` rows) holds.

        mlplab's loaders know it (:meth:`~mlplab.data.common.TensorBatchLoader.batch_samples`), also
        when several processes share a split and a process's last batch ends with padding rows, which
        metrics must leave out: only the first ``count`` rows are real. For another loader the rows
        are taken to be samples ``batch_idx * size + row`` (one process, batches of equal size).
        Randomness of an evaluation is keyed by these indices, so it does not depend on the batch
        size or on the number of processes.
        """
        loader = current_loader(self._trainer)
        if hasattr(loader, "batch_samples"):
            samples = loader.batch_samples(batch_idx)
            if len(samples.indices) == size:
                return samples
        return BatchSamples(torch.arange(batch_idx * size, (batch_idx + 1) * size), size)

    def update_stage_metrics(
        self,
        stage: str,
        real: int,
        predictions: torch.Tensor,
        targets: torch.Tensor,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> tuple[MetricCollection, MeanMetric]:
        """Add the ``real`` rows of an evaluation batch to the stage's ``metrics`` and mean ``loss``.

        For tasks that keep ``val_metrics`` / ``test_metrics`` (a ``MetricCollection``) and ``val_loss``
        / ``test_loss`` (a ``MeanMetric``). Only the first ``real`` rows count (the count of
        :meth:`evaluation_samples`: the rows after them pad this process's share); their ``loss`` enters
        the mean weighted by their number.

        Returns:
            The stage's metrics and loss metric, for the task to log.
        """
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        mean_loss = self.val_loss if stage == "val" else self.test_loss
        if real > 0:
            metrics.update(predictions[:real], targets[:real])
            mean_loss.update(loss(predictions[:real], targets[:real]), weight=real)
        return metrics, mean_loss

    # ------------------------------------------------------------------------------------ training
    def training_loss(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """The task's loss of one training batch (logged as ``train/loss``); subclasses implement it."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """:meth:`training_loss` plus the backbone's auxiliary losses (``train/aux_loss``) and DEFT's.

        ``train/loss`` and ``train/aux_loss`` are handed to Lightning only on the steps whose metrics it
        writes to the loggers (every ``trainer.log_every_n_steps``, see :meth:`logs_this_step`): the
        curves are the same, and the other steps skip ``self.log``, which costs about a millisecond.
        """
        loss = self.training_loss(batch, batch_idx)
        extra = auxiliary_loss(self.backbone) if self._adds_auxiliary_loss else None
        if self.logs_this_step():
            self.log("train/loss", loss, prog_bar=True)
            if extra is not None:
                self.log("train/aux_loss", extra)
        if extra is not None:
            loss = loss + extra
        density_loss = self.density_probe.pop_loss() if self.density_probe is not None else None
        if density_loss is not None:
            if self.logs_this_step():
                self.log("train/density_loss", density_loss)
            loss = loss + self.density.weight * density_loss
        return loss

    def log_epoch_mean(self, name: str, value: torch.Tensor, weight: int | torch.Tensor) -> None:
        """Add a batch's ``value`` (a mean over ``weight`` samples) to the training epoch's mean ``name``.

        The epoch's mean is handed to Lightning once, at the end of the training epoch, with its weight
        as the batch size: the value ``self.log(name, value, on_step=False, on_epoch=True,
        sync_dist=True)`` in every step gives (weighted by the samples, over every process), for a few
        microseconds a step on the device instead of most of a millisecond in ``self.log``. A subclass
        that overrides ``on_train_epoch_end`` calls ``super().on_train_epoch_end()``.
        """
        total, count = self._epoch_means.get(name, (0.0, 0))
        self._epoch_means[name] = (total + value.detach().float() * weight, count + weight)

    def log_evaluation(self, stage: str) -> None:
        """Hand the stage's (``val`` or ``test``) metric objects to Lightning, once an evaluation epoch.

        Called at the end of every validation and test epoch, on every process; tasks override it.
        Logging a metric object once at the epoch's end gives the value logging it every batch gives
        (it accumulates over the batches either way; Lightning computes, syncs and resets it), and each
        ``self.log`` costs Lightning most of a millisecond. A subclass that overrides
        ``on_validation_epoch_end`` or ``on_test_epoch_end`` calls ``super()`` first.
        """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_evaluate" in vars(cls):
            raise TypeError(
                f"{cls.__qualname__}._evaluate: the evaluation hook is now named "
                "evaluation_step(batch, batch_idx, stage); rename the method"
            )

    def evaluation_step(self, batch: Any, batch_idx: int, stage: str) -> Any:
        """Add one evaluation batch to the stage's (``val`` or ``test``) metrics; subclasses implement it.

        Only the batch's real rows count (:meth:`evaluation_samples`); what it returns is the task's own
        (a ``validation_step`` that also keeps images or figures uses it).
        """
        raise NotImplementedError

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluation_step(batch, batch_idx, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluation_step(batch, batch_idx, "test")

    def on_validation_epoch_end(self) -> None:
        self.log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self.log_evaluation("test")

    def on_train_epoch_end(self) -> None:
        means, self._epoch_means = self._epoch_means, {}
        for name, (total, count) in means.items():
            count = int(count)  # one host synchronisation an epoch
            if count > 0:
                self.log(name, total / count, on_step=False, on_epoch=True, sync_dist=True, batch_size=count)

    def logs_this_step(self) -> bool:
        """Whether Lightning writes the step metrics of the current training step to the loggers.

        The same test Lightning applies after the step (its logger connector's ``should_update_logs``:
        every ``log_every_n_steps`` optimiser steps, when the run is about to stop, and every step of a
        ``fast_dev_run``), so a value logged only on these steps draws the curve a value logged on
        every step draws. The last batch of an epoch logs too (Lightning writes it to the loggers only
        when it is such a step), so that ``train/loss`` is in ``trainer.callback_metrics`` for callbacks
        that monitor it at the end of an epoch, however short the epoch. Outside a fit (a bare module)
        it is always true.
        """
        trainer = self._trainer
        connector = getattr(trainer, "_logger_connector", None)
        if connector is None or not trainer.training:
            return True
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        return bool(connector.should_update_logs or trainer.fast_dev_run or last_batch)

    def _log_density(self, stage: str) -> None:
        """Log the share of active channel-MLP activations of the last batch, per block and overall."""
        if self.density_probe is None:
            return
        for group, active, size in self.density_probe.pop_counts():
            name = f"{stage}/density/{group}" if group else f"{stage}/density"
            self.log(
                name, active.float() / size, on_step=False, on_epoch=True, batch_size=size, sync_dist=True
            )

    def on_validation_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._log_density("val")

    def on_test_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._log_density("test")

    def on_predict_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.density_probe is not None:
            list(self.density_probe.pop_counts())  # nothing is logged in predict: drop the counts

    def setup(self, stage: str) -> None:
        """Refuse data-given arguments left at their defaults where the data gives other values.

        Also swap Lightning's model summary for the one that counts FLOPs, as the command line does, so
        that a Trainer built in Python does not print a column of zero FLOPs. Subclasses that override
        it call ``super().setup(stage)``.
        """
        from mlplab.callbacks.model_summary import count_flops_in_summary

        self.check_data_given_arguments()
        if isinstance(self._trainer, L.Trainer):  # not a stand-in that only carries a datamodule
            count_flops_in_summary(self._trainer)

    def unused_data_arguments(self) -> set[str]:
        """Data-given arguments this task, as built, does not use (not checked by :meth:`setup`)."""
        return set()

    def check_data_given_arguments(self) -> None:
        """Refuse, in one line, a data-given argument left at its default that the DataModule gives otherwise.

        The command line hands every argument of :data:`DATA_GIVEN_ARGUMENTS` from the DataModule to the
        task; a task built in Python gets what it is passed, and an optional one left out keeps its
        default: a regression table's ``target_scale`` ``(0, 1)`` would report the metrics on the
        standardised scale, ``num_time_features=0`` would forecast without the calendar features the
        data gives. Arguments given explicitly are not compared (a checkpoint's model on data that has
        changed since is the checkpoint's own checks' business).

        Raises:
            ConfigError: One or more such arguments, each with the value the data gives.
        """
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            return
        defaults: dict[str, Any] = {}
        for cls in reversed(type(self).__mro__):
            init = cls.__dict__.get("__init__")
            if init is None:
                continue
            for name, parameter in inspect.signature(init).parameters.items():
                if name in DATA_GIVEN_ARGUMENTS and parameter.default is not inspect.Parameter.empty:
                    defaults[name] = parameter.default
        differing = {}
        for name, default in defaults.items():
            if name in OPTIONAL_DATA_ARGUMENTS or name in self.unused_data_arguments():
                continue
            ours = self.hparams.get(name, default)
            theirs = getattr(datamodule, name, None)
            if theirs is not None and plain(ours) == plain(default) and plain(theirs) != plain(ours):
                differing[name] = theirs
        if differing:
            given = ", ".join(f"{name}={value!r}" for name, value in differing.items())
            fix = ", ".join(f"{name}=data.{name}" for name in differing)
            raise ConfigError(
                f"{type(self).__name__}: the data gives {given} but the task was built with the "
                f"default; pass {fix} when building it, as the command line does"
            )

    # ------------------------------------------------------------------------------ optimiser
    def optimizer_parameters(self) -> list[Any]:
        """What the optimiser gets: parameter groups, those ``exclude_from_weight_decay`` names without decay.

        A subclass may override it to group its parameters otherwise.
        """
        return weight_decay_groups(self, self.exclude_from_weight_decay)

    def configure_optimizers(self) -> Any:
        groups = self.optimizer_parameters()
        if self._saved_param_groups == 1 and len(groups) > 1:
            rank_zero_warn(
                "the checkpoint's optimiser has one parameter group (saved before mlplab left norms, biases "
                "and embeddings out of the weight decay): the resumed fit keeps decaying every parameter"
            )
            groups = [p for p in self.parameters() if p.requires_grad]
        try:
            optimizer = build_optimizer(self.optimizer_factory, groups)
        except (ValueError, TypeError) as error:  # torch.optim checks its arguments: "Invalid learning rate"
            raise ConfigError(f"model.optimizer: {str(error).strip().splitlines()[0]}") from error
        if self.lr_scheduler_factory is None:
            return optimizer
        run_length = {}
        if leaves_run_length_open(self.lr_scheduler_factory):
            self._run_length = int(self.trainer.estimated_stepping_batches)
            run_length["total_steps"] = self._run_length
        try:
            scheduler = self.lr_scheduler_factory(optimizer, **run_length)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"model.lr_scheduler: {str(error).strip().splitlines()[0]}") from error
        except ZeroDivisionError as error:  # OneCycleLR when pct_start * total_steps is exactly 1
            factory = self.lr_scheduler_factory  # jsonargparse's partial may hold the class in its args
            parts = [factory.func, *factory.args] if isinstance(factory, functools.partial) else [factory]
            name = next((part.__name__ for part in parts if isinstance(part, type)), "the scheduler")
            steps = f"a run of {self._run_length} optimiser steps" if run_length else "its arguments"
            raise ConfigError(
                f"model.lr_scheduler: {name} cannot be built for {steps} ({error}); run more (or fewer) "
                "steps, or set its total_steps"
            ) from error
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.lr_scheduler_interval},
        }

    def __setattr__(self, name: str, value: Any) -> None:
        """``nn.Module.__setattr__``, with a shortcut for the hook name Lightning sets around every hook.

        Lightning stores the running hook's name in ``_current_fx_name`` before and after each hook call,
        about 45 times a training step; ``nn.Module.__setattr__`` checks every value for parameters,
        modules and buffers first (~3 µs each). A string is none of these, so it is stored directly.
        """
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ------------------------------------------------------------------------ bookkeeping hooks
    def on_fit_start(self) -> None:
        skip_unusable_nvml_check()  # torch's Adam/AdamW would otherwise try to load NVML every step
        seed_process(self.global_rank)  # each process its own random streams (a resumed fit restores them)
        total, trainable = count_parameters(self.backbone)
        for logger in self.loggers:
            logger.log_hyperparams({"params_total": total, "params_trainable": trainable})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random generators' states, so that a resumed fit draws what this one would have.

        A checkpoint written after ``max_steps`` (or an early stop) ended an epoch before its last batch
        records that epoch as unfinished (:func:`reopen_cut_epoch`), so that a fit resumed with a larger
        ``max_steps`` continues it as the uninterrupted run would. A task built in Python (classes and
        ``functools.partial`` s as its arguments) keeps its hyper-parameters as the command line's config
        (:func:`hyperparameters_as_config`), so its checkpoints load as the command line's do.
        """
        checkpoint[RNG_STATES_KEY] = gather_from_processes(collect_rng_states())
        seed = os.environ.get("PL_GLOBAL_SEED", "")
        if seed.lstrip("-").isdigit():  # the run's seed: a resumed fit keeps it (the CLI)
            checkpoint[RUN_SEED_KEY] = int(seed)
        reopen_cut_epoch(checkpoint)
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict) and "_instantiator" not in hparams:
            checkpoint["hyper_parameters"] = hyperparameters_as_config(type(self), hparams)

    def on_train_start(self) -> None:
        """Restore the random generators and the loader's position of a resumed fit, before its first step.

        Later than Lightning restores the rest of the checkpoint, so that nothing drawn while the run is
        set up (model initialisation, the sanity check) moves the generators. The training loader's
        state (epoch and position) is normally handed back by Lightning, but not when the loader was
        built before the checkpoint's loop state was read: ``estimated_stepping_batches`` (used for the
        schedule's length) builds it early and Lightning then keeps it without the state (Lightning
        2.6). The pending state is applied here; the loader computes its batches lazily, so it is in
        time.
        """
        fit_loop = self.trainer.fit_loop
        if getattr(fit_loop, "_combined_loader_states_to_load", None):
            fit_loop._load_combined_loader_states()
        if self._rng_states_to_restore is not None:
            restore_rng_states(self._rng_states_to_restore)
            self._rng_states_to_restore = None
        self._warn_if_schedule_length_changed()

    def _warn_if_schedule_length_changed(self) -> None:
        """Say so when a resumed fit is longer or shorter than the one its schedule was built for."""
        for config in self.trainer.lr_scheduler_configs:
            built_for = getattr(config.scheduler, "total_steps", None)
            if self._run_length is not None and built_for is not None and built_for != self._run_length:
                name, step = type(config.scheduler).__name__, self.trainer.global_step
                rates = config.scheduler.get_last_lr()
                if config.scheduler.last_epoch >= built_for and self._run_length > step and not any(rates):
                    rank_zero_warn(
                        f"{name} was built for a run of {built_for} steps (restored from the checkpoint) and "
                        f"ended there at learning rate 0: the {self._run_length - step} steps this fit runs "
                        "after it train nothing (only BatchNorm's running statistics move); start a new fit "
                        "of the longer length, or give a fit to be extended a schedule that does not end at "
                        "0 (--model.lr_scheduler null)"
                    )
                    continue
                rank_zero_warn(
                    f"{name} was built for a run of {built_for} steps (restored from the checkpoint) but "
                    f"this fit runs to {self._run_length}: the schedule keeps its length"
                )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint whose weights do not fit this model; keep its RNG states.

        Weights saved under the names an older version of the family used are renamed first
        (:func:`mlplab.models.registry.upgrade_state_dict`).
        """
        per_rank = checkpoint.get(RNG_STATES_KEY)
        if per_rank:
            self._rng_states_to_restore = per_rank[min(self.global_rank, len(per_rank) - 1)]
        optimizer_states = checkpoint.get("optimizer_states") or []
        if optimizer_states and isinstance(optimizer_states[0], dict):
            self._saved_param_groups = len(optimizer_states[0].get("param_groups", ())) or None
        if "state_dict" in checkpoint:
            upgraded = upgrade_state_dict(self.backbone, checkpoint["state_dict"], prefix="backbone.")
            checkpoint["state_dict"] = upgraded
        saved = checkpoint.get("state_dict", {})
        own = self.state_dict()
        missing = sorted(own.keys() - saved.keys())
        unexpected = sorted(saved.keys() - own.keys())
        shared = own.keys() & saved.keys()
        reshaped = sorted(k for k in shared if tuple(own[k].shape) != tuple(saved[k].shape))
        if not (missing or unexpected or reshaped):
            return
        trained_with = checkpoint.get("hyper_parameters", {}).get("backbone", {})
        trained_with = trained_with.get("class_path", "?") if isinstance(trained_with, dict) else "?"
        if reshaped:
            key = reshaped[0]
            example = f"{key} is {tuple(saved[key].shape)} there but {tuple(own[key].shape)} here"
        else:
            example = f"e.g. {(missing or unexpected)[0]}"
        cause = differing_hyperparameters(checkpoint.get("hyper_parameters", {}), dict(self.hparams))
        spec = registry.find(type(self.backbone))
        if not cause and spec is not None and spec.layout_changes:  # the same config: the code changed
            raise CheckpointError(
                f"the checkpoint does not fit this {type(self.backbone).__name__} ({len(missing)} missing, "
                f"{len(unexpected)} unexpected and {len(reshaped)} differently shaped weights, {example}), "
                f"most likely written before the family's weights changed layout "
                f"({'; '.join(spec.layout_changes)}): train it again with this version"
            )
        raise CheckpointError(
            f"the checkpoint does not fit this {type(self.backbone).__name__} (it holds a {trained_with}"
            f"{'; ' + cause if cause else ''}): {len(missing)} missing, {len(unexpected)} unexpected and "
            f"{len(reshaped)} differently shaped weights ({example}); use the config the checkpoint was "
            "trained with"
        )


def reopen_cut_epoch(checkpoint: dict[str, Any]) -> None:
    """Record an epoch that training left before its last batch as unfinished, in place.

    When ``max_steps`` is reached (or an early stop comes) in the middle of an epoch, Lightning closes
    that epoch as if it had run to its end (Lightning 2.6): a fit resumed from the checkpoint with a
    larger ``max_steps`` would start the next epoch and never train on the rest of the cut one. Counting
    the cut epoch as started but not processed (what a checkpoint written in the middle of an epoch
    holds) makes Lightning resume in it, and the training loader continues from its saved position.
    Checkpoints of finished epochs and those written inside an epoch are left as they are.
    """
    fit_loop = checkpoint.get("loops", {}).get("fit_loop")
    if not fit_loop or "epoch_loop.batch_progress" not in fit_loop:
        return
    batches = fit_loop["epoch_loop.batch_progress"]
    epochs = fit_loop["epoch_progress"]
    closed = all(epochs[part]["processed"] == epochs[part]["started"] > 0 for part in ("total", "current"))
    if not closed or batches["is_last_batch"] or batches["current"]["completed"] == 0:
        return
    for part in ("total", "current"):
        epochs[part]["processed"] -= 1
        epochs[part]["completed"] = min(epochs[part]["completed"], epochs[part]["processed"])
    checkpoint["epoch"] = epochs["current"]["completed"]


def leaves_run_length_open(scheduler: Any) -> bool:
    """Whether an LR scheduler (class or ``functools.partial`` of one) has a ``total_steps`` left at ``None``.

    jsonargparse hands the task a partial holding every argument, defaults included; torch's
    ``OneCycleLR`` may be given ``epochs`` and ``steps_per_epoch`` instead of ``total_steps``.
    """
    if isinstance(scheduler, functools.partial):
        given = scheduler.keywords
        if "total_steps" in given:
            return given["total_steps"] is None and given.get("epochs") is None
        scheduler = scheduler.func
    try:
        parameter = inspect.signature(scheduler).parameters.get("total_steps")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is None


def gather_from_processes(value: Any) -> list[Any]:
    """``value`` of every process, in rank order (``[value]`` in a single process)."""
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()) or distributed.get_world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * distributed.get_world_size()
    distributed.all_gather_object(gathered, value)
    return gathered


def differing_hyperparameters(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """The task arguments whose values differ between a checkpoint and this model, as a short phrase."""
    differences = [
        f"{key} {saved[key]!r} there, {current[key]!r} here"
        for key in current
        if key in saved
        and not key.startswith("_")
        and key not in ("backbone", "optimizer", "lr_scheduler", "exclude_from_weight_decay")
        and plain(saved[key]) != plain(current[key])
    ]
    return ", ".join(differences)


def plain(value: Any) -> Any:
    """``value`` with tuples as lists and namespaces as dicts, for comparing configs from any source."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


#: What :meth:`Task.load_from_checkpoint` (Lightning) builds a task with from a config in its checkpoint.
CONFIG_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"


def hyperparameters_as_config(task_class: type, hparams: dict[str, Any]) -> dict[str, Any]:
    """A Python-built task's hyper-parameters as the command line would have saved them.

    A task built in Python gets classes, ``functools.partial`` s and dataclass sections as arguments
    (``optimizer=partial(torch.optim.AdamW, lr=1e-3)``); pickled into a checkpoint, they make
    ``torch.load(weights_only=True)`` (torch's default, and so ``trainer.test(ckpt_path=...)``'s) refuse
    the file. Written as ``class_path`` / ``init_args`` mappings instead, with the task's class path and
    Lightning's config instantiator, the checkpoint loads safely and ``Task.load_from_checkpoint(path)``
    and :func:`mlplab.load_run` rebuild the task as they do a command line's. When an argument has no
    such form (a lambda, an object), or the task class cannot be imported by its path (defined in a
    function), the hyper-parameters are kept as they are, said once: such checkpoints load only with
    ``weights_only=False``.
    """
    converted: dict[str, Any] = {}
    kept: list[str] = []
    if _import_path(task_class) is None:
        kept.append(f"the class {task_class.__qualname__} (not importable by its path)")
    for key, value in hparams.items():
        converted[key], ok = _as_config(value)
        if not ok:
            kept.append(f"{key} ({value!r})")
    if kept:
        from mlplab.data.common import say_once

        say_once(
            f"{task_class.__name__}: {', '.join(kept)} has no config form (a class path with its "
            "arguments), so the task's checkpoints keep its hyper-parameters pickled and load only with "
            "weights_only=False (trainer.test(..., weights_only=False), torch.load(..., weights_only=False))",
            warning=True,
        )
        return dict(hparams)
    converted["_class_path"] = f"{task_class.__module__}.{task_class.__qualname__}"
    converted["_instantiator"] = CONFIG_INSTANTIATOR
    return converted


def _import_path(thing: Any) -> str | None:
    """``module.Name`` under which ``thing`` (a class or function) imports, or None (a lambda, a local)."""
    module, name = getattr(thing, "__module__", None), getattr(thing, "__qualname__", "")
    if not module or not name or "<" in name:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}.{name}" if found is thing else None


def _as_config(value: Any) -> tuple[Any, bool]:
    """``value`` as plain data jsonargparse reads back into it, and whether that was possible."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value, True
    if isinstance(value, os.PathLike):
        return os.fspath(value), True
    if type(value) in (list, tuple):  # not a named tuple
        items = [_as_config(item) for item in value]
        return type(value)(item for item, _ in items), all(ok for _, ok in items)
    if isinstance(value, dict):
        items = {key: _as_config(item) for key, item in value.items()}
        ok = all(isinstance(key, str) and item_ok for key, (_, item_ok) in items.items())
        return {key: item for key, (item, _) in items.items()}, ok
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _as_config({field.name: getattr(value, field.name) for field in dataclasses.fields(value)})
    target, args, keywords = value, (), {}
    if isinstance(value, functools.partial):
        value = expand_variant(value)  # a named variant: its arguments, as the command line's config holds
        target, args, keywords = value.func, value.args, value.keywords
    path = _import_path(target)
    if path is None or not callable(target):
        return value, False
    if not isinstance(target, type):  # a function: a path, and only without bound arguments
        return path, not (args or keywords)
    try:
        signature = inspect.signature(target)
        bound = signature.bind_partial(*args, **keywords).arguments
    except (TypeError, ValueError):
        return value, False
    arguments: dict[str, Any] = {}
    for name, given in bound.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            return value, False
        if kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(given)
        else:
            arguments[name] = given
    init_args, ok = _as_config(arguments)
    return ({"class_path": path, "init_args": init_args} if init_args else {"class_path": path}), ok


def _on_meta(inputs: Any) -> Any:
    """``inputs`` (a tensor, a tuple of them, or None) as empty tensors of their shapes on the meta device."""
    if isinstance(inputs, tuple):
        return tuple(_on_meta(item) for item in inputs)
    return torch.empty_like(inputs, device="meta") if isinstance(inputs, torch.Tensor) else inputs
