"""Global magnitude pruning during training: one-shot or on a schedule, then training goes on."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from mlplab.analysis import pruning
from mlplab.errors import ConfigError


class GlobalMagnitudePruning(Callback):
    """Prune the backbone globally by weight magnitude to a target sparsity, and keep training.

    Global magnitude pruning (Gupta et al., "Is Complexity Required for Neural Network Pruning? A Case
    Study on Global Magnitude Pruning", arXiv 2209.14624; :mod:`mlplab.analysis.pruning`): the weights
    of all linear and convolution layers of the backbone (and the parameters its own layers declare as
    linear maps, ``prunable_weights``: the MoE experts' matrices, ...) are ranked together and the
    smallest are masked with ``torch.nn.utils.prune``. One-shot (``end_step`` unset: the whole target at
    ``start_step``) or gradually (Zhu and Gupta's cubic schedule from ``start_step`` to ``end_step``, a
    step every ``every_n_steps``). The masked weights stay zero while training goes on; the sparsity is
    logged as ``prune/sparsity`` (the share of zero weights among the prunable ones), next to the task's
    own metrics.

    Checkpoints hold plain weights (masked ones zero), so a pruned run's ``best.ckpt`` loads into the
    unpruned model for ``test`` and ``predict``; the masks travel in the callback's state, and a resumed
    fit puts them back before its first step. Add it to a run with::

        trainer:
          callbacks:
            - class_path: mlplab.callbacks.GlobalMagnitudePruning
              init_args: {sparsity: 0.8, start_step: 500, end_step: 2000}

    Args:
        sparsity: Target share of the prunable weights set to zero, in (0, 1).
        start_step: Optimiser step of the (first) pruning.
        end_step: Step at which the schedule reaches ``sparsity``; unset: one-shot at ``start_step``.
        every_n_steps: Steps between two prunings of the schedule.
        min_weights_per_layer: The Minimum Threshold (MT): each layer keeps at least its this many largest
            weights, against layer collapse (0: none).
    """

    def __init__(
        self,
        sparsity: float,
        start_step: int = 0,
        end_step: int | None = None,
        every_n_steps: int = 100,
        min_weights_per_layer: int = 0,
    ):
        if not 0 < sparsity < 1:
            raise ConfigError(f"GlobalMagnitudePruning: sparsity must lie between 0 and 1, got {sparsity}")
        if start_step < 0 or (end_step is not None and end_step <= start_step):
            raise ConfigError(
                f"GlobalMagnitudePruning: need 0 <= start_step < end_step, got {start_step} and {end_step}"
            )
        if every_n_steps <= 0 or min_weights_per_layer < 0:
            raise ConfigError(
                "GlobalMagnitudePruning: every_n_steps must be positive and min_weights_per_layer not "
                f"negative, got {every_n_steps} and {min_weights_per_layer}"
            )
        self.sparsity = sparsity
        self.start_step = start_step
        self.end_step = end_step
        self.every_n_steps = every_n_steps
        self.min_weights_per_layer = min_weights_per_layer
        self._saved_masks: dict[str, Any] = {}
        self.achieved = 0.0

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            sparsity=self.sparsity, start_step=self.start_step, end_step=self.end_step
        )

    def target_at(self, step: int) -> float:
        """The sparsity the schedule asks for at optimiser step ``step`` (0 before a pruning step)."""
        if step < self.start_step:
            return 0.0
        if self.end_step is None:
            return self.sparsity
        if step < self.end_step and (step - self.start_step) % self.every_n_steps:
            step = step - (step - self.start_step) % self.every_n_steps  # hold until the next pruning step
        return pruning.cubic_sparsity(step, self.sparsity, self.start_step, self.end_step)

    def _layers(self, pl_module: L.LightningModule) -> list[pruning.PrunableWeight]:
        return pruning.prunable_weights(getattr(pl_module, "backbone", pl_module))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        layers = self._layers(pl_module)
        if not layers:
            raise ConfigError(
                f"GlobalMagnitudePruning: {type(pl_module).__name__} has no linear or convolution layer"
            )
        if self._saved_masks:
            pruning.apply_masks(layers, self._saved_masks)
            self._saved_masks = {}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        target = self.target_at(trainer.global_step)
        if target <= self.achieved:
            return
        layers = self._layers(pl_module)
        masked, total = pruning.global_magnitude_prune(layers, target, self.min_weights_per_layer)
        reached = masked / total
        if reached + 0.5 / total < target:
            rank_zero_warn(
                f"GlobalMagnitudePruning: min_weights_per_layer={self.min_weights_per_layer} leaves only "
                f"{reached:.4f} of the weights prunable, short of the target {target:.4f}"
            )
        self.achieved = target
        pl_module.log("prune/sparsity", reached, on_step=True, on_epoch=False)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        zeros, total = pruning.sparsity(self._layers(pl_module))
        pl_module.log("prune/sparsity", zeros / max(total, 1), on_step=False, on_epoch=True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Store plain weights (``weight_orig * weight_mask``, ``w1_orig * w1_mask``): the unpruned names."""
        state = checkpoint.get("state_dict")
        if state is None:
            return
        for weight in self._layers(pl_module):
            key = f"backbone.{weight.name}" if hasattr(pl_module, "backbone") else weight.name
            if key + "_orig" in state:
                state[key] = state.pop(key + "_orig") * state.pop(key + "_mask")

    def state_dict(self) -> dict[str, Any]:
        module = self._module
        layers = self._layers(module) if module is not None else []
        return {"achieved": self.achieved, "masks": pruning.masks(layers)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.achieved = float(state_dict.get("achieved", 0.0))
        self._saved_masks = dict(state_dict.get("masks", {}))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._module = pl_module

    _module: L.LightningModule | None = None


__all__ = ["GlobalMagnitudePruning"]
