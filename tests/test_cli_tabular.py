"""The command line on tables: a CSV with an unseen category end to end, and one-line errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from mlplab.data.tabular import split_indices

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
TINY = {
    "trainer": {"max_epochs": 2, "accelerator": "cpu", "log_every_n_steps": 2},
    "model": {
        "class_path": "TabularTask",
        "init_args": {"backbone": {"class_path": "TabM", "init_args": {"variant": "tiny", "num_bins": 4}}},
    },
    "data": {
        "class_path": "TabularDataModule",
        "init_args": {"path": "shop.csv", "target": "bought", "batch_size": 16},
    },
}


def shop(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "price": rng.lognormal(3, 1, rows),
            "visits": rng.integers(0, 20, rows),
            "channel": rng.choice(["ad", "mail", "search"], rows),
        }
    )
    frame["bought"] = np.where(frame["visits"] + rng.normal(0, 3, rows) > 10, "yes", "no")
    return frame


def test_fit_and_test_a_csv_whose_test_split_has_an_unseen_category(cli, tmp_path, capsys):
    frame = shop()
    frame.loc[split_indices(len(frame), 0.2, 0.2, 0)["test"][:4], "channel"] = "radio"  # never in training
    frame.to_csv(tmp_path / "shop.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    with pytest.warns(
        UserWarning,
        match=r"column 'channel': 4 test rows hold values the training split never "
        r"has \('radio'\); they get code 0 \(unknown\)",
    ):
        assert cli("fit", "--config", "tiny.yaml", "--trainer.default_root_dir=run", *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    hparams = yaml.unsafe_load((run / "hparams.yaml").read_text())
    assert (hparams["num_numeric"], tuple(hparams["cardinalities"]), hparams["num_classes"]) == (2, (4,), 2)
    capsys.readouterr()
    assert (
        cli(
            "test",
            "--config",
            str(run / "config.yaml"),
            "--ckpt_path",
            "best",
            "--trainer.default_root_dir=run",
            *QUIET,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "test/acc" in out and "test/auroc" in out and "test/logloss" in out
    # the same checkpoint on the table split otherwise (its test split would hold training rows): refused
    status = cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", "best", "--data.split_seed=1",
                 "--trainer.default_root_dir=run", *QUIET)  # fmt: skip
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1
    assert (
        "data.split_seed: the checkpoint's model was trained with split_seed 0, the data now gives 1"
        in errors[0]
    )


def test_a_table_grown_since_the_fit_is_tested_with_the_checkpoints_encoding(cli, tmp_path, capsys):
    # The encoding was rebuilt from the table, so a table with rows added since the fit (other training
    # rows, statistics and digest) was refused; now test and predict encode it with the checkpoint's.
    import torch

    shop().to_csv(tmp_path / "shop.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert cli("fit", "--config", "tiny.yaml", "--trainer.default_root_dir=run", *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    kept = checkpoint["TabularDataModule"]["preprocessing"]
    pd.concat([shop(), shop(60).assign(price=lambda f: f["price"] * 100)]).to_csv(
        tmp_path / "shop.csv", index=False
    )
    args = from_best(run)
    with pytest.warns(UserWarning, match="training split differs from the one the checkpoint's model was"):
        assert cli("test", *args) == 0
    assert "test/acc" in capsys.readouterr().out
    assert cli("predict", *args) == 0
    from mlplab.data import TabularDataModule
    from mlplab.data.tabular import rebuild_numeric_transform

    data = TabularDataModule(path=str(tmp_path / "shop.csv"), target="bought", batch_size=16)
    x_num, x_cat, _ = data.split_tensors("test")
    transform = rebuild_numeric_transform(kept["numeric_transform"])
    raw = pd.read_csv(tmp_path / "shop.csv").iloc[data._indices["test"]][["price", "visits"]].to_numpy()
    expected = torch.as_tensor(transform.transform(raw), dtype=torch.float32)
    assert not torch.allclose(x_num, expected)  # the table's own statistics differ from the checkpoint's
    predicted = torch.load(
        tmp_path / "run" / "lightning_logs" / "version_2" / "predictions.pt", weights_only=True
    )
    task = __import__("mlplab").load_run(run).model
    with torch.no_grad():
        probabilities = task.predict(expected, x_cat)
    torch.testing.assert_close(predicted["probabilities"], probabilities)


def test_a_category_more_or_fewer_in_the_training_split_is_served_with_the_checkpoints_codes(
    cli, tmp_path, capsys
):
    # The task was built with the cardinalities of the table as it is now, before the checkpoint's codes
    # were read: test and predict of a table whose training split holds a category more (or fewer) than
    # at the fit were refused as weights of another shape. Now the DataModule takes the checkpoint's
    # encoding before the task is built, and a value without a code gets code 0, which is said once.
    import torch

    import mlplab

    shop().to_csv(tmp_path / "shop.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(
        yaml.safe_dump({**TINY, "trainer": {**TINY["trainer"], "max_epochs": 1}})
    )
    assert cli("fit", "--config", "tiny.yaml", "--trainer.default_root_dir=run", *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    train = split_indices(120, 0.2, 0.2, 0)["train"]
    grown = shop()
    grown.loc[train[:5], "channel"] = "radio"
    grown.to_csv(tmp_path / "shop.csv", index=False)
    with pytest.warns(UserWarning, match=r"column 'channel': 5 rows of shop.csv hold values the checkpoint's "
                                         r"codes lack \('radio'\); they get code 0 \(unknown\)"):  # fmt: skip
        assert cli("test", *from_best(run)) == 0
    assert "test/acc" in capsys.readouterr().out
    shrunk = shop()
    shrunk.loc[shrunk["channel"] == "ad", "channel"] = "mail"  # a category fewer
    shrunk.to_csv(tmp_path / "shop.csv", index=False)
    assert cli("predict", *from_best(run)) == 0
    trained = mlplab.load_run(run)
    data = trained.datamodule()
    assert data.cardinalities == tuple(trained.hyper_parameters["cardinalities"]) == (4,)
    x_num, x_cat, _ = data.split_tensors("test")
    predicted = torch.load(run.parent / "version_2" / "predictions.pt", weights_only=True)
    with torch.no_grad():
        torch.testing.assert_close(predicted["probabilities"], trained.model.predict(x_num, x_cat))
    # a column the model reads is gone: refused in one line naming it, before a model is built
    shop().drop(columns="channel").to_csv(tmp_path / "shop.csv", index=False)
    capsys.readouterr()
    assert cli("predict", *from_best(run)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: shop.csv lacks the column(s) channel the checkpoint's model reads (numeric price, visits; "
        "categorical channel): use the data settings it was trained with (path, target, categorical, drop)"
    ]


def test_a_numeric_column_constant_now_is_kept_truthfully_in_test_and_a_resumed_fit(cli, tmp_path):
    # test --ckpt_path warned "numeric columns constant in the training split are left out: price" while
    # the checkpoint's encoding kept the column, and a resumed fit refitted TabM's bins to today's
    # training split and stopped on "numeric column 0 is constant in the training split: it has no bins".
    # Now the kept column is said to be kept, and a resumed fit keeps the checkpoint's bins.
    import torch

    shop().to_csv(tmp_path / "shop.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(
        yaml.safe_dump({**TINY, "trainer": {**TINY["trainer"], "max_epochs": 1}})
    )
    assert cli("fit", "--config", "tiny.yaml", "--trainer.default_root_dir=run", *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    changed = shop()
    changed.loc[split_indices(120, 0.2, 0.2, 0)["train"], "price"] = 5.0
    changed.to_csv(tmp_path / "shop.csv", index=False)
    resume = ["--config", str(run / "config.yaml"), "--ckpt_path=last", "--trainer.max_epochs=2",
              "--trainer.default_root_dir=run", *QUIET]  # fmt: skip
    for command, args in [("test", from_best(run)), ("fit", resume)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert cli(command, *args) == 0
        said = [str(w.message) for w in caught]
        assert not [m for m in said if "left out" in m], command
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["TabularDataModule"]["preprocessing"]["numeric_columns"] == [
        "price", "visits"
    ]  # fmt: skip


def from_best(run) -> list[str]:
    """Arguments of a ``test`` or ``predict`` of ``run``'s config from its best checkpoint."""
    config = str(run / "config.yaml")
    return ["--config", config, "--ckpt_path", "best", "--trainer.default_root_dir=run", *QUIET]


