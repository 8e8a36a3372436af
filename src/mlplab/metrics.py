"""Which way a metric improves, told from its name (``val/bpc``: lower is better, ``val/acc``: higher).

Used wherever a metric is named without saying whether to minimise or maximise it: the best checkpoint's
``checkpoint.monitor`` and a sweep's ``metric``. A name holding no word of known direction (or words of
both) gets ``None``, and the caller asks for the mode instead of guessing.
"""

from __future__ import annotations

import re
from typing import Literal

#: Words of metric names for which lower values are better, and higher ones.
LOWER_IS_BETTER = {"loss", "nll", "bpc", "ppl", "perplexity", "mse", "mae", "rmse", "mape", "error", "fid"}
HIGHER_IS_BETTER = {"acc", "accuracy", "top1", "top5", "psnr", "ssim", "r2", "auc", "f1", "iou", "dice"}


def metric_mode(metric: str) -> Literal["min", "max"] | None:
    """``min`` or ``max`` for a metric whose name holds a word of known direction (``val/bpc``: min).

    ``None`` when it holds none (or words of both directions).
    """
    words = set(re.split(r"[^a-z0-9]+", metric.rsplit("/", 1)[-1].lower()))
    lower, higher = bool(words & LOWER_IS_BETTER), bool(words & HIGHER_IS_BETTER)
    if lower == higher:
        return None
    return "min" if lower else "max"
