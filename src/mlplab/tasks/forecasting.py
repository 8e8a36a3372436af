"""Long-horizon forecasting: a history of L steps of N series in, the next H steps out."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection

from mlplab.data.common import say_once
from mlplab.data.timeseries import DATA_SETTINGS
from mlplab.errors import CheckpointError, ConfigError, require_positive
from mlplab.loggers import log_figure
from mlplab.models.timeseries.common import RevIN
from mlplab.tasks.base import Task

#: A forecasting family (or ``functools.partial`` of one), called as
#: ``family((lookback, num_series), (horizon, num_series))``.
ForecastingBackbone = Callable[[tuple[int, int], tuple[int, int]], nn.Module]


def accepts_keyword(factory: Callable[..., Any], name: str) -> bool:
    """Whether a family class, or a partial of one, declares the keyword argument ``name``.

    jsonargparse hands a configured family over as ``functools.partial(<its instantiator>, <class>,
    **init_args)``, so the class may sit among the partial's arguments rather than be its ``func``.
    """
    candidates = [factory]
    if isinstance(factory, functools.partial):
        if name in factory.keywords:
            return True
        candidates = [factory.func, *factory.args]
    for candidate in candidates:
        if not (isinstance(candidate, type) or inspect.isfunction(candidate)):
            continue
        try:
            if name in inspect.signature(candidate).parameters:
                return True
        except (TypeError, ValueError):
            continue
    return False


class ForecastingTask(Task):
    """Forecast the next ``horizon`` steps of ``num_series`` series from the last ``lookback`` steps.

    Batches are ``(history, future, history_time_features, future_time_features)`` as the forecasting
    DataModules deliver them (``(B, L, N)``, ``(B, H, N)``, ``(B, L, F)``, ``(B, H, F)``), standardised
    with the training split's statistics. The backbone is called with
    ``((lookback, num_series), (horizon, num_series))``; a family that declares a ``num_time_features``
    argument gets the data's number of calendar features and is called as
    ``backbone(history, time_features=history_time_features)``.

    Loss: MSE on the standardised scale (see :meth:`loss`). Metrics, one torchmetrics object per stage
    (summed over the processes of a multi-process run):
    ``<stage>/mse`` and ``<stage>/mae`` on the standardised scale (what the published tables report,
    averaged over every window, step and series; every window of the split, without the old scripts'
    ``drop_last``), ``<stage>/loss`` (= mse), and with
    ``original_scale_metrics`` also ``<stage>/mse_original`` and ``<stage>/mae_original`` in the data's
    units. The best checkpoint is chosen by ``val/mse``. Each validation epoch writes a figure
    ``val/forecasts`` to the run's loggers (:mod:`mlplab.loggers`): history, forecast and truth of the
    target series (the last one) for ``num_logged_series`` validation windows spread over the split.

    Args:
        backbone: The family: its class path and arguments.
        lookback: History length L; filled in from the DataModule.
        horizon: Forecast length H; filled in from the DataModule.
        num_series: Number of series N; filled in from the DataModule.
        num_time_features: Number of calendar features F; filled in from the DataModule.
        revin: Wrap the backbone in reversible instance normalisation (per window and series). The
            families that normalise by themselves in their papers (TimeMixer, PatchTST, both TSMixers)
            do so inside; this is for those that do not, or for experiments.
        revin_affine: Give that RevIN a learnable per-series scale and shift.
        original_scale_metrics: Also report MSE / MAE in the data's original units.
        num_logged_series: Validation windows drawn in the logged figure (0: none).
        optimizer: Optimiser class with its arguments; Adam (the papers' scripts) when not given.
        **kwargs: The LR scheduler and its interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/mse"
    monitor_mode = "min"
    architecture_arguments = ("backbone", "dropped_layers", "revin", "revin_affine")
    evaluation_neutral_arguments = (
        *Task.evaluation_neutral_arguments, "num_logged_series", "original_scale_metrics"
    )  # fmt: skip

    def __init__(
        self,
        backbone: ForecastingBackbone,
        lookback: int,
        horizon: int,
        num_series: int,
        num_time_features: int = 0,
        revin: bool = False,
        revin_affine: bool = False,
        original_scale_metrics: bool = False,
        num_logged_series: int = 4,
        optimizer: OptimizerCallable = torch.optim.Adam,
        **kwargs: Any,
    ):
        super().__init__(optimizer=optimizer, **kwargs)
        self.save_hyperparameters()
        require_positive("ForecastingTask", lookback=lookback, horizon=horizon, num_series=num_series)
        self.lookback, self.horizon, self.num_series = lookback, horizon, num_series
        self.num_time_features = num_time_features
        self.uses_time_features = accepts_keyword(backbone, "num_time_features")
        #: What the task gives the family from the data, over the config's value (read by the run summary).
        self.data_given_backbone_arguments = (
            {"num_time_features": num_time_features} if self.uses_time_features else {}
        )
        if self.uses_time_features:
            self.backbone = self.build_backbone(
                _with_time_features(backbone, num_time_features),
                (lookback, num_series),
                (horizon, num_series),
            )
        else:
            self.backbone = self.build_backbone(backbone, (lookback, num_series), (horizon, num_series))
        self.revin = RevIN(num_series, affine=revin_affine) if revin else None
        self.original_scale_metrics = original_scale_metrics
        self.num_logged_series = num_logged_series
        self.register_buffer("series_mean", torch.zeros(num_series))
        self.register_buffer("series_std", torch.ones(num_series))
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        if original_scale_metrics:
            self.val_original = self._metrics("val", "_original")
            self.test_original = self._metrics("test", "_original")
        self._logged: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._logged_windows: torch.Tensor | None = None

    @staticmethod
    def _metrics(stage: str, postfix: str = "") -> MetricCollection:
        return MetricCollection(
            {"mse": MeanSquaredError(), "mae": MeanAbsoluteError()}, prefix=f"{stage}/", postfix=postfix
        )

    def unused_data_arguments(self) -> set[str]:
        """``num_time_features`` when the family takes no calendar features."""
        return set() if self.uses_time_features else {"num_time_features"}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        for name in ("lookback", "horizon", "num_series"):
            theirs, ours = getattr(datamodule, name, None), getattr(self, name)
            if theirs is not None and theirs != ours:
                raise ConfigError(
                    f"the model was built for {name} {ours} but the data gives {theirs}; "
                    f"{_data_hint(name, ours)} or train a model for {theirs}"
                )
        if getattr(datamodule, "splits", None) is None:
            datamodule.setup(stage)
        self.series_mean.copy_(datamodule.mean.to(self.series_mean))
        self.series_std.copy_(datamodule.std.to(self.series_std))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint trained for another lookback, horizon or number of series."""
        saved = checkpoint.get("hyper_parameters", {})
        for name in ("horizon", "lookback", "num_series"):
            if name in saved and saved[name] != getattr(self, name):
                hint = _data_hint(name, saved[name])
                if name != "num_series":
                    hint += f" (or train a model for {getattr(self, name)})"
                raise CheckpointError(
                    f"the checkpoint's model was built for {name} {saved[name]}, the data now gives "
                    f"{getattr(self, name)}; {hint}"
                )
        super().on_load_checkpoint(checkpoint)

    # ------------------------------------------------------------------------------------ model
    def forward(self, history: torch.Tensor, time_features: torch.Tensor | None = None) -> torch.Tensor:
        """Forecast ``(B, H, N)`` from a standardised history ``(B, L, N)`` (and its time features)."""
        forecast = forecast_with(self.backbone, self.revin, self.uses_time_features, history, time_features)
        if forecast.shape[1:] != (self.horizon, self.num_series):
            raise ConfigError(
                f"{type(self.backbone).__name__} returned forecasts of shape {tuple(forecast.shape[1:])}, "
                f"expected (horizon, num_series) = ({self.horizon}, {self.num_series})"
            )
        return forecast

    def example_backbone_input(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(history (B, L, N), time_features (B, L, F) or None)``, as :meth:`run_backbone` takes them."""
        history = torch.zeros(batch_size, self.lookback, self.num_series)
        if not self.uses_time_features:
            return history, None
        return history, torch.zeros(batch_size, self.lookback, self.num_time_features)

    def run_backbone(
        self, backbone: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor | None]
    ) -> torch.Tensor:
        """The family's forecast of ``(history, time_features)`` (the features passed if it takes them)."""
        return forecast_with(backbone, None, self.uses_time_features, *inputs)

    def inference_module(self) -> nn.Module:
        """The trained model alone, as ``mlplab export`` writes it.

        The family, or with the task's RevIN or calendar features a :class:`Forecaster` around it, called
        as ``(history[, time_features])``.
        """
        if self.revin is None and not self.uses_time_features:
            return self.backbone
        return Forecaster(self.backbone, self.revin, self.uses_time_features)

    def example_inputs(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Inputs of :meth:`inference_module` by name: a standardised ``history`` (and ``time_features``)."""
        inputs = {"history": torch.randn(batch_size, self.lookback, self.num_series, generator=generator)}
        if self.uses_time_features:
            shape = (batch_size, self.lookback, self.num_time_features)
            inputs["time_features"] = torch.rand(shape, generator=generator) - 0.5
        return inputs

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss (mean squared error); override it in a subclass to train with another."""
        return F.mse_loss(predictions, targets)

    def _check_batch(self, history: torch.Tensor, future: torch.Tensor) -> None:
        if future.shape[1] != self.horizon or history.shape[1] != self.lookback:
            raise ConfigError(
                f"the model was built for lookback {self.lookback} and horizon {self.horizon}, but a batch "
                f"has lookback {history.shape[1]} and horizon {future.shape[1]}; build the model for the data"
            )

    # ------------------------------------------------------------------------------------ steps
    def training_loss(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        history, future, history_marks, _ = batch
        self._check_batch(history, future)
        marks = history_marks if self.uses_time_features else None  # what the family is given
        self.record_flops((history, marks))
        return self.loss(self(history, history_marks), future)

    def evaluation_step(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int, stage: str
    ) -> tuple[torch.Tensor, ...]:
        history, future, history_marks, _ = batch
        self._check_batch(history, future)
        predictions = self(history, history_marks).float().contiguous()
        real = self.evaluation_samples(batch_idx, len(history)).count  # later rows pad this process's share
        self.update_stage_metrics(stage, real, predictions, future, F.mse_loss)
        if self.original_scale_metrics and real > 0:
            original = self.val_original if stage == "val" else self.test_original
            original.update(self.to_original_scale(predictions[:real]), self.to_original_scale(future[:real]))
        return history, predictions, future

    def log_evaluation(self, stage: str) -> None:
        self.log(f"{stage}/loss", self.val_loss if stage == "val" else self.test_loss)
        self.log_dict(self.val_metrics if stage == "val" else self.test_metrics, prog_bar=stage == "val")
        if self.original_scale_metrics:
            self.log_dict(self.val_original if stage == "val" else self.test_original)

    def to_original_scale(self, values: torch.Tensor) -> torch.Tensor:
        """Undo the DataModule's standardisation of ``(..., N)`` values."""
        return values * self.series_std + self.series_mean

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        history, predictions, future = self.evaluation_step(batch, batch_idx, "val")
        self._keep_for_figure(batch_idx, history, predictions, future)

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> dict[str, Any]:
        """Forecasts in the data's units: ``history``, ``predictions`` and ``targets`` (NaN when unknown).

        The batch is standardised with the DataModule's statistics; the model sees it standardised with
        its own (those it was trained with, from the checkpoint), which differ when the file has grown
        since: new rows move the training split's statistics.
        """
        history, future, history_marks, _ = batch
        self._check_batch(history, future)
        if getattr(self.backbone, "pairs_across_batch", False):
            say_once(
                f"{type(self.backbone).__name__} pairs the series of each window with the calendar features "
                "of other windows of its batch (time_feature_pairing: official, as the published code): "
                "each forecast depends on the windows predicted with it (data.eval_batch_size, the split); "
                "a model trained with time_feature_pairing: window forecasts each window alone",
                warning=True,
            )
        mean, std = self._data_statistics()
        history, future = history * std + mean, future * std + mean
        model_history = (history - self.series_mean) / self.series_std
        predictions = self.to_original_scale(self(model_history, history_marks).float())
        return {"history": history, "predictions": predictions, "targets": future}

    def _data_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and std the DataModule standardised the batches with (the model's without one)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        mean, std = getattr(datamodule, "mean", None), getattr(datamodule, "std", None)
        if not (isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)):
            return self.series_mean, self.series_std
        return mean.to(self.series_mean), std.to(self.series_std)

    # ---------------------------------------------------------------------------------- figures
    def _keep_for_figure(
        self, batch_idx: int, history: torch.Tensor, predictions: torch.Tensor, future: torch.Tensor
    ) -> None:
        """Keep ``num_logged_series`` windows spread over the validation split (first batch, spread rows)."""
        if self.num_logged_series <= 0 or self.trainer.sanity_checking or batch_idx != 0:
            return
        count = min(self.num_logged_series, len(history))
        rows = torch.linspace(0, len(history) - 1, count).long().to(history.device)
        self._logged = (history[rows], predictions[rows], future[rows])

    def forecast_figure(self):
        """A matplotlib figure of the kept validation windows: history, forecast and truth of the target."""
        if self._logged is None:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        history, predictions, future = (t.detach().float().cpu()[..., -1] for t in self._logged)
        count = len(history)
        figure, axes = plt.subplots(count, 1, figsize=(8, 1.8 * count), squeeze=False)
        past = torch.arange(-self.lookback, 0)
        ahead = torch.arange(0, self.horizon)
        for i, axis in enumerate(axes[:, 0]):
            axis.plot(past, history[i], color="0.4", linewidth=0.8, label="history")
            axis.plot(ahead, future[i], color="tab:blue", linewidth=0.8, label="truth")
            axis.plot(ahead, predictions[i], color="tab:orange", linewidth=0.8, label="forecast")
            axis.axvline(0, color="0.7", linewidth=0.5)
        axes[0, 0].legend(loc="upper left", fontsize="small", ncol=3)
        axes[-1, 0].set_xlabel("steps from the forecast origin (target series, standardised)")
        figure.tight_layout()
        return figure

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.trainer.sanity_checking or self._logged is None or not self.trainer.is_global_zero:
            return  # rank 0 writes the figure (of its own first validation batch)
        if not self.loggers:
            return
        figure = self.forecast_figure()
        log_figure(self.loggers, "val/forecasts", figure, self.global_step)
        import matplotlib.pyplot as plt

        plt.close(figure)


def forecast_with(
    backbone: nn.Module,
    revin: RevIN | None,
    uses_time_features: bool,
    history: torch.Tensor,
    time_features: torch.Tensor | None = None,
) -> torch.Tensor:
    """The family's forecast of a standardised history, inside RevIN when there is one.

    Raises:
        ConfigError: The family was built with calendar features (its ``num_time_features`` above 0) and
            none are given: it would forecast without them, unlike in training, and say nothing.
    """
    features = getattr(backbone, "num_time_features", 0) if uses_time_features else 0
    if time_features is None and isinstance(features, int) and features > 0:
        raise ConfigError(
            f"{type(backbone).__name__} was trained with {features} calendar features of the history's "
            f"dates: call it as model(history, time_features) with time_features (B, L, {features}), "
            "mlplab.data.timeseries.time_features(dates, freq) of the history's dates (freq: "
            "run.preprocessing['freq'])"
        )
    stats = None
    if revin is not None:
        history, stats = revin.normalize(history)
    if uses_time_features:
        forecast = backbone(history, time_features=time_features)
    else:
        forecast = backbone(history)
    return revin.denormalize(forecast, stats) if stats is not None else forecast


class Forecaster(nn.Module):
    """A trained forecasting family with the task's RevIN and calendar features: ``(history[, features])``.

    The submodules are the task's own (``backbone``, ``revin``), so the weights keep their names.
    """

    def __init__(self, backbone: nn.Module, revin: RevIN | None, uses_time_features: bool):
        super().__init__()
        self.backbone = backbone
        self.revin = revin
        self.uses_time_features = uses_time_features

    def forward(self, history: torch.Tensor, time_features: torch.Tensor | None = None) -> torch.Tensor:
        return forecast_with(self.backbone, self.revin, self.uses_time_features, history, time_features)

    @property
    def output_description(self) -> str:
        """What the output is, in words (``mlplab export`` writes it into ``config.json``)."""
        text = (
            "forecasts of the standardised series (times the preprocessing's std plus its mean: the data's "
            "units), given the standardised history"
        )
        if getattr(self.backbone, "pairs_across_batch", False):
            text += (
                "; each window's forecast depends on the other windows of its batch (time_feature_pairing: "
                "official, as the published code), so forecasts differ with what is batched together"
            )
        return text


def _data_hint(name: str, value: int) -> str:
    """How to give the model's ``lookback``, ``horizon`` or ``num_series`` (``value``) to the data."""
    if name == "num_series":  # not an argument: the data's columns and settings decide it
        return f"use the data settings it was trained with ({DATA_SETTINGS})"
    return f"set data.init_args.{name}: {value}"


def _with_time_features(
    factory: Callable[..., nn.Module], num_time_features: int
) -> Callable[..., nn.Module]:
    """``factory`` with ``num_time_features`` filled in (overriding a value given in the config)."""

    def build(*shapes: Any) -> nn.Module:
        return factory(*shapes, num_time_features=num_time_features)

    return build
