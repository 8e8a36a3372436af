"""Lightning's progress bars, redrawn a few times a second instead of after every training step.

Lightning redraws its bar (and formats the logged metrics for it) after every batch: a millisecond or
so per step, 5–10 % of a small model's training step on a CPU. Ten redraws a second look the same.
The CLI adds the Rich bar when ``rich`` is installed (the ``rich`` extra) and the TQDM bar otherwise,
unless the config names a progress bar of its own or turns it off (``trainer.enable_progress_bar``).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, its training bar redrawn at most every ``interval`` seconds.

    Lightning's bar also keeps a thread that wakes ``refresh_rate`` times a second (100 by default) to
    redraw; here it wakes once per ``interval`` unless ``refresh_rate`` is given. Waking every 10 ms, the
    thread took 0.16-0.22 s of CPU per 1,000 training steps of the quickstart's model (about 1.5 % of
    the steps' time), competing with the training loop for Python's interpreter lock; 0.05-0.06 s
    waking every 0.1 s.

    Args:
        interval: Seconds between redraws of the training bar (the last batch of an epoch always).
        **kwargs: ``RichProgressBar``'s arguments.
    """

    def __init__(self, interval: float = 0.1, **kwargs: Any):
        if interval > 0:
            kwargs.setdefault("refresh_rate", max(1, round(1 / interval)))
        super().__init__(**kwargs)
        self.interval = interval
        self._drawn = -float("inf")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if now - self._drawn < self.interval and batch_idx + 1 < self.total_train_batches:
            return
        self._drawn = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """Lightning's metrics for the bar, the run's version as text (Rich shows numbers as ``0.000``)."""
        metrics = super().get_metrics(trainer, pl_module)
        if "v_num" in metrics:
            metrics["v_num"] = str(metrics["v_num"])
        return metrics


class ThrottledTQDMProgressBar(TQDMProgressBar):
    """Lightning's ``TQDMProgressBar``, its bars redrawn at most every ``interval`` seconds.

    Args:
        interval: Seconds between redraws (the last batch of a loop always).
        **kwargs: ``TQDMProgressBar``'s arguments.
    """

    def __init__(self, interval: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.interval = interval
        self._drawn = -float("inf")

    def _should_update(self, current: int, total: int) -> bool:
        now = time.monotonic()
        if current != total and now - self._drawn < self.interval:
            return False
        update = super()._should_update(current, total)
        if update:
            self._drawn = now
        return update


def default_progress_bar(trainer_config: dict[str, Any]) -> ProgressBar | None:
    """The progress bar the CLI adds: None when the config turns bars off or names one of its own."""
    if trainer_config.get("enable_progress_bar") is False:
        return None
    given = trainer_config.get("callbacks") or []
    if any(isinstance(callback, ProgressBar) for callback in (given if isinstance(given, list) else [given])):
        return None
    rich = importlib.util.find_spec("rich") is not None
    return ThrottledRichProgressBar() if rich else ThrottledTQDMProgressBar()