def test_a_checkpoint_without_the_encoding_still_loads_and_guards_its_digest(cli, tmp_path, capsys):
    # Checkpoints written before the encoding was kept: the table must be the one they were trained on.
    import torch

    shop().to_csv(tmp_path / "shop.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert cli("fit", "--config", "tiny.yaml", "--trainer.default_root_dir=run", *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    best = run / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, weights_only=True)
    del checkpoint["TabularDataModule"]
    torch.save(checkpoint, best)
    args = from_best(run)
    assert cli("test", *args) == 0
    capsys.readouterr()
    assert cli("test", *args, "--data.split_seed=1") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the checkpoint was trained on a table encoded otherwise" in errors[0]
    assert "keeps no encoding of it" in errors[0]
    # mlplab.load_run: the DataModule encodes the unchanged table itself, and refuses a changed one
    import mlplab
    from mlplab.errors import CheckpointError

    assert mlplab.load_run(run).datamodule().inputs(shop().head(3))[0].shape == (3, 2)
    shop().assign(price=lambda f: f["price"] * 2).to_csv(tmp_path / "shop.csv", index=False)
    with pytest.raises(
        CheckpointError, match="keeps no encoding of its table .an earlier mlplab wrote it. and the"
    ):
        mlplab.load_run(run).datamodule()


CASES = [
    ("missing-file", ["--data.path=nowhere.csv"], "TabularDataModule: no file nowhere.csv"),
    (
        "wrong-target",
        ["--data.target=purchased"],
        "target column 'purchased' is not in shop.csv (its columns: price, visits, channel, bought)",
    ),
    ("wrong-categorical", ["--data.categorical=[chanel]"], "categorical column 'chanel' is not in shop.csv"),
    ("constant-target", ["--data.path=constant.csv"], "the target column 'bought' is constant ('no')"),
    ("no-target-column", ["--data.path=no_target.csv"], "target column 'bought' is not in no_target.csv"),
    (
        "regression-of-text",
        ["--data.target=channel", "--data.objective=regression"],
        "regression needs a numeric target",
    ),
    (
        "tabm-arch",
        ["--model.backbone.arch_type=tabm-huge"],
        "model.backbone.arch_type: expected 'tabm', 'tabm-mini' or 'tabm-packed', got 'tabm-huge'",
    ),
    ("unknown-dataset", ["--data.path=null", "--data.dataset=iris"], "unknown dataset 'iris'"),
    (
        "california-offline",
        [
            "--data.path=null",
            "--data.dataset=california_housing",
            "--data.download=false",
            "--data.data_dir=empty",
        ],
        "California housing not found: expected cal_housing.tgz",
    ),
]


@pytest.mark.parametrize(("name", "args", "cause"), CASES, ids=[case[0] for case in CASES])
def test_bad_tabular_inputs_end_in_one_line(cli, tmp_path, capsys, name, args, cause):
    shop().to_csv(tmp_path / "shop.csv", index=False)
    shop().assign(bought="no").to_csv(tmp_path / "constant.csv", index=False)
    shop().drop(columns="bought").to_csv(tmp_path / "no_target.csv", index=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    capsys.readouterr()
    assert cli("fit", "--config", "tiny.yaml", "--trainer.default_root_dir=run", *args, *QUIET) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    assert cause in errors[0], errors[0]
    assert "Traceback" not in err


def test_models_lists_the_tabular_families(cli, capsys):
    assert cli("models", "--domain", "tabular") == 0
    out = capsys.readouterr().out
    for family in ("TabM", "TabularMLP", "FinalMLP"):
        assert family in out
    assert "438,688" in out  # TabM's California configuration, as the paper's report counts it
