"""Lightning's model summary with the FLOPs column filled in.

Lightning's summary (in 2.6) counts FLOPs by running the module's ``example_input_array``
through it; without one, every row and the total show 0. mlplab's tasks do not set one (it would run a
real forward pass, and compile a compiled backbone, at start-up), so the summary here counts instead the
backbone's forward pass on one sample of the data's shape, on a copy built on the meta device (no
memory, no compute): the task's :meth:`~mlplab.tasks.base.Task.forward_flops`. The column then reads
as Lightning's would with a one-sample ``example_input_array``: forward FLOPs per sample, by module.
What is counted: matrix products, convolutions and attention, not elementwise work
(:func:`~mlplab.models.counting.count_training_flops`). A module that sets ``example_input_array``, or
cannot say its inputs, gets Lightning's own count.

The CLI puts :class:`FlopsModelSummary` (:class:`RichFlopsModelSummary`) in place of the summary
callback Lightning adds (or the config names), with the same arguments. Training FLOPs (forward and
backward) per sample are in each run's ``summary.json``, its HParams entry and the throughput logs.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, RichModelSummary
from lightning.pytorch.utilities.model_summary import ModelSummary as Summary


class FlopsSummary(Summary):
    """Lightning's summary of ``model`` with the FLOPs of :meth:`~mlplab.tasks.base.Task.forward_flops`."""

    def __init__(self, model: L.LightningModule, max_depth: int = 1):
        counted = None
        if model.example_input_array is None and callable(getattr(model, "forward_flops", None)):
            counted = model.forward_flops()
        self._counted: dict[str, int] | None = counted
        super().__init__(model, max_depth=max_depth)

    @property
    def total_flops(self) -> int:
        if self._counted is None:
            return super().total_flops
        return self._counted.get("backbone", 0)

    @property
    def flop_counts(self) -> dict[str, dict[Any, int]]:
        if self._counted is None:
            return super().flop_counts
        return {name: {"forward": self._counted.get(name, 0)} for name in self.layer_names}


class _CountsFlops:
    """Build the summary as :class:`FlopsSummary` (DeepSpeed's sharded summary left to Lightning)."""

    _max_depth: int

    def _summary(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Summary:
        from lightning.pytorch.strategies.deepspeed import DeepSpeedStrategy

        if isinstance(trainer.strategy, DeepSpeedStrategy) and trainer.strategy.zero_stage_3:
            return super()._summary(trainer, pl_module)  # type: ignore[misc]
        return FlopsSummary(pl_module, max_depth=self._max_depth)


class FlopsModelSummary(_CountsFlops, ModelSummary):
    """Lightning's ``ModelSummary`` (a logged table) with forward FLOPs per sample counted.

    Args:
        max_depth: Depth of nested modules listed (0: no summary).
        **summarize_kwargs: Lightning's ``ModelSummary``'s.
    """


class RichFlopsModelSummary(_CountsFlops, RichModelSummary):
    """Lightning's ``RichModelSummary`` (a Rich table) with forward FLOPs per sample counted.

    Args:
        max_depth: Depth of nested modules listed (0: no summary).
        **summarize_kwargs: Lightning's ``RichModelSummary``'s (``header_style``).
    """


def count_flops_in_summary(trainer: L.Trainer) -> None:
    """Replace Lightning's own summary callback in ``trainer`` by its counterpart here, same arguments.

    The one Lightning adds by default and one a config names as ``ModelSummary`` or ``RichModelSummary``
    alike; a subclass of them (one of the user's) is left as it is.
    """
    counterparts = {ModelSummary: FlopsModelSummary, RichModelSummary: RichFlopsModelSummary}
    for i, callback in enumerate(trainer.callbacks):
        counterpart = counterparts.get(type(callback))
        if counterpart is not None:
            max_depth, kwargs = callback._max_depth, callback._summarize_kwargs
            trainer.callbacks[i] = counterpart(max_depth=max_depth, **kwargs)
