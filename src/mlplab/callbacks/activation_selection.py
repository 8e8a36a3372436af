"""S-KAN's selection phase during a fit: keep each node's most weighted activation spaces from an epoch on."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from mlplab.errors import ConfigError, require_positive


class ActivationSelection(L.Callback):
    """At the start of epoch ``at_epoch``, call ``select_activations(keep)`` on the backbone's layers.

    S-KAN (:class:`mlplab.models.SKAN`) trains every activation space first, then keeps each node's
    ``keep`` most weighted ones and trains on with the others pruned. The pruned state is held in the
    layers' ``active`` buffers, so checkpoints keep it and a resumed fit does not select again.

    Args:
        at_epoch: The epoch (counted from 0) from which only the selected spaces are trained.
        keep: Activation spaces kept per node.
    """

    def __init__(self, at_epoch: int = 10, keep: int = 1):
        require_positive("ActivationSelection", keep=keep)
        if at_epoch < 0:
            raise ConfigError(f"ActivationSelection: at_epoch must be non-negative, got {at_epoch}")
        self.at_epoch = at_epoch
        self.keep = keep

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != self.at_epoch:
            return
        layers = [m for m in pl_module.modules() if hasattr(m, "select_activations") and hasattr(m, "active")]
        if not layers:
            return
        for layer in layers:
            layer.select_activations(self.keep)
        rank_zero_info(
            f"ActivationSelection: kept {self.keep} activation space(s) per node from epoch {self.at_epoch}"
        )
