"""Forecasting DataModules: Time-Series-Library borders and window counts, scaler, time features, errors."""

from __future__ import annotations

import csv
import gzip
import re

import numpy as np
import pytest
import torch

from mlplab.data import CSVDataModule, ETTDataModule
from mlplab.data.timeseries import time_features
from mlplab.errors import ConfigError, DataCorruptError, DataNotFoundError
from tests.conftest import require_data

SERIES = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]


def read_etth1(folder) -> np.ndarray:
    with open(folder / "ETTh1.csv") as handle:
        rows = list(csv.reader(handle))[1:]
    return np.array([[float(v) for v in row[1:]] for row in rows])


def write_csv(path, dates, values, header) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for date, row in zip(dates, values):
            writer.writerow([str(date).replace("T", " "), *row])


def hourly(count: int, start: str = "2020-01-01T00:00") -> np.ndarray:
    return np.datetime64(start) + np.arange(count) * np.timedelta64(1, "h")


@pytest.mark.parametrize("lookback", [96, 336, 512, 720])
def test_etth1_window_counts_follow_time_series_library_with_no_window_dropped(lookback):
    folder = require_data("ETTh1.csv")
    data = ETTDataModule(lookback=lookback, horizon=96, data_dir=str(folder), eval_batch_size=128)
    data.setup()
    assert data.window_count("test") == 2785  # [11520 - L, 14400): 2880 + L rows, L + 96 per window
    assert data.window_count("val") == 2785
    assert data.window_count("train") == 8640 - lookback - 96 + 1
    seen = sum(len(batch[0]) for batch in data.test_dataloader())
    assert seen == 2785  # the last, smaller batch (2785 = 21·128 + 97) is kept


