"""DLinear: a moving-average decomposition and one linear map over time per component.

Paper: Ailing Zeng, Muxi Chen, Lei Zhang, Qiang Xu, "Are Transformers Effective for Time Series
Forecasting?", AAAI 2023 (arXiv 2205.13504). Official code: github.com/cure-lab/LTSF-Linear
(``models/DLinear.py``); Time-Series-Library's copy computes the same.

The history is split into a trend (moving average, kernel 25, edges replicated) and a seasonal
remainder; each is mapped from L to H steps by a linear layer over time, shared by all series (or one
per series with ``individual``), and the two forecasts are added. Both weights start at ``1/L`` (an
average of the history), as in Time-Series-Library's copy; LTSF-Linear's own ``models/DLinear.py``
has these lines commented out ("if you want to visualize the weights") and so starts from PyTorch's
default initialisation. The biases keep PyTorch's default initialisation in both.

Checked weight for weight against LTSF-Linear's ``models/DLinear.py`` (shared and ``individual``):
``benchmarks/timeseries_official_check.py --dlinear`` (figures in ``docs/results.md``).

Parameters: ``2 · (L·H + H)`` shared, ``N`` times that with ``individual``.

Shapes: ``(B, L, N) -> (B, H, N)``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlplab.models.registry import Variant, register_family
from mlplab.models.timeseries.common import ForecastingFamily, SeriesDecomposition


@register_family(
    domains=("forecasting",),
    variants={
        "tiny": Variant({"moving_avg": 5}),
        "L96-H720": Variant(
            {"moving_avg": 25},
            params=139_680,
            precision=100,
            shapes=((96, 321), (720, 321)),
            source="Zeng et al. 2023 (LTSF-Linear), efficiency table: 139.7K at L=96, T=720",
        ),
    },
    source="own, weight for weight with the official code",
)
class DLinear(ForecastingFamily):
    """DLinear (see the module docstring).

    Args:
        input_shape: ``(lookback, num_series)``; filled in by the task.
        output_shape: ``(horizon, num_series)``; filled in by the task.
        moving_avg: Kernel of the moving average that extracts the trend.
        individual: One pair of linear layers per series instead of one shared pair.
    """

    def __init__(
        self,
        input_shape: tuple[int, int],
        output_shape: tuple[int, int],
        moving_avg: int = 25,
        individual: bool = False,
    ):
        super().__init__(input_shape, output_shape)
        self.decomposition = SeriesDecomposition(moving_avg)
        self.individual = individual
        copies = self.num_series if individual else 1
        self.seasonal = nn.ModuleList(nn.Linear(self.lookback, self.horizon) for _ in range(copies))
        self.trend = nn.ModuleList(nn.Linear(self.lookback, self.horizon) for _ in range(copies))
        with torch.no_grad():
            for layer in (*self.seasonal, *self.trend):
                layer.weight.fill_(1.0 / self.lookback)

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        seasonal, trend = (part.transpose(1, 2) for part in self.decomposition(x))  # (B, N, L)
        if self.individual:
            out = torch.stack(
                [
                    s(seasonal[:, i]) + t(trend[:, i])
                    for i, (s, t) in enumerate(zip(self.seasonal, self.trend))
                ],
                dim=1,
            )
        else:
            out = self.seasonal[0](seasonal) + self.trend[0](trend)
        return out.transpose(1, 2)
