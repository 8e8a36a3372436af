"""The training batch order of every in-memory DataModule: the run's seed unless ``shuffle_seed`` is given."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch import seed_everything
from PIL import Image

from mlplab.data import (
    CharTextDataModule,
    CSVDataModule,
    DigitsDataModule,
    FunctionDataModule,
    ImageFittingDataModule,
    MQARDataModule,
    TabularDataModule,
)
from mlplab.errors import ConfigError
from mlplab.runs import Run

TEXT = {"corpus": "pydoc_topics", "context_length": 16, "batch_size": 8, "batches_per_epoch": 2}


def digits(**kwargs):
    return DigitsDataModule(batch_size=16, **kwargs)


def text(**kwargs):
    return CharTextDataModule(**TEXT, **kwargs)


def tabular(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the objective chosen
        return TabularDataModule(dataset="wine", batch_size=16, **kwargs)


def fields(tmp_path, **kwargs):
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)).save(path)
    return ImageFittingDataModule(str(path), batch_size=16, **kwargs)


def functions(**kwargs):
    return FunctionDataModule("x1*x2", num_train=64, num_val=8, num_test=8, batch_size=8, **kwargs)


def mqar(**kwargs):
    return MQARDataModule(
        preset=None, sequence_length=16, num_kv_pairs=2, vocab_size=64, num_train_examples=64,
        num_test_examples=16, batch_size=8, **kwargs,
    )  # fmt: skip


def forecasting(tmp_path, **kwargs):
    path = tmp_path / "series.csv"
    values = np.random.default_rng(0).normal(size=(200, 2))
    dates = np.datetime64("2020-01-01T00") + np.arange(200) * np.timedelta64(1, "h")
    rows = [
        f"{d.astype('datetime64[s]').item():%Y-%m-%d %H:%M:%S},{a},{b}" for d, (a, b) in zip(dates, values)
    ]
    path.write_text("date,a,OT\n" + "\n".join(rows) + "\n")
    sizes = {"lookback": 8, "horizon": 4, "batch_size": 8}
    return CSVDataModule(file=path.name, data_dir=str(tmp_path), **sizes, **kwargs)


#: A small DataModule of each family, by name; those that take a folder get pytest's ``tmp_path``.
FAMILIES = {
    "image": lambda tmp_path, **kw: digits(**kw),
    "text": lambda tmp_path, **kw: text(**kw),
    "tabular": lambda tmp_path, **kw: tabular(**kw),
    "fields": fields,
    "functions": lambda tmp_path, **kw: functions(**kw),
    "mqar": lambda tmp_path, **kw: mqar(**kw),
    "forecasting": forecasting,
}


def first_batch(data) -> tuple[torch.Tensor, ...]:
    return next(iter(data.train_dataloader()))


def same(one: tuple[torch.Tensor, ...], two: tuple[torch.Tensor, ...]) -> bool:
    """Whether two tuples of tensors are equal, NaN (a future window's unknown truth) equal to NaN."""
    return all(
        a.shape == b.shape and a.isnan().equal(b.isnan()) and a.nan_to_num().equal(b.nan_to_num())
        for a, b in zip(one, two, strict=True)
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_the_run_seed_orders_the_training_batches_unless_a_shuffle_seed_is_given(family, tmp_path):
    make = FAMILIES[family]
    seed_everything(1)
    one, fixed_one = first_batch(make(tmp_path)), first_batch(make(tmp_path, shuffle_seed=7))
    seed_everything(2)
    two, fixed_two = first_batch(make(tmp_path)), first_batch(make(tmp_path, shuffle_seed=7))
    assert not same(one, two)  # another run seed, another order
    assert same(fixed_one, fixed_two)  # an explicit shuffle seed, whatever the run's
    seed_everything(1)
    assert same(one, first_batch(make(tmp_path)))  # the same run seed, the same order


@pytest.mark.parametrize("family", FAMILIES)
def test_the_data_itself_does_not_change_with_the_run_seed(family, tmp_path):
    make = FAMILIES[family]
    built = []
    for seed in (1, 2):
        seed_everything(seed)
        data = make(tmp_path)
        data.setup()
        built.append(data.splits)
    assert built[0].keys() == built[1].keys()
    for name in built[0]:
        assert same(built[0][name], built[1][name]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_processes_seeded_alike_shuffle_alike_and_take_disjoint_training_shares(family, tmp_path):
    seed_everything(3)  # Lightning hands every process of a run the same PL_GLOBAL_SEED
    loaders = []
    for rank in (0, 1):
        data = FAMILIES[family](tmp_path)
        data.setup()
        data.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        loaders.append(data.train_dataloader())
    assert [loader.seed for loader in loaders] == [3, 3]
    if family == "text":  # random windows: each process keeps its own of one common draw (tests/ddp)
        assert not torch.equal(next(iter(loaders[0]))[0], next(iter(loaders[1]))[0])
        return
    shares = [set(loader.order(0, device=False).tolist()) for loader in loaders]
    assert len(shares[0]) == len(shares[1]) > 0 and not shares[0] & shares[1]


@pytest.mark.parametrize("family", ["text", "tabular", "fields"])
def test_the_old_name_seed_still_fixes_the_order(family, tmp_path):
    make = FAMILIES[family]
    seed_everything(5)
    with pytest.deprecated_call(match="seed is the old name of shuffle_seed"):
        old = make(tmp_path, seed=0)
    assert old.shuffle_seed == 0
    assert same(first_batch(old), first_batch(make(tmp_path, shuffle_seed=0)))
    both = "seed \\(the old name of shuffle_seed\\) is 0 and shuffle_seed is 1"
    with pytest.raises(ConfigError, match=both):
        make(tmp_path, seed=0, shuffle_seed=1)


def test_an_old_run_folders_config_keeps_its_order():
    # config.yaml of a run written before shuffle_seed existed: every argument, seed 0 among them
    config = {"data": {"class_path": "mlplab.data.CharTextDataModule", "init_args": {**TEXT, "seed": 0}}}
    seed_everything(5)
    with pytest.deprecated_call():
        data = Run(torch.nn.Identity(), config=config).datamodule()
    assert data.shuffle_seed == 0 and same(first_batch(data), first_batch(text(shuffle_seed=0)))