def test_etth1_borders_scaling_and_batches_match_the_raw_file():
    folder = require_data("ETTh1.csv")
    raw = read_etth1(folder)
    lookback, horizon = 48, 24
    data = ETTDataModule(lookback=lookback, horizon=horizon, data_dir=str(folder), batch_size=5)
    assert (data.num_series, data.num_time_features, data.series_names) == (7, 4, SERIES)
    data.setup()
    mean, std = raw[:8640].mean(axis=0), raw[:8640].std(axis=0)
    np.testing.assert_allclose(data.mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(data.std.numpy(), std, rtol=1e-6)
    scaled = (raw - mean) / std
    history, future, history_marks, future_marks = data.on_after_batch_transfer(
        next(iter(data.test_dataloader())), 0
    )
    assert history.shape == (5, lookback, 7) and future.shape == (5, horizon, 7)
    assert history_marks.shape == (5, lookback, 4) and future_marks.shape == (5, horizon, 4)
    # The first test window: history rows [11520 - L, 11520), target rows [11520, 11520 + H).
    np.testing.assert_allclose(history[0].numpy(), scaled[11520 - lookback : 11520], atol=1e-5)
    np.testing.assert_allclose(future[0].numpy(), scaled[11520 : 11520 + horizon], atol=1e-5)
    np.testing.assert_allclose(future[4].numpy(), scaled[11524 : 11524 + horizon], atol=1e-5)  # stride 1
    # The last test window ends at row 14400 (month 20).
    last = data.windows("test")[1][-1].T.numpy()
    np.testing.assert_allclose(last, scaled[14400 - horizon : 14400], atol=1e-5)
    first_val = data.windows("val")[0][0].T.numpy()
    np.testing.assert_allclose(first_val, scaled[8640 - lookback : 8640], atol=1e-5)


def test_the_scaler_sees_only_training_rows(tmp_path):
    folder = require_data("ETTh1.csv")
    raw = read_etth1(folder)
    with open(folder / "ETTh1.csv") as handle:
        dates = [row[0] for row in list(csv.reader(handle))[1:]]
    changed = raw.copy()
    changed[8640:] = changed[8640:] * 100 + 1000  # validation and test rows only
    write_csv(tmp_path / "ETTh1.csv", dates, changed, ["date", *SERIES])
    # The copy fails ETTh1's checksum on purpose; a changed file must be refused...
    with pytest.raises(DataCorruptError, match="fails its sha256 check"):
        ETTDataModule(data_dir=str(tmp_path))
    # ...so the same rows go through the generic CSV module with ETT's borders.
    original, modified = ETTDataModule(data_dir=str(folder)), _EttBordersCSV(tmp_path / "ETTh1.csv")
    original.setup()
    modified.setup()
    torch.testing.assert_close(original.mean, modified.mean)
    torch.testing.assert_close(original.std, modified.std)


class _EttBordersCSV(CSVDataModule):
    def __init__(self, path):
        super().__init__(file=str(path))

    def borders(self, num_rows):
        lookback = self.lookback
        return {"train": (0, 8640), "val": (8640 - lookback, 11520), "test": (11520 - lookback, 14400)}


def test_time_features_are_time_series_library_timef():
    dates = np.array(["2016-07-01T00:00", "2016-07-04T23:00", "2017-01-01T12:00"], dtype="datetime64[s]")
    features = time_features(dates, "h")  # hour, weekday, day of month, day of year, each in [-0.5, 0.5]
    expected = [
        [0 / 23 - 0.5, 4 / 6 - 0.5, 0 / 30 - 0.5, 182 / 365 - 0.5],  # Friday, 1 July of a leap year
        [23 / 23 - 0.5, 0 / 6 - 0.5, 3 / 30 - 0.5, 185 / 365 - 0.5],  # Monday
        [12 / 23 - 0.5, 6 / 6 - 0.5, 0 / 30 - 0.5, 0 / 365 - 0.5],  # Sunday, 1 January
    ]
    np.testing.assert_allclose(features, expected, atol=1e-6)
    assert time_features(dates, "t").shape == (3, 5) and time_features(dates, "d").shape == (3, 3)


def test_fifteen_minute_ett_borders_are_four_times_the_hourly_ones(tmp_path):
    rows = 20 * 30 * 24 * 4
    dates = np.datetime64("2016-07-01T00:00") + np.arange(rows) * np.timedelta64(15, "m")
    values = np.random.default_rng(0).normal(size=(rows, 7)).round(3)
    write_csv(tmp_path / "ETTm1.csv", dates, values, ["date", *SERIES])
    data = ETTDataModule(name="ETTm1", lookback=96, horizon=96, data_dir=str(tmp_path), download=False)
    data.setup()
    assert data.borders(rows) == {"train": (0, 34560), "val": (34464, 46080), "test": (45984, 57600)}
    assert data.window_count("test") == 11520 - 96 + 1
    np.testing.assert_allclose(data.mean.numpy(), values[:34560].mean(axis=0), rtol=1e-5)


def test_csv_datamodule_splits_70_10_20_and_univariate(tmp_path):
    count = 1000
    values = np.random.default_rng(1).normal(size=(count, 3))
    write_csv(tmp_path / "mine.csv", hourly(count), values, ["date", "a", "target", "b"])
    data = CSVDataModule(file="mine.csv", target="target", lookback=24, horizon=12, data_dir=str(tmp_path))
    assert data.series_names == ["a", "b", "target"] and data.num_series == 3  # target last
    data.setup()
    assert data.borders(count) == {"train": (0, 700), "val": (676, 800), "test": (776, 1000)}
    assert data.window_count("test") == 200 - 12 + 1
    univariate = CSVDataModule(
        file=str(tmp_path / "mine.csv"), target="b", features="S", lookback=24, horizon=12
    )
    univariate.setup()
    assert univariate.num_series == 1
    np.testing.assert_allclose(univariate.mean.numpy(), values[:700, 2:].mean(axis=0), rtol=1e-6)
    inferred = CSVDataModule(file="mine.csv", target="b", freq="auto", data_dir=str(tmp_path))
    assert inferred.freq == "h" and inferred.num_time_features == 4


def _write_small(path, header=("date", "x", "OT"), count=500, nan_at=None):
    values = np.random.default_rng(2).normal(size=(count, len(header) - 1))
    if nan_at is not None:
        values[nan_at, -1] = np.nan
    write_csv(path, hourly(count), values, list(header))


def test_user_errors_are_one_clear_line(tmp_path):
    _write_small(tmp_path / "nodate.csv", header=("time", "x", "OT"))
    with pytest.raises(
        ConfigError, match=r"nodate.csv has no date column 'date' \(its columns: time, x, OT\)"
    ):
        CSVDataModule(file="nodate.csv", data_dir=str(tmp_path))
    _write_small(tmp_path / "notarget.csv", header=("date", "x", "y"))
    with pytest.raises(ConfigError, match="has no target 'OT'.*set data.init_args.target"):
        CSVDataModule(file="notarget.csv", target="OT", data_dir=str(tmp_path))
    _write_small(tmp_path / "nan.csv", nan_at=123)
    data = CSVDataModule(file="nan.csv", data_dir=str(tmp_path), lookback=8, horizon=8)
    with pytest.raises(DataCorruptError, match="1 missing values .* column 'OT' at data row 123"):
        data.setup()
    _write_small(tmp_path / "short.csv", count=150)
    data = CSVDataModule(file="short.csv", data_dir=str(tmp_path), lookback=96, horizon=96)
    with pytest.raises(ConfigError, match="fewer than lookback \\+ horizon = 96 \\+ 96"):
        data.setup()
    with pytest.raises(
        DataNotFoundError, match="ETTh1 not found: expected ETTh1.csv in .*downloads are disabled"
    ):
        ETTDataModule(data_dir=str(tmp_path / "empty"), download=False)
    with pytest.raises(DataNotFoundError, match="weather.csv not found.*Autoformer"):
        CSVDataModule(file="weather.csv", data_dir=str(tmp_path))
    for message in (str(e) for e in _collect(tmp_path)):
        assert "\n" not in message


def _collect(tmp_path):
    errors = []
    for make in (
        lambda: CSVDataModule(file="nodate.csv", data_dir=str(tmp_path)),
        lambda: CSVDataModule(file="nan.csv", data_dir=str(tmp_path), lookback=8, horizon=8).setup(),
    ):
        try:
            make()
        except Exception as error:
            errors.append(error)
    assert len(errors) == 2
    return errors


def test_training_drops_only_its_last_incomplete_batch(tmp_path):
    values = np.random.default_rng(3).normal(size=(1000, 2))
    write_csv(tmp_path / "mine.csv", hourly(1000), values, ["date", "a", "OT"])
    data = CSVDataModule(file="mine.csv", lookback=24, horizon=12, batch_size=64, data_dir=str(tmp_path))
    data.setup()
    assert data.window_count("train") == 700 - 36 + 1 == 665
    sizes = [len(batch[0]) for batch in data.train_dataloader()]
    assert sizes == [64] * 10  # the 25 windows left over change with the shuffle of every epoch
    loader = data.train_dataloader()
    first, second = (next(iter(loader))[0] for _ in range(2))
    assert not torch.equal(first, second)  # a fresh permutation per epoch
    assert (
        sum(len(batch[0]) for batch in data.val_dataloader()) == data.window_count("val") == 100 + 24 - 36 + 1
    )


# ------------------------------------------------------------------------------ files as they come
def _plain_and_variants(tmp_path, count=300):
    values = np.round(np.random.default_rng(4).normal(size=(count, 3)), 4)
    write_csv(tmp_path / "mine.csv", hourly(count), values, ["date", "load", "temp", "OT"])
    text = (tmp_path / "mine.csv").read_text()
    with gzip.open(tmp_path / "mine.csv.gz", "wt") as handle:
        handle.write(text)
    (tmp_path / "noheader.csv").write_text(text.split("\n", 1)[1])
    return values


def test_gzip_and_header_less_files_read_as_the_plain_one(tmp_path):
    values = _plain_and_variants(tmp_path)
    plain, gz, bare = (
        CSVDataModule(file=name, lookback=24, horizon=12, data_dir=str(tmp_path))
        for name in ("mine.csv", "mine.csv.gz", "noheader.csv")
    )
    assert plain.series_names == gz.series_names == ["load", "temp", "OT"]
    assert (bare.header, bare.date_column, bare.series_names) == (False, "0", ["1", "2", "3"])
    for data in (plain, gz, bare):
        assert (data.freq, data.num_time_features) == ("h", 4)
        data.setup()
    np.testing.assert_allclose(plain.mean.numpy(), values[:210].mean(axis=0), rtol=1e-6)
    for split in ("train", "val", "test"):
        for a, b, c in zip(plain.splits[split], gz.splits[split], bare.splits[split]):
            assert torch.equal(a, b) and torch.equal(a, c)


def test_a_file_saved_with_a_byte_order_mark_reads_as_the_plain_one(tmp_path):
    # Excel's "CSV UTF-8" starts the file with a BOM, which once stuck to the first column's name:
    # "has no date column 'date' (its columns: date, load, temp, OT)".
    _plain_and_variants(tmp_path)
    text = (tmp_path / "mine.csv").read_text(encoding="utf-8")
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")
    with gzip.open(tmp_path / "bom.csv.gz", "wt", encoding="utf-8-sig") as handle:
        handle.write(text)
    plain = CSVDataModule(file="mine.csv", lookback=24, horizon=12, data_dir=str(tmp_path))
    plain.setup()
    for name in ("bom.csv", "bom.csv.gz"):
        data = CSVDataModule(file=name, lookback=24, horizon=12, data_dir=str(tmp_path))
        assert (data.columns, data.date_column) == (plain.columns, "date")
        data.setup()
        assert np.array_equal(data.times, plain.times)
        assert all(torch.equal(a, b) for a, b in zip(data.splits["train"], plain.splits["train"]))


def test_a_file_without_dates_has_an_integer_time_index_said_once(tmp_path, caplog):
    values = np.random.default_rng(5).normal(size=(200, 2))
    (tmp_path / "numbers.csv").write_text("\n".join(",".join(f"{v:.5f}" for v in row) for row in values))
    with caplog.at_level("INFO"):
        data = CSVDataModule(file="numbers.csv", lookback=16, horizon=8, data_dir=str(tmp_path))
        CSVDataModule(file="numbers.csv", lookback=16, horizon=8, data_dir=str(tmp_path))
    notes = [r.getMessage() for r in caplog.records if "has no date column" in r.getMessage()]
    assert notes == [
        "numbers.csv has no date column: its rows are an integer time index (0, 1, ...) and the windows "
        "carry no calendar features"
    ]
    assert (data.date_column, data.freq, data.num_time_features, data.series_names) == (
        None,
        None,
        0,
        ["0", "1"],
    )
    history, _, marks, future_marks = data.on_after_batch_transfer(next(iter(data.test_dataloader())), 0)
    assert history.shape == (32, 16, 2) and marks.shape == (32, 16, 0) and future_marks.shape == (32, 8, 0)
    assert data.times[0] == 0 and data.times[-1] == 200 + 8 - 1
    header = CSVDataModule(file="numbers.csv", header=True, lookback=4, horizon=4, data_dir=str(tmp_path))
    assert header.num_series == 2 and header.date_column is None  # its first row taken as names


def test_freq_is_inferred_from_the_dates_and_a_disagreeing_one_is_warned(tmp_path):
    count = 400
    quarter_hours = np.datetime64("2021-03-01T00:00") + np.arange(count) * np.timedelta64(15, "m")
    write_csv(tmp_path / "fast.csv", quarter_hours, np.ones((count, 2)), ["date", "a", "OT"])
    inferred = CSVDataModule(file="fast.csv", data_dir=str(tmp_path))
    assert (inferred.freq, inferred.num_time_features) == ("t", 5)
    with pytest.warns(
        UserWarning, match="freq 'h' is given but the dates of fast.csv are spaced as freq 't'"
    ):
        given = CSVDataModule(file="fast.csv", freq="h", data_dir=str(tmp_path))
    assert (given.freq, given.num_time_features) == ("h", 4)
    write_csv(tmp_path / "ETTm1.csv", quarter_hours, np.ones((count, 7)), ["date", *SERIES])
    ett = ETTDataModule(name="ETTm1", data_dir=str(tmp_path), download=False)
    assert ett.freq == "h"  # Time-Series-Library's setting for the 15-minute sets too, without a warning
    assert ETTDataModule(name="ETTm1", freq="auto", data_dir=str(tmp_path), download=False).freq == "t"


def test_dates_that_do_not_increase_are_one_clear_line(tmp_path):
    # A file written newest first once trained on reversed time with second-level calendar features
    # (its median spacing, negative, read as freq 's') and forecast 'future' before its first row.
    values = np.random.default_rng(6).normal(size=(200, 2))
    write_csv(tmp_path / "newest_first.csv", hourly(200)[::-1], values, ["date", "a", "OT"])
    expected = (
        "newest_first.csv: the dates go backwards (2020-01-09 07:00:00 then 2020-01-09 06:00:00, ...): "
        "sort the rows oldest first"
    )
    for freq in (None, "h"):
        with pytest.raises(DataCorruptError, match=re.escape(expected)):
            CSVDataModule(file="newest_first.csv", freq=freq, data_dir=str(tmp_path))
    write_csv(tmp_path / "same.csv", hourly(200)[:1].repeat(200), values, ["date", "a", "OT"])
    same = "same.csv: the dates do not advance (2020-01-01 00:00:00 then 2020-01-01 00:00:00, ...): give"
    with pytest.raises(DataCorruptError, match=re.escape(same)):
        CSVDataModule(file="same.csv", data_dir=str(tmp_path))


def test_the_run_seed_orders_the_training_windows_unless_a_shuffle_seed_is_given(tmp_path):
    from lightning.pytorch import seed_everything

    _plain_and_variants(tmp_path)

    def first_batch(**kwargs):
        data = CSVDataModule(file="mine.csv", lookback=24, horizon=12, data_dir=str(tmp_path), **kwargs)
        return next(iter(data.train_dataloader()))[0]

    seed_everything(1)
    one, fixed_one = first_batch(), first_batch(shuffle_seed=7)
    seed_everything(2)
    two, fixed_two = first_batch(), first_batch(shuffle_seed=7)
    seed_everything(1)
    assert torch.equal(one, first_batch()) and not torch.equal(one, two)
    assert torch.equal(fixed_one, fixed_two)


def test_the_future_split_forecasts_after_the_last_row(tmp_path):
    values = _plain_and_variants(tmp_path)
    data = CSVDataModule(
        file="mine.csv", lookback=24, horizon=6, data_dir=str(tmp_path), predict_split="future"
    )
    history, future, marks, future_marks = data.on_after_batch_transfer(
        next(iter(data.predict_dataloader())), 0
    )
    assert history.shape == (1, 24, 3) and torch.isnan(future).all()
    np.testing.assert_allclose(
        history[0].numpy() * data.std.numpy() + data.mean.numpy(), values[-24:], atol=1e-4
    )
    expected_marks = time_features(hourly(306)[-30:], "h")
    np.testing.assert_allclose(torch.cat([marks[0], future_marks[0]]).numpy(), expected_marks)
    table = data.prediction_table({"predictions": torch.zeros(1, 6, 3), "targets": future})
    assert list(table) == ["origin", "date", "step", "load", "temp", "OT"]  # no truth for the future
    assert (table["origin"] == hourly(300)[-1]).all() and (table["date"] == hourly(306)[-6:]).all()
    # truth partly known (a window reaching past the data's end): every true value known was dropped
    partly = torch.arange(18.0).reshape(1, 6, 3)
    partly[0, 4:] = float("nan")
    table = data.prediction_table({"predictions": torch.zeros(1, 6, 3), "targets": partly})
    assert list(table)[-3:] == ["load_true", "temp_true", "OT_true"]
    np.testing.assert_array_equal(table["OT_true"], [2.0, 5.0, 8.0, 11.0, np.nan, np.nan])
    monthly = np.array(
        [f"20{y:02d}-{m:02d}-01" for y in range(10, 20) for m in range(1, 13)], dtype="datetime64[s]"
    )
    write_csv(tmp_path / "monthly.csv", monthly, np.ones((120, 1)), ["date", "OT"])
    months = CSVDataModule(file="monthly.csv", lookback=8, horizon=3, data_dir=str(tmp_path))
    months.setup()
    assert months.freq == "m" and [str(d)[:10] for d in months.times[-3:]] == [
        "2020-01-01",
        "2020-02-01",
        "2020-03-01",
    ]


def test_column_errors_of_files_as_they_come(tmp_path):
    _plain_and_variants(tmp_path)
    with pytest.raises(ConfigError, match="date_column is null but column 'date' holds dates"):
        CSVDataModule(file="mine.csv", date_column=None, data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="predict_split must be test, val, train or future, got 'later'"):
        CSVDataModule(file="mine.csv", predict_split="later", data_dir=str(tmp_path))
    (tmp_path / "empty.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataCorruptError, match="empty.csv.gz is empty"):
        CSVDataModule(file="empty.csv.gz", data_dir=str(tmp_path))
    (tmp_path / "broken.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataCorruptError, match="cannot read .*broken.csv.gz as a CSV file"):
        CSVDataModule(file="broken.csv.gz", data_dir=str(tmp_path))
