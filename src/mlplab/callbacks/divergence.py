"""Stop a diverging run with one clear line instead of training (and checkpointing) NaNs."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from mlplab.callbacks.checkpoint import non_finite_weights
from mlplab.errors import ConfigError, TrainingDivergedError


class DivergenceGuard(Callback):
    """Stop training with :class:`~mlplab.errors.TrainingDivergedError` when it stops being finite.

    The training loss of every step is kept (a reference to the detached tensor: no copy, no kernel, no
    waiting for the device). Every ``check_every_n_steps`` steps, before validation, before every
    checkpoint is written (so no checkpoint ever holds a diverged state) and at the end of training,
    the host checks the losses kept since the last check, all at once, and every weight. The error's one line
    names what went non-finite, the step, the epoch and the learning rate. An ``EarlyStopping`` that
    stopped the run because its metric was not finite ends the run with such a line too. The CLI exits
    with status 1.

    Args:
        enabled: Whether to check at all.
        check_every_n_steps: Training steps between the host's checks (each waits for the device).
    """

    def __init__(self, enabled: bool = True, check_every_n_steps: int = 25):
        if check_every_n_steps <= 0:
            raise ConfigError(f"divergence.check_every_n_steps must be positive, got {check_every_n_steps}")
        self.enabled = enabled
        self.check_every_n_steps = check_every_n_steps
        self._losses: list[torch.Tensor] = []
        self._where: list[tuple[int, int, int, float | None]] = []  # (step, epoch, batch, learning rate)
        self._step_lr: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._losses, self._where = [], []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # the step's own learning rate: Lightning steps the schedule before on_train_batch_end (formatted
        # only for the error line: this runs every step)
        if self.enabled:
            self._step_lr = _learning_rate(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.enabled:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.append(loss.detach().reshape(()))
            # the line names this step's learning rate, not the one in force when the host looks (a decaying
            # schedule has lowered it by then, to 0 at the end of a run)
            self._where.append((trainer.global_step, trainer.current_epoch, batch_idx, self._step_lr))
        if trainer.global_step % self.check_every_n_steps == 0 or len(self._losses) >= 4096:
            self.check(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: Any) -> None:
        if trainer.state.fn == "fit":
            self.check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module)
        for callback in trainer.callbacks:
            if isinstance(callback, EarlyStopping) and self._stopped_on_non_finite(trainer, callback):
                value = trainer.callback_metrics.get(callback.monitor)
                shown = f"{float(value):g}" if value is not None else "not finite"
                best = callback.best_score
                if best is not None and math.isfinite(float(best)):
                    before = f"the best {callback.monitor} before was {float(best):g}, kept in best.ckpt"
                else:
                    before = f"{callback.monitor} was never finite, so no best.ckpt was written"
                raise TrainingDivergedError(
                    f"training diverged: the monitored metric {callback.monitor} became {shown} at epoch "
                    f"{callback.stopped_epoch} and EarlyStopping stopped the run ({before})",
                    step=trainer.global_step,
                    epoch=callback.stopped_epoch,
                    value=float(value) if value is not None else None,
                )

    @staticmethod
    def _stopped_on_non_finite(trainer: L.Trainer, callback: EarlyStopping) -> bool:
        reason = getattr(callback, "stopping_reason", None)
        if reason is not None:
            return getattr(reason, "name", "") == "NON_FINITE_METRIC"
        value = trainer.callback_metrics.get(callback.monitor)  # Lightning < 2.6 keeps no reason
        return bool(callback.stopped_epoch) and value is not None and not bool(torch.isfinite(value).all())

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Raise :class:`TrainingDivergedError` if a loss so far or a weight now is not finite."""
        if not self.enabled:
            return
        bad_loss = None
        if self._losses:
            losses = torch.stack([loss.float() for loss in self._losses])
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                first = int(bad[0, 0])
                bad_loss = (float(losses[first]), *self._where[first])
        bad_weights = non_finite_weights(pl_module) if bad_loss is None else []
        local = bad_loss is not None or bool(bad_weights)
        if not trainer.strategy.reduce_boolean_decision(local, all=False):  # any process diverged
            self._losses, self._where = [], []  # the steps up to here were finite
            return
        lr = _learning_rate(trainer)
        value, step, epoch = None, trainer.global_step, trainer.current_epoch
        if bad_loss is not None:
            value, step, epoch, batch, lr = bad_loss
            what = f"the training loss became {value:g} at step {step} (epoch {epoch}, batch {batch})"
        elif bad_weights:
            more = f" and {len(bad_weights) - 1} more" if len(bad_weights) > 1 else ""
            what = (
                f"the weights {bad_weights[0]}{more} became non-finite by step {trainer.global_step} "
                f"(epoch {trainer.current_epoch})"
            )
        else:
            what = f"another process diverged by step {trainer.global_step} (epoch {trainer.current_epoch})"
        rate = "" if lr is None else f", learning rate {lr:g}"
        raise TrainingDivergedError(
            f"training diverged: {what}{rate}; nothing non-finite was saved (lower the learning rate, "
            "clip gradients with --trainer.gradient_clip_val, or check the data)",
            step=step,
            epoch=epoch,
            value=value,
        )


def _learning_rate(trainer: L.Trainer) -> float | None:
    try:
        return float(trainer.optimizers[0].param_groups[0]["lr"])
    except (IndexError, KeyError, AttributeError, TypeError, ValueError):
        return None
