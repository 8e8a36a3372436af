"""What the forecasting families share: the shape contract, RevIN and the moving-average decomposition.

Every forecasting family is called as ``family((lookback, num_series), (horizon, num_series), **args)``
and maps a history ``(B, L, N)`` to a forecast ``(B, H, N)``. A family that uses calendar features
declares a ``num_time_features`` constructor argument (the task fills it in from the data, like the
shapes) and takes them in ``forward(x, time_features=None)`` as ``(B, L, F)``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive


class ForecastingFamily(nn.Module):
    """Base of the forecasting families: the shapes, optional RevIN around the model, refusal of other inputs.

    Subclasses call this ``__init__`` first and implement :meth:`forecast`; :meth:`forward` checks the
    input and wraps :meth:`forecast` in RevIN when the family was built with it (a family that needs
    more, such as calendar features, overrides :meth:`forward`).

    Shapes: ``(B, lookback, num_series) -> (B, horizon, num_series)``.

    Args:
        input_shape: ``(lookback, num_series)`` of one history.
        output_shape: ``(horizon, num_series)`` of one forecast.
        revin: Reversible instance normalisation around the model (per window and series).
        revin_affine: Give that RevIN a learnable per-series scale and shift.
    """

    def __init__(
        self,
        input_shape: tuple[int, int],
        output_shape: tuple[int, int],
        revin: bool = False,
        revin_affine: bool = False,
    ):
        super().__init__()
        name = type(self).__name__
        if len(input_shape) != 2 or len(output_shape) != 2:
            raise ConfigError(
                f"{name} takes input_shape (lookback, num_series) and output_shape (horizon, num_series), "
                f"got {tuple(input_shape)} and {tuple(output_shape)}"
            )
        (lookback, num_series), (horizon, out_series) = input_shape, output_shape
        require_positive(name, lookback=lookback, horizon=horizon, num_series=num_series)
        if out_series != num_series:
            raise ConfigError(
                f"{name} forecasts every input series: output_shape has {out_series} series, "
                f"input_shape {num_series}"
            )
        self.lookback, self.horizon, self.num_series = int(lookback), int(horizon), int(num_series)
        self.revin = RevIN(self.num_series, affine=revin_affine) if revin else None

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        """The forecast ``(B, H, N)`` of a (normalised, when RevIN is on) history ``(B, L, N)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if self.revin is None:
            return self.forecast(x)
        x, stats = self.revin.normalize(x)
        return self.revin.denormalize(self.forecast(x), stats)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ConfigError` unless ``x`` is ``(B, lookback, num_series)``."""
        if x.dim() != 3 or tuple(x.shape[1:]) != (self.lookback, self.num_series):
            raise ConfigError(
                f"{type(self).__name__} was built for histories of lookback {self.lookback} and "
                f"{self.num_series} series (B, {self.lookback}, {self.num_series}), got a batch of shape "
                f"{tuple(x.shape)}"
            )


class RevIN(nn.Module):
    """Reversible instance normalisation (Kim et al., ICLR 2022): per window and series.

    ``normalize`` subtracts each series' mean over time and divides by its standard deviation (population
    variance + ``eps``, under the square root), then applies an optional learnable affine map;
    ``denormalize`` undoes both on the forecast. The statistics are not differentiated through (as in
    the reference code, which detaches them).

    Args:
        num_series: Number of series N.
        affine: Learn a per-series scale and shift.
        eps: Added to the variance.
    """

    def __init__(self, num_series: int, affine: bool = False, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_series))
            self.bias = nn.Parameter(torch.zeros(num_series))

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``(B, T, N)`` -> normalised ``(B, T, N)`` and the statistics ``(mean, std)`` ``(B, 1, N)``."""
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        x = (x - mean) / std
        if self.affine:
            x = x * self.weight + self.bias
        return x, (mean, std)

    def denormalize(self, y: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Undo :meth:`normalize` on a forecast ``(B, H, N)``."""
        mean, std = stats
        if self.affine:
            y = (y - self.bias) / (self.weight + self.eps * self.eps)
        return y * std + mean


class MovingAverage(nn.Module):
    """Moving average over time with edge replication, as Autoformer's ``series_decomp``.

    Shapes: ``(B, T, C) -> (B, T, C)``; the window is ``kernel_size`` (odd sizes keep the length).

    Args:
        kernel_size: Window of the average (25 in DLinear and TimeMixer).
    """

    def __init__(self, kernel_size: int = 25):
        super().__init__()
        require_positive("MovingAverage", kernel_size=kernel_size)
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Window sums from a running sum along time: no transposes, cost independent of the kernel
        # (the same values as AvgPool1d on the padded series, up to float rounding).
        k, pad = self.kernel_size, (self.kernel_size - 1) // 2
        padded = torch.cat([x[:, :1].expand(-1, pad + 1, -1), x, x[:, -1:].expand(-1, pad, -1)], dim=1)
        running = padded.cumsum(dim=1)
        running = running - running[:, :1]  # a leading zero: sums of padded[1 : t + 1]
        return (running[:, k:] - running[:, :-k]) / k


class SeriesDecomposition(nn.Module):
    """Split a series into a seasonal part (the residual) and a trend (its moving average).

    Shapes: ``(B, T, C) -> ((B, T, C), (B, T, C))``, returned as ``(seasonal, trend)``.

    Args:
        kernel_size: Window of the moving average.
    """

    def __init__(self, kernel_size: int = 25):
        super().__init__()
        self.moving_average = MovingAverage(kernel_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trend = self.moving_average(x)
        return x - trend, trend
