"""Multivariate time series from CSV files, windowed with the long-horizon forecasting protocol.

The protocol is the one of Time-Series-Library (thuml/Time-Series-Library, ``data_provider/
data_loader.py``), which the published long-horizon tables (Informer, Autoformer, DLinear, PatchTST,
TimeMixer, ...) use:

* **Splits by fixed borders.** ETT: 12 / 4 / 4 months, i.e. hourly rows train ``[0, 8640)``, validation
  ``[8640 - L, 11520)``, test ``[11520 - L, 14400)`` (×4 for the 15-minute sets); every other CSV:
  70 / 10 / 20 % of the rows, train ``[0, n_train)``, validation ``[n_train - L, n_train + n_val)``, test
  ``[T - n_test - L, T)``. Validation and test start ``L`` rows early so that their first forecast
  begins right after the previous split.
* **Standardisation** of every series with the mean and (population) standard deviation of the
  training rows only (scikit-learn's ``StandardScaler``).
* **Windows** of lookback ``L`` and horizon ``H`` at stride 1: a split of ``R`` rows has ``R - L - H + 1``
  windows, and none is dropped in validation or test (older code dropped the last incomplete batch; at
  ETTh1, H=96 the test set has exactly 2,785 windows for any L). Training shuffles the windows every
  epoch and drops its last incomplete batch.
* **Time features** from the date column: Time-Series-Library's ``timeF`` encoding, each in
  [-0.5, 0.5] (for ``freq='h'``: hour of day, day of week, day of month, day of year); none for a
  file without dates.

Batches are ``(history, future, history_time_features, future_time_features)`` with shapes
``(B, L, N)``, ``(B, H, N)``, ``(B, L, F)`` and ``(B, H, F)``, float32, standardised. The series are
held in memory as one tensor (on the accelerator when training there) and windows are gathered by
index from strided views, so a batch costs one indexing operation and no Python work per sample.
"""

from __future__ import annotations

import csv
import gzip
import itertools
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import torch

from mlplab.data.common import (
    fetch_file,
    missing_data_message,
    require_trained_setting,
    resolve_data_dir,
    say_once,
)
from mlplab.data.in_memory import InMemoryDataModule
from mlplab.errors import (
    CheckpointError,
    ConfigError,
    DataCorruptError,
    DataNotFoundError,
    require_positive,
)

Features = Literal["M", "S"]
Split = Literal["train", "val", "test", "future"]

#: Time-Series-Library's ``timeF`` features per frequency (``utils/timefeatures.py``).
TIME_FEATURES: dict[str, tuple[str, ...]] = {
    "s": ("second", "minute", "hour", "weekday", "monthday", "yearday"),
    "t": ("minute", "hour", "weekday", "monthday", "yearday"),
    "h": ("hour", "weekday", "monthday", "yearday"),
    "d": ("weekday", "monthday", "yearday"),
    "b": ("weekday", "monthday", "yearday"),
    "m": ("month",),
}
FREQ_ALIASES = {"min": "t", "10min": "t", "15min": "t", "5min": "t", "1h": "h", "hourly": "h", "daily": "d"}
DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d",
    "%Y/%m/%d",
)


def canonical_freq(freq: str) -> str:
    """The key of :data:`TIME_FEATURES` for a frequency name (``h``, ``t``/``min``, ``d``, ...)."""
    key = FREQ_ALIASES.get(freq.lower(), freq.lower())
    if key not in TIME_FEATURES:
        raise ConfigError(
            f"freq must be one of {', '.join(sorted(TIME_FEATURES))} (or min / auto), got {freq!r}"
        )
    return key


def parse_dates(values: list[str], path: Path) -> np.ndarray:
    """Parse date strings to ``datetime64[s]`` (ISO first, then a few common formats)."""
    try:
        return np.array(values, dtype="datetime64[s]")
    except ValueError:
        pass
    for fmt in DATE_FORMATS:
        try:
            return np.array([datetime.strptime(v.strip(), fmt) for v in values], dtype="datetime64[s]")
        except ValueError:
            continue
    raise DataCorruptError(
        f"{path}: cannot read the dates (first one: {values[0]!r}); write them as YYYY-MM-DD HH:MM:SS"
    )


