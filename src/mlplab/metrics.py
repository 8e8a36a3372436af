"""Which way a metric improves, told from its name (``val/bpc``: lower is better, ``val/acc``: higher).

Used wherever a metric is named without saying whether to minimise or maximise it: the best checkpoint's
``checkpoint.monitor`` and a sweep's ``metric``. A name holding no word of known direction (or words of
both) gets ``None``, and the caller asks for the mode instead of guessing. A name that starts with a
cost word (``train/seconds_to_psnr``: the time a fit took to reach a PSNR) measures what reaching a
target cost, so lower is better whatever it names next.
"""

from __future__ import annotations

import re
from typing import Literal

#: Words of metric names for which lower values are better, and higher ones.
LOWER_IS_BETTER = {
    "loss", "nll", "logloss", "bpc", "ppl", "perplexity", "mse", "mae", "rmse", "mape", "error", "fid"
}  # fmt: skip
HIGHER_IS_BETTER = {
    "acc",
    "accuracy",
    "top1",
    "top5",
    "psnr",
    "ssim",
    "r2",
    "auc",
    "auroc",
    "f1",
    "iou",
    "dice",
}
#: First words of names that measure what reaching a target cost (``seconds_to_psnr``): lower is better.
COST_WORDS = {"seconds", "time", "steps", "epochs"}


def metric_mode(metric: str) -> Literal["min", "max"] | None:
    """``min`` or ``max`` for a metric whose name holds a word of known direction (``val/bpc``: min).

    ``min`` too for a name that starts with a cost word (``train/seconds_to_psnr``; a rate such as
    ``steps_per_second`` is not a cost, it has no direction). ``None`` when it
    holds no word of known direction (or words of both directions).
    """
    words = [word for word in re.split(r"[^a-z0-9]+", metric.rsplit("/", 1)[-1].lower()) if word]
    if words and words[0] in COST_WORDS and "per" not in words:  # not a rate (steps_per_second)
        return "min"
    lower, higher = bool(LOWER_IS_BETTER.intersection(words)), bool(HIGHER_IS_BETTER.intersection(words))
    if lower == higher:
        return None
    return "min" if lower else "max"
