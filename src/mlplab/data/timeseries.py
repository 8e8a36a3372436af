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
  [-0.5, 0.5] (for ``freq='h'``: hour of day, day of week, day of month, day of year).

Batches are ``(history, future, history_time_features, future_time_features)`` with shapes
``(B, L, N)``, ``(B, H, N)``, ``(B, L, F)`` and ``(B, H, F)``, float32, standardised. The series are
held in memory as one tensor (on the accelerator when training there) and windows are gathered by
index from strided views, so a batch costs one indexing operation and no Python work per sample.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mlplab.data.common import fetch_file, missing_data_message, resolve_data_dir
from mlplab.data.in_memory import InMemoryDataModule
from mlplab.errors import ConfigError, DataCorruptError, DataNotFoundError, require_positive

Features = Literal["M", "S"]
Split = Literal["train", "val", "test"]

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


def read_header(path: Path) -> list[str]:
    """Column names of a CSV file."""
    try:
        with open(path, newline="") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError) as error:
        raise DataCorruptError(f"cannot read {path} as a CSV file ({error})") from error
    if not header:
        raise DataCorruptError(f"{path} is empty: expected a header line with a date column and series")
    return [name.strip() for name in header]


def read_series(path: Path, date_column: str, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read the dates and the named series of a CSV file: ``datetime64[s]`` ``(T,)`` and float64 ``(T, N)``.

    Raises:
        DataCorruptError: A value is not a number, or a series has missing values (NaN or empty cells)
            or infinite ones (``inf``, or a number beyond float64's range such as ``1e400``).
    """
    header = read_header(path)
    date_index = header.index(date_column)
    indices = [header.index(name) for name in columns]
    dates, rows = [], []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            if not row:
                continue
            dates.append(row[date_index])
            rows.append([row[i].strip() if i < len(row) else "" for i in indices])
    if not rows:
        raise DataCorruptError(f"{path} has a header but no rows")
    text = np.array(rows, dtype=str)
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
            f"{columns[column]!r} at data row {row} ({dates[row]}); fill or drop them before training"
        )
    infinite = np.isinf(values)
    if infinite.any():
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        raise DataCorruptError(
            f"{path} has {int(infinite.sum())} infinite values (inf, or beyond float64's range), the first "
            f"in column {columns[column]!r} at data row {row} ({dates[row]}: {rows[row][column]!r}); "
            "fix or drop them before training"
        )
    return parse_dates(dates, path), values


class ForecastingDataModule(InMemoryDataModule):
    """Base class: a CSV of dated series, split, standardised and windowed (see the module docstring).

    Subclasses say where the file comes from (:meth:`locate`) and where the splits end
    (:meth:`borders`). What the task needs is known right after ``__init__`` (the CLI links these
    attributes to the task's arguments of the same name): ``lookback``, ``horizon``, ``num_series`` and
    ``num_time_features``; ``series_names`` lists the series in their order.

    Args:
        lookback: History length L of every window.
        horizon: Forecast length H of every window.
        features: ``M``: every series in and out (multivariate); ``S``: only ``target`` (univariate).
        target: The target series: the only one for ``S``, the last one for ``M`` (as
            Time-Series-Library orders them) and the one drawn in the forecast figures.
        date_column: Name of the date column.
        freq: Time-feature set: ``h`` (hour, weekday, day of month, day of year), ``t`` / ``min`` (plus
            minute), ``s``, ``d``, ``b``, ``m``, or ``auto`` (from the spacing of the dates).
            Time-Series-Library's scripts use ``h`` for every dataset.
        scale: Standardise the series with the training rows' statistics.
        batch_size: Training batch size.
        eval_batch_size: Validation / test batch size; ``None`` means ``batch_size``.
        shuffle_seed: Seed of the per-epoch shuffling of the training windows.
        data_dir: Folder of the data files; ``None`` means ``$MLPLAB_DATA`` if set, else ``./data``.
        download: Download a missing file when online (where a public URL is known).
        on_device: Keep the series on the accelerator; ``None``: on a GPU, when they fit easily.
    """

    #: Human name of the dataset, used in messages.
    display_name: str = "dataset"
    summary = ("lookback", "horizon", "num_series")

    def __init__(
        self,
        lookback: int = 96,
        horizon: int = 96,
        features: Features = "M",
        target: str = "OT",
        date_column: str = "date",
        freq: str = "h",
        scale: bool = True,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        shuffle_seed: int = 0,
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
        self.lookback = lookback
        self.horizon = horizon
        self.features = features
        self.target = target
        self.date_column = date_column
        self.scale = scale
        self.shuffle_seed = shuffle_seed
        self.data_dir = resolve_data_dir(data_dir)
        self.download = download

        self.path = self.locate()
        header = read_header(self.path)
        for role, column in (("date_column", date_column), ("target", target)):
            if column not in header:
                raise ConfigError(
                    f"{self.path.name} has no {role.replace('_', ' ')} {column!r} (its columns: "
                    f"{', '.join(header)}); set data.init_args.{role} to one of them"
                )
        others = [c for c in header if c not in (date_column, target)]
        self.series_names: list[str] = [target] if features == "S" else [*others, target]
        self.num_series = len(self.series_names)
        self.freq = canonical_freq(self._first_dates_freq() if freq.lower() == "auto" else freq)
        self.num_time_features = len(TIME_FEATURES[self.freq])

        self.mean = torch.zeros(self.num_series)
        self.std = torch.ones(self.num_series)
        self.num_rows = 0

    # ----------------------------------------------------------------------------------- subclasses
    def locate(self) -> Path:
        """The CSV file, downloaded first where that is possible."""
        raise NotImplementedError

    def borders(self, num_rows: int) -> dict[str, tuple[int, int]]:
        """Row ranges ``[start, stop)`` of the train / val / test splits.

        Validation and test include ``lookback`` rows of history before their first forecast.
        """
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------- data
    def _first_dates_freq(self) -> str:
        with open(self.path, newline="") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader)]
            index = header.index(self.date_column)
            first = [row[index] for _, row in zip(range(64), reader) if row]
        if len(first) < 2:
            raise DataCorruptError(f"{self.path} has fewer than two rows: cannot infer the date spacing")
        return infer_freq(parse_dates(first, self.path))

    def window_count(self, split: Split) -> int:
        """Number of windows in a split (available after :meth:`setup`)."""
        start, stop = self.borders(self.num_rows)[split]
        return (stop - start) - self.lookback - self.horizon + 1

    def build_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Series and calendar features of each split, standardised with the training rows' statistics."""
        dates, values = read_series(self.path, self.date_column, self.series_names)
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
        train_start, train_stop = borders["train"]
        if self.scale:
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
        marks = torch.from_numpy(time_features(dates, self.freq))
        return {
            split: (series[start:stop].contiguous(), marks[start:stop].contiguous())
            for split, (start, stop) in borders.items()
        }

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
    """Any CSV of a date column and numeric series, split 70 / 10 / 20 % (Time-Series-Library's custom data).

    For Weather, Electricity, Traffic, Exchange-rate or your own file; the splits are those of
    Time-Series-Library's ``Dataset_Custom``.

    ``file`` is a path, absolute or relative to the data folder. With ``url`` (and ``sha256``) a missing
    file is downloaded; the standard benchmark files come from Autoformer's collection, which has no
    direct download link, so put them in the data folder yourself.

    Args:
        file: The CSV file, e.g. ``weather.csv`` or ``/path/to/mine.csv``.
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