def time_features(dates: np.ndarray, freq: str) -> np.ndarray:
    """Time-Series-Library's ``timeF`` encoding of ``datetime64`` dates: ``(T, F)`` float32 in [-0.5, 0.5]."""
    days = dates.astype("datetime64[D]")
    seconds = (dates - days).astype("timedelta64[s]").astype(np.int64)
    columns = {
        "second": (seconds % 60) / 59.0 - 0.5,
        "minute": ((seconds // 60) % 60) / 59.0 - 0.5,
        "hour": (seconds // 3600) / 23.0 - 0.5,
        "weekday": ((days.astype(np.int64) + 3) % 7) / 6.0 - 0.5,  # 1970-01-01 was a Thursday (3)
        "monthday": (days - days.astype("datetime64[M]")).astype(np.int64) / 30.0 - 0.5,
        "yearday": (days - days.astype("datetime64[Y]")).astype(np.int64) / 365.0 - 0.5,
        "month": (days.astype("datetime64[M]").astype(np.int64) % 12) / 11.0 - 0.5,
    }
    names = TIME_FEATURES[canonical_freq(freq)]
    return np.stack([columns[name] for name in names], axis=1).astype(np.float32)


def infer_freq(dates: np.ndarray) -> str:
    """The ``timeF`` frequency matching the median spacing of ``dates``."""
    step = int(np.median(np.diff(dates).astype("timedelta64[s]").astype(np.int64)))
    if step < 60:
        return "s"
    if step < 3600:
        return "t"
    if step < 86400:
        return "h"
    if step < 28 * 86400:
        return "d"
    return "m"


def next_dates(dates: np.ndarray, count: int) -> np.ndarray:
    """``count`` dates after the last of ``dates`` at their median spacing (in months for monthly data)."""
    last = dates[-1]
    if infer_freq(dates) == "m":
        months = np.median(np.diff(dates.astype("datetime64[M]")).astype(np.int64))
        start = last.astype("datetime64[M]")
        offset = last - start  # the day and time within the month
        ahead = start + (np.arange(1, count + 1) * max(int(months), 1)).astype("timedelta64[M]")
        return (ahead.astype("datetime64[s]") + offset).astype(dates.dtype)
    step = np.median(np.diff(dates).astype("timedelta64[s]").astype(np.int64))
    return last + (np.arange(1, count + 1) * int(step)).astype("timedelta64[s]")


#: What decides a forecasting DataModule's series and their order (in messages).
DATA_SETTINGS = "file, columns, features, target"


def open_text(path: Path) -> TextIO:
    """``path`` opened as text for the ``csv`` module, decompressed on the fly when it ends in ``.gz``.

    A byte order mark (Excel's "CSV UTF-8" writes one) is dropped, so that it does not stick to the
    first column's name.
    """
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def read_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """The non-empty rows of a CSV file (the first ``limit`` of them), cells stripped of spaces."""
    try:
        with open_text(path) as handle:
            rows = ([cell.strip() for cell in row] for row in csv.reader(handle) if row)
            return list(rows if limit is None else itertools.islice(rows, limit))
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as error:
        raise DataCorruptError(f"cannot read {path} as a CSV file ({error})") from error


def is_number(cell: str) -> bool:
    """Whether a CSV cell holds a number (``nan`` and ``inf`` count)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def is_date(cell: str) -> bool:
    """Whether a CSV cell holds a date or time in a format :func:`parse_dates` reads (numbers never do)."""
    if not cell or is_number(cell):
        return False
    try:
        parse_dates([cell], Path(""))
    except DataCorruptError:
        return False
    return True


def is_header(row: list[str]) -> bool:
    """Whether a CSV's first row names its columns: unless it holds only numbers (and a date in front)."""
    cells = row[1:] if row and is_date(row[0]) else row
    return not all(is_number(cell) for cell in cells)


def read_series(
    path: Path, header: bool, date_index: int | None, indices: list[int], names: list[str]
) -> tuple[np.ndarray | None, np.ndarray]:
    """Read the dates (``datetime64[s]`` ``(T,)``, or ``None``) and the chosen series (float64 ``(T, N)``).

    Args:
        path: The CSV file (``.csv`` or ``.csv.gz``).
        header: Whether the first row names the columns (it is skipped).
        date_index: Position of the date column, or ``None`` for none.
        indices: Positions of the series to read, in order.
        names: Their names, for messages.

    Raises:
        DataCorruptError: A value is not a number, or a series has missing values (NaN or empty cells)
            or infinite ones (``inf``, or a number beyond float64's range such as ``1e400``).
    """
    rows = read_rows(path)[1 if header else 0 :]
    if not rows:
        raise DataCorruptError(f"{path} has a header but no rows")
    dates = (
        [row[date_index] if date_index < len(row) else "" for row in rows] if date_index is not None else None
    )
    text = np.array([[row[i] if i < len(row) else "" for i in indices] for row in rows], dtype=str)
    where = (lambda row: f" ({dates[row]})") if dates is not None else (lambda row: "")
    text[text == ""] = "nan"
    try:
        values = text.astype(np.float64)
    except ValueError as error:
        raise DataCorruptError(
            f"{path}: a value is not a number ({error}); series must be numeric"
        ) from error
    missing = np.isnan(values)
    if missing.any():
        row, column = (int(i) for i in np.argwhere(missing)[0])
        raise DataCorruptError(
            f"{path} has {int(missing.sum())} missing values (NaN or empty), the first in column "
            f"{names[column]!r} at data row {row}{where(row)}; fill or drop them before training"
        )
    infinite = np.isinf(values)
    if infinite.any():
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        raise DataCorruptError(
            f"{path} has {int(infinite.sum())} infinite values (inf, or beyond float64's range), the first "
            f"in column {names[column]!r} at data row {row}{where(row)}: {text[row, column]!r}; "
            "fix or drop them before training"
        )
    return (parse_dates(dates, path) if dates is not None else None), values


class ForecastingDataModule(InMemoryDataModule):
    """Base class: a CSV of series, split, standardised and windowed (see the module docstring).

    Subclasses say where the file comes from (:meth:`locate`) and where the splits end
    (:meth:`borders`). What the task needs is known right after ``__init__`` (the CLI links these
    attributes to the task's arguments of the same name): ``lookback``, ``horizon``, ``num_series`` and
    ``num_time_features``; ``series_names`` lists the series in their order.

    The file may be gzip-compressed (``.csv.gz``), may lack a header line (its columns are then named
    by position, ``"0"``, ``"1"``, ...: ``target: "3"``) and may lack a date column: the rows are then
    an integer time index (0, 1, ...) and the windows carry no calendar features (``num_time_features``
    0), which is said once. Without a header, a first column of dates is the date column.

    ``predict`` forecasts the windows of ``predict_split``: ``test`` (default), ``val`` or ``train``, or
    ``future``: one window from the last ``lookback`` rows of the file, forecasting the ``horizon`` steps
    after its end (dates continued at the data's spacing). :meth:`prediction_table` gives the forecasts
    with their dates and series names (``mlplab predict`` writes it beside ``predictions.pt``).

    Args:
        lookback: History length L of every window.
        horizon: Forecast length H of every window.
        features: ``M``: every series in and out (multivariate); ``S``: only ``target`` (univariate).
        target: The target series: the only one for ``S``, the last one for ``M`` (as
            Time-Series-Library orders them) and the one drawn in the forecast figures. ``None``: ``OT``
            when the file has such a column (Time-Series-Library's default), else its last series.
        date_column: Name of the date column; ``None``: the file has none (an integer time index). A
            file with no column of dates at all needs neither.
        header: Whether the first row names the columns; ``None``: it does unless it holds only numbers
            (after a date).
        freq: Time-feature set: ``h`` (hour, weekday, day of month, day of year), ``t`` / ``min`` (plus
            minute), ``s``, ``d``, ``b``, ``m``; ``None`` or ``auto``: from the spacing of the dates (a
            given one that disagrees with the dates is used, with a warning). Time-Series-Library's
            scripts use ``h`` for every dataset; ``ETTDataModule`` does too unless told otherwise.
        scale: Standardise the series with the training rows' statistics.
        batch_size: Training batch size.
        eval_batch_size: Validation / test / prediction batch size; ``None`` means ``batch_size``.
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        predict_split: The windows ``predict`` forecasts: ``test``, ``val``, ``train`` or ``future``.
        data_dir: Folder of the data files; ``None`` means ``$MLPLAB_DATA`` if set, else ``./data``.
        download: Download a missing file when online (where a public URL is known).
        on_device: Keep the series on the accelerator; ``None``: on a GPU, when they fit easily.
    """

    #: Human name of the dataset, used in messages.
    display_name: str = "dataset"
    #: The time-feature set used when ``freq`` is not given (``None``: from the dates).
    default_freq: str | None = None
    summary = ("lookback", "horizon", "num_series")
    evaluation_neutral_arguments = (
        *InMemoryDataModule.evaluation_neutral_arguments, "predict_split", "download"
    )  # fmt: skip

    def __init__(
        self,
        lookback: int = 96,
        horizon: int = 96,
        features: Features = "M",
        target: str | None = None,
        date_column: str | None = "date",
        header: bool | None = None,
        freq: str | None = None,
        scale: bool = True,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        shuffle_seed: int | None = None,
        predict_split: Literal["test", "val", "train", "future"] = "test",
        data_dir: str | None = None,
        download: bool = True,
        on_device: bool | None = None,
    ):
        super().__init__(batch_size, eval_batch_size, shuffle_seed, on_device)
        name = type(self).__name__
        require_positive(name, lookback=lookback, horizon=horizon)
        if features not in ("M", "S"):
            raise ConfigError(
                f"{name}: features must be 'M' (multivariate) or 'S' (target only), got {features!r}"
            )
        if predict_split not in ("test", "val", "train", "future"):
            raise ConfigError(
                f"{name}: predict_split must be test, val, train or future, got {predict_split!r}"
            )
        self.lookback = lookback
        self.horizon = horizon
        self.features = features
        self.scale = scale
        self.predict_split = predict_split
        self.loader_splits = {**type(self).loader_splits, "predict": predict_split}
        self.data_dir = resolve_data_dir(data_dir)
        self.download = download

        self.path = self.locate()
        first = read_rows(self.path, limit=65)
        if not first:
            raise DataCorruptError(
                f"{self.path} is empty: expected rows of series (after a header line naming the columns)"
            )
        self.header = is_header(first[0]) if header is None else header
        self.columns = first[0] if self.header else [str(i) for i in range(len(first[0]))]
        sample = first[1:] if self.header else first
        if not sample:
            raise DataCorruptError(f"{self.path} has a header but no rows")
        self.date_column = self._find_date_column(date_column, sample)
        self.target = self._find_target(target)
        others = [c for c in self.columns if c not in (self.date_column, self.target)]
        self.series_names: list[str] = [self.target] if features == "S" else [*others, self.target]
        self.num_series = len(self.series_names)
        self.freq = self._find_freq(freq, sample)
        self.num_time_features = len(TIME_FEATURES[self.freq]) if self.freq else 0

        self.mean = torch.zeros(self.num_series)
        self.std = torch.ones(self.num_series)
        self.num_rows = 0
        #: The scaler (mean, std) of the checkpoint being evaluated or resumed (its
        #: :meth:`load_state_dict`): the splits are standardised with it rather than with statistics
        #: recomputed from the file, which differ once the file has grown.
        self.checkpoint_scaler: tuple[torch.Tensor, torch.Tensor] | None = None
        #: The file's rows when the checkpoint's model was trained (None: no checkpoint, or an older one).
        self.trained_rows: int | None = None
        #: The time of every row, then of the ``horizon`` steps after the data (``datetime64[s]``, or the
        #: integer index without a date column); filled by :meth:`setup`.
        self.times: np.ndarray | None = None

    # ----------------------------------------------------------------------------------- subclasses
    def locate(self) -> Path:
        """The CSV file, downloaded first where that is possible."""
        raise NotImplementedError

    def borders(self, num_rows: int) -> dict[str, tuple[int, int]]:
        """Row ranges ``[start, stop)`` of the train / val / test splits.

        Validation and test include ``lookback`` rows of history before their first forecast.
        """
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- columns
    def _find_date_column(self, date_column: str | None, sample: list[list[str]]) -> str | None:
        """The date column: as given, else the first column of a header-less file holding dates, else none.

        None (an integer time index) only when no column holds dates.
        """
        if date_column is not None and date_column in self.columns:
            return date_column
        first_row = sample[0] if sample else []
        dated = [name for name, cell in zip(self.columns, first_row) if is_date(cell)]
        if date_column is not None and dated and (self.header or dated[0] != self.columns[0]):
            raise ConfigError(
                f"{self.path.name} has no date column {date_column!r} (its columns: "
                f"{', '.join(self.columns)}); set data.init_args.date_column to one of them"
            )
        if dated and date_column is not None:
            return dated[0]  # no header: the first column holds the dates
        if date_column is None and dated:
            raise ConfigError(
                f"{self.path.name}: date_column is null but column {dated[0]!r} holds dates "
                f"({first_row[self.columns.index(dated[0])]!r}); name it or drop it from the file"
            )
        say_once(
            f"{self.path.name} has no date column: its rows are an integer time index (0, 1, ...) and the "
            "windows carry no calendar features"
        )
        return None

    def _find_target(self, target: str | None) -> str:
        candidates = [c for c in self.columns if c != self.date_column]
        if target is None:
            if not candidates:
                raise DataCorruptError(f"{self.path} has no series besides its date column")
            return "OT" if "OT" in candidates else candidates[-1]
        if target not in candidates:
            raise ConfigError(
                f"{self.path.name} has no target {target!r} (its columns: {', '.join(self.columns)}); set "
                "data.init_args.target to one of them"
            )
        return target

    def _find_freq(self, freq: str | None, sample: list[list[str]]) -> str | None:
        """The time-feature set: as given (warned when the dates disagree), the default, or the dates'."""
        given = None if freq is None or freq.lower() == "auto" else canonical_freq(freq)
        if self.date_column is None:
            return None
        index = self.columns.index(self.date_column)
        dates = [row[index] for row in sample if index < len(row)]
        if len(dates) < 2:
            raise DataCorruptError(f"{self.path} has fewer than two rows: cannot infer the date spacing")
        parsed = parse_dates(dates, self.path)
        steps = np.diff(parsed)
        typical = np.median(steps.astype(np.int64))
        if typical <= 0:  # a file newest first, or one time repeated
            i = int(np.argmax(steps <= np.timedelta64(0, "s")))
            shown = " then ".join(str(d).replace("T", " ") for d in parsed[i : i + 2])
            backwards = typical < 0
            how = "go backwards" if backwards else "do not advance"
            fix = "sort the rows oldest first" if backwards else "give each row its own time, oldest first"
            raise DataCorruptError(f"{self.path.name}: the dates {how} ({shown}, ...): {fix}")
        inferred = infer_freq(parsed)
        if given is None:
            return canonical_freq(self.default_freq) if freq is None and self.default_freq else inferred
        if given != inferred and {given, inferred} != {"b", "d"}:
            say_once(
                f"freq {freq!r} is given but the dates of {self.path.name} are spaced as freq "
                f"{inferred!r}: the calendar features follow the given {freq!r}",
                warning=True,
            )
        return given

    # ---------------------------------------------------------------------------------------- data
    def window_count(self, split: Split) -> int:
        """Number of windows in a split (available after :meth:`setup`)."""
        if split == "future":
            return 1
        start, stop = self.borders(self.num_rows)[split]
        return (stop - start) - self.lookback - self.horizon + 1

    def build_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Series and calendar features of each split, standardised with the training rows' statistics.

        Besides ``train``, ``val`` and ``test``, ``future`` holds the last ``lookback`` rows followed by
        ``horizon`` rows of NaN (the unknown future) and the calendar features of its dates.
        """
        date_index = self.columns.index(self.date_column) if self.date_column is not None else None
        dates, values = read_series(
            self.path,
            self.header,
            date_index,
            [self.columns.index(name) for name in self.series_names],
            self.series_names,
        )
        self.num_rows = len(values)
        borders = self.borders(self.num_rows)
        name = type(self).__name__
        for split, (start, stop) in borders.items():
            rows = stop - start
            if start < 0 or rows < self.lookback + self.horizon:
                raise ConfigError(
                    f"{name}: the {split} split of {self.path.name} ({self.num_rows} rows) has "
                    f"{rows} rows, fewer than lookback + horizon = {self.lookback} + {self.horizon}; "
                    "use a shorter lookback or horizon, or a longer series"
                )
        self._say_if_rows_differ()
        train_start, train_stop = borders["train"]
        if self.scale:
            if self.checkpoint_scaler is not None:
                mean, std = (statistic.double().numpy() for statistic in self.checkpoint_scaler)
            else:
                train = values[train_start:train_stop]
                mean, std = train.mean(axis=0), train.std(axis=0)
                std = np.where(std > 0, std, 1.0)
            values = (values - mean) / std
            self.mean, self.std = (
                torch.tensor(mean, dtype=torch.float32),
                torch.tensor(std, dtype=torch.float32),
            )
        series = torch.tensor(values, dtype=torch.float32)
        if not torch.isfinite(series).all() or not torch.isfinite(self.std).all():
            raise DataCorruptError(
                f"{self.path}: values too large for float32"
                + (" once standardised" if self.scale else "")
                + f" (largest magnitude {np.abs(values).max():g}); rescale the series"
            )
        if dates is None:
            self.times = np.arange(self.num_rows + self.horizon)
            marks = torch.zeros(self.num_rows + self.horizon, 0)
        else:
            self.times = np.concatenate([dates, next_dates(dates, self.horizon)])
            marks = torch.from_numpy(time_features(self.times, self.freq))
        splits = {
            split: (series[start:stop].contiguous(), marks[start:stop].contiguous())
            for split, (start, stop) in borders.items()
        }
        unknown = torch.full((self.horizon, self.num_series), float("nan"))
        splits["future"] = (
            torch.cat([series[-self.lookback :], unknown]),
            marks[-self.lookback - self.horizon :],
        )
        return splits

    def split_start(self, split: str) -> int:
        """The file row where a split's first window begins (available after :meth:`setup`)."""
        if split == "future":
            return self.num_rows - self.lookback
        return self.borders(self.num_rows)[split][0]

    def prediction_table(self, outputs: dict[str, torch.Tensor], first_window: int = 0, every: int = 1):
        """The forecasts of ``predict`` as table columns, one row per window and forecast step.

        Columns: ``origin`` (the time of the window's last observed row), ``date`` (the time forecast),
        ``step`` (1 ... H), the forecast of every series under its name and, when any truth is known
        (not for ``future``), the truth as ``<name>_true`` (NaN where it is not known: windows that reach
        past the data's end). Times are dates, or row numbers without a date column.

        Args:
            outputs: What the task's ``predict_step`` returned, concatenated: ``predictions`` (and
                ``targets``), ``(W, H, N)``, in the data's units.
            first_window: Index (in the split) of the first window in ``outputs``; ``every``: the step
                between windows (a process of several takes every ``world_size``-th window).
            every: See ``first_window``.

        Returns:
            Column name -> 1-D NumPy array, in column order.
        """
        if self.times is None:
            self.setup()
        predictions = outputs["predictions"].detach().float().cpu().numpy()
        windows, horizon, _ = predictions.shape
        window_index = first_window + every * np.arange(windows)
        origin_rows = self.split_start(self.predict_split) + self.lookback - 1 + window_index
        rows = origin_rows[:, None] + 1 + np.arange(horizon)[None, :]
        columns: dict[str, np.ndarray] = {
            "origin": np.repeat(self.times[origin_rows], horizon),
            "date": self.times[rows].reshape(-1),
            "step": np.tile(np.arange(1, horizon + 1), windows),
        }
        flat = predictions.reshape(windows * horizon, -1)
        for i, name in enumerate(self.series_names):
            columns[name] = flat[:, i]
        targets = outputs.get("targets")
        if targets is not None and torch.isfinite(targets).any():  # NaN where unknown; none for `future`
            truth = targets.detach().float().cpu().numpy().reshape(windows * horizon, -1)
            for i, name in enumerate(self.series_names):
                columns[f"{name}_true"] = truth[:, i]
        return columns

    def state_dict(self) -> dict[str, Any]:
        """What a user of the trained model needs to prepare its inputs, kept in checkpoints.

        The series in order, the standardisation (``x = (values - mean) / std`` per series), the window
        lengths and the calendar features; :func:`mlplab.load_run` returns it as the run's
        ``preprocessing``.
        """
        return {
            "preprocessing": {
                "series_names": list(self.series_names),
                "target": self.target,
                "date_column": self.date_column,
                "freq": self.freq,
                "num_time_features": self.num_time_features,
                "lookback": self.lookback,
                "horizon": self.horizon,
                "scale": self.scale,
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "num_rows": self.trained_rows if self.trained_rows is not None else self.num_rows,
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the checkpoint's scaler; refuse, in one line, a checkpoint trained on other series or scaling.

        The model reads the series by position (and ``predict`` applies the checkpoint's scaler by
        position), so another ``target`` (it goes last), ``features`` or file would silently feed each
        series to the weights of another; ``scale`` other than the checkpoint's would feed it values on
        another scale. The splits (of ``test``, ``validate``, ``predict`` and a resumed fit) are
        standardised with the checkpoint's mean and std, those of the training split the model was
        trained on: statistics recomputed from a file that has grown since would differ, so the model
        would see inputs scaled otherwise and the metrics on the standardised scale would not compare
        with the training run's. When the file's rows differ from the training run's, that is said once.
        """
        preprocessing = state.get("preprocessing", {})
        saved = preprocessing.get("series_names")
        if saved is not None and list(saved) != list(self.series_names):
            raise CheckpointError(
                f"the checkpoint's model was trained on the series {', '.join(saved)} in this order, the "
                f"data now gives {', '.join(self.series_names)}; use the data settings it was trained with "
                f"({DATA_SETTINGS})"
            )
        require_trained_setting("scale", preprocessing.get("scale"), self.scale, "values")
        rows = preprocessing.get("num_rows")
        self.trained_rows = int(rows) if rows is not None else None
        mean, std = preprocessing.get("mean"), preprocessing.get("std")
        if self.scale and mean is not None and std is not None:
            self.checkpoint_scaler = (
                torch.tensor(mean, dtype=torch.float32),
                torch.tensor(std, dtype=torch.float32),
            )
            if self.splits is not None:  # set up already (Lightning restores after setup): standardise again
                same = torch.equal(self.mean, self.checkpoint_scaler[0]) and torch.equal(
                    self.std, self.checkpoint_scaler[1]
                )
                if not same:
                    if self.trained_rows is None:
                        say_once(
                            f"{self.path.name}: the training split's mean and std differ from the "
                            "checkpoint's (the file has changed since): its splits are standardised with "
                            "the checkpoint's"
                        )
                    self.splits = None
                    self.setup()
        if self.splits is not None:
            self._say_if_rows_differ()
        super().load_state_dict(state)

    def _say_if_rows_differ(self) -> None:
        """Say once that the file's rows differ from those the checkpoint's model was trained on."""
        if self.trained_rows is None or self.trained_rows == self.num_rows:
            return
        scaled = ", standardised with the checkpoint's scaler (the training split's mean and std then)"
        say_once(
            f"{self.path.name} has {self.num_rows} rows, {self.trained_rows} when the checkpoint's model was "
            f"trained: the splits follow the file as it is now{scaled if self.scale else ''}"
        )

    # ------------------------------------------------------------------------------------- loaders
    def split_tensors(self, split: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.windows(split)

    def windows(self, split: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Strided views of a split's windows: ``(W, N, L)``, ``(W, N, H)``, ``(W, F, L)``, ``(W, F, H)``.

        No data is copied; indexing a view gathers a batch.
        """
        if self.splits is None:
            self.setup()
        series, marks = self.splits[split]
        lookback, horizon = self.lookback, self.horizon
        return (
            series[:-horizon].unfold(0, lookback, 1),
            series[lookback:].unfold(0, horizon, 1),
            marks[:-horizon].unfold(0, lookback, 1),
            marks[lookback:].unfold(0, horizon, 1),
        )

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, ...], dataloader_idx: int):
        """Windows come as ``(B, N, L)`` from the strided views; the models take ``(B, L, N)``."""
        return tuple(t.transpose(1, 2).contiguous() for t in batch)


# Canonical sources. Only ETTh1's checksum could be recorded here (from the file in ../shared/data);
# the other files are checked by structure (columns, rows, NaNs) when read.
ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
ETT_SHA256 = {"ETTh1": "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"}


class ETTDataModule(ForecastingDataModule):
    """Electricity Transformer Temperature (Zhou et al., Informer, AAAI 2021): ETTh1, ETTh2, ETTm1, ETTm2.

    Seven series (HUFL, HULL, MUFL, MULL, LUFL, LULL and the target OT), hourly (``ETTh*``, 17,420 rows)
    or every 15 minutes (``ETTm*``, 69,680 rows). Splits by the fixed 12 / 4 / 4-month borders of
    Time-Series-Library (hourly train ``[0, 8640)``, val ``[8640 - L, 11520)``, test ``[11520 - L, 14400)``;
    ×4 for ``ETTm*``); the rows after month 20 are not used. The file ``<name>.csv`` is read from the
    data folder and downloaded from github.com/zhouhaoyi/ETDataset when missing (ETTh1 is checked
    against its sha256).

    Args:
        name: Which of the four datasets.
        **kwargs: See :class:`ForecastingDataModule`.
    """

    display_name = "ETT"
    default_freq = "h"  # Time-Series-Library's scripts, for the 15-minute sets too

    def __init__(self, name: Literal["ETTh1", "ETTh2", "ETTm1", "ETTm2"] = "ETTh1", **kwargs):
        if name not in ("ETTh1", "ETTh2", "ETTm1", "ETTm2"):
            raise ConfigError(f"ETTDataModule: name must be ETTh1, ETTh2, ETTm1 or ETTm2, got {name!r}")
        self.name = name
        super().__init__(**kwargs)

    def locate(self) -> Path:
        return fetch_file(
            self.data_dir,
            f"{self.name}.csv",
            ETT_URL.format(name=self.name),
            ETT_SHA256.get(self.name),
            self.name,
            download=self.download,
        )

    def borders(self, num_rows: int) -> dict[str, tuple[int, int]]:
        month = 30 * 24 * (4 if self.name.startswith("ETTm") else 1)
        train, val, test = 12 * month, 16 * month, 20 * month
        if num_rows < test:
            raise DataCorruptError(
                f"{self.path} has {num_rows} rows but the {self.name} borders need {test}; "
                "the file is truncated: delete it and download it again"
            )
        lookback = self.lookback
        return {"train": (0, train), "val": (train - lookback, val), "test": (val - lookback, test)}


#: Where the usual long-horizon CSVs come from (Autoformer's collection of the six datasets).
AUTOFORMER_COLLECTION = "the Autoformer dataset collection (github.com/thuml/Autoformer, 'all_six_datasets')"
CSV_SOURCES = {
    name: AUTOFORMER_COLLECTION
    for name in ("weather.csv", "electricity.csv", "traffic.csv", "exchange_rate.csv")
}


class CSVDataModule(ForecastingDataModule):
    """Any CSV of numeric series, split 70 / 10 / 20 % (Time-Series-Library's custom data).

    For Weather, Electricity, Traffic, Exchange-rate or your own file; the splits are those of
    Time-Series-Library's ``Dataset_Custom``. The file may be gzip-compressed, lack a header line or
    lack a date column (see :class:`ForecastingDataModule`).

    ``file`` is a path (``.csv`` or ``.csv.gz``), absolute or relative to the data folder. With ``url``
    (and ``sha256``) a missing file is downloaded; the standard benchmark files come from Autoformer's
    collection, which has no direct download link, so put them in the data folder yourself.

    Args:
        file: The CSV file, e.g. ``weather.csv`` or ``/path/to/mine.csv.gz``.
        url: Where to download the file from when it is missing.
        sha256: Expected sha256 of the file (checked when given).
        train_fraction: Fraction of the rows for training.
        test_fraction: Fraction of the rows for testing; validation gets the rest.
        **kwargs: See :class:`ForecastingDataModule`.
    """

    display_name = "CSV"

    def __init__(
        self,
        file: str = "weather.csv",
        url: str | None = None,
        sha256: str | None = None,
        train_fraction: float = 0.7,
        test_fraction: float = 0.2,
        **kwargs,
    ):
        if not (0 < train_fraction < 1 and 0 < test_fraction < 1 and train_fraction + test_fraction < 1):
            raise ConfigError(
                f"CSVDataModule: train_fraction ({train_fraction}) and test_fraction ({test_fraction}) "
                "must be in (0, 1) and leave rows for validation"
            )
        self.file = file
        self.url = url
        self.sha256 = sha256
        self.train_fraction = train_fraction
        self.test_fraction = test_fraction
        super().__init__(**kwargs)

    def locate(self) -> Path:
        path = Path(self.file).expanduser()
        folder = path.parent if path.is_absolute() else self.data_dir / path.parent
        if self.url is not None or (folder / path.name).is_file():
            return fetch_file(folder, path.name, self.url or "", self.sha256, path.name, self.download)
        source = CSV_SOURCES.get(path.name, "your own data")
        raise DataNotFoundError(
            missing_data_message(path.name, folder, [path.name], source, "no download URL")
        )

    def borders(self, num_rows: int) -> dict[str, tuple[int, int]]:
        num_train = int(num_rows * self.train_fraction)
        num_test = int(num_rows * self.test_fraction)
        num_val = num_rows - num_train - num_test
        lookback = self.lookback
        return {
            "train": (0, num_train),
            "val": (num_train - lookback, num_train + num_val),
            "test": (num_rows - num_test - lookback, num_rows),
        }
