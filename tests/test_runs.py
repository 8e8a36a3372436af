"""``mlplab.load_run``: the trained model of a run directory and what preparing its inputs takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mlplab
from mlplab.data import DigitsDataModule
from mlplab.errors import CheckpointError

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune.\n" * 20


def test_an_image_run_gives_its_model_and_normalisation(cli, tmp_path):
    config = tmp_path / "digits.yaml"
    config.write_text(
        "model:\n  class_path: ImageClassification\n  init_args:\n    backbone:\n"
        "      class_path: BottleneckMLP\n      init_args: {variant: tiny}\n"
        "data:\n  class_path: DigitsDataModule\n  init_args: {batch_size: 64}\n"
        "trainer:\n  max_epochs: 1\n  limit_train_batches: 3\n  limit_val_batches: 2\n"
        "  default_root_dir: run\n"
    )
    assert cli("fit", "--config", str(config), *QUIET) == 0
    run = mlplab.load_run("run/lightning_logs/version_0")
    data = DigitsDataModule()
    data.setup()
    assert run.preprocessing["task"] == "ImageClassification" and run.preprocessing["image_shape"] == [
        1,
        8,
        8,
    ]
    assert run.preprocessing["normalize"] and run.preprocessing["pixel_scale"] == 1 / 255
    assert run.preprocessing["mean"] == pytest.approx(data.mean.tolist())
    assert run.preprocessing["std"] == pytest.approx(data.std.tolist())
    assert not run.model.training and type(run.backbone).__name__ == "BottleneckMLP"
    saved = torch.load(run.checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(value, saved[key]) for key, value in run.model.state_dict().items())
    images, _ = next(iter(data.test_dataloader()))  # uint8, as a user holds them
    mean, std = (torch.tensor(run.preprocessing[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    x = (images.float() * run.preprocessing["pixel_scale"] - mean) / std
    torch.testing.assert_close(x, data.to_model_input(images))
    assert run.model(x).shape == (len(images), 10)
    assert run.config["data"]["class_path"].endswith("DigitsDataModule")
    assert type(run.datamodule()).__name__ == "DigitsDataModule"
    assert mlplab.load_run(run.checkpoint).checkpoint == run.checkpoint  # a checkpoint file works too


def test_a_character_run_gives_its_vocabulary(cli, tmp_path):
    (tmp_path / "book.txt").write_text(TEXT)
    config = tmp_path / "text.yaml"
    config.write_text(
        "model:\n  class_path: LanguageModeling\n  init_args:\n    sample_length: 0\n    backbone:\n"
        "      class_path: Transformer\n      init_args: {variant: tiny}\n"
        "data:\n  class_path: CharTextDataModule\n  init_args:\n    text_file: book.txt\n"
        "    context_length: 16\n    batch_size: 8\n    batches_per_epoch: 2\n"
        "trainer:\n  max_epochs: 1\n  limit_val_batches: 2\n  default_root_dir: run\n"
    )
    assert cli("fit", "--config", str(config), *QUIET) == 0
    run = mlplab.load_run("run/lightning_logs/version_0", checkpoint="last")
    assert run.preprocessing["vocabulary"] == "".join(sorted(set(TEXT[: int(len(TEXT) * 0.9)])))
    assert run.checkpoint.name == "last.ckpt"
    tokens = torch.tensor([[run.preprocessing["vocabulary"].index(c) for c in "a truth"]])
    assert run.model(tokens).shape == (1, 7, len(run.preprocessing["vocabulary"]))
    assert run.model.sample("It is", length=5).startswith("It is")


def test_no_run_there_is_one_clear_line(tmp_path):
    with pytest.raises(CheckpointError, match="^no run at .*nowhere: give a run directory"):
        mlplab.load_run(tmp_path / "nowhere")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=r"^no best.ckpt in .*empty/checkpoints: give a run directory"):
        mlplab.load_run(tmp_path / "empty")
    torch.save({}, tmp_path / "empty" / "checkpoints" / "last.ckpt")  # a fit stopped before validating
    with pytest.raises(
        CheckpointError, match=r"^no best.ckpt in .*, which holds last.ckpt: .*--checkpoint last"
    ):
        mlplab.load_run(tmp_path / "empty")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="was not written by mlplab's command line"):
        mlplab.load_run(tmp_path / "plain.ckpt")


def _grown_run(cli, tmp_path, data: str, grow) -> mlplab.Run:
    """A run fitted on ``data`` (a DataModule's YAML), whose data ``grow`` changes after the fit."""
    config = tmp_path / "run.yaml"
    config.write_text(
        f"{data}trainer:\n  max_epochs: 1\n  limit_train_batches: 2\n  limit_val_batches: 1\n"
        "  default_root_dir: run\n"
    )
    assert cli("fit", "--config", str(config), *QUIET) == 0
    run = mlplab.load_run("run/lightning_logs/version_0")
    grow()
    return run


def test_the_datamodule_of_a_grown_image_folder_normalises_with_the_checkpoint_statistics(cli, tmp_path):
    # Run.datamodule() built the DataModule from config.yaml alone, so its normalisation was measured on
    # the folder as it is now, not the one the model was trained on (as mlplab test and predict use).
    from PIL import Image

    def folder(name: str, count: int, colour: int) -> None:
        for split in ("train", "test"):
            for label in ("cat", "dog"):
                (tmp_path / "pets" / split / label).mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    Image.new("RGB", (4, 4), (colour, 40 * i, 30)).save(
                        tmp_path / "pets" / split / label / f"{name}{i}.png"
                    )

    folder("old", 4, 20)
    run = _grown_run(
        cli,
        tmp_path,
        "model:\n  class_path: ImageClassification\n  init_args:\n    backbone:\n"
        "      class_path: BottleneckMLP\n      init_args: {variant: tiny}\n"
        "data:\n  class_path: ImageFolderDataModule\n"
        "  init_args: {root: pets, data_dir: ., num_val: 2, batch_size: 4}\n",
        lambda: folder("new", 4, 250),  # brighter images added since the fit
    )
    data = run.datamodule()
    data.setup()
    mean, std = torch.tensor(run.preprocessing["mean"]), torch.tensor(run.preprocessing["std"])
    assert torch.equal(data.mean, mean) and torch.equal(data.std, std)
    images, _ = data.splits["test"]
    expected = (images.float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    torch.testing.assert_close(data.to_model_input(images), expected)


def test_the_datamodule_of_a_grown_csv_standardises_with_the_checkpoint_scaler(cli, tmp_path):
    # As above for the forecasting scaler: a file longer since the fit gave another mean and std.
    import numpy as np

    def write(rows: int, loc: float) -> None:
        values = np.random.default_rng(rows).normal(loc=loc, size=(rows, 2))
        dates = np.datetime64("2021-01-01T00:00") + np.arange(rows) * np.timedelta64(1, "h")
        lines = ["date,x,OT"] + [
            f"{str(d).replace('T', ' ')},{a:.4f},{b:.4f}" for d, (a, b) in zip(dates, values)
        ]
        (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n")

    write(300, 0.0)
    run = _grown_run(
        cli,
        tmp_path,
        "model:\n  class_path: ForecastingTask\n  init_args:\n    backbone: DLinear\n"
        "data:\n  class_path: CSVDataModule\n  init_args:\n    file: mine.csv\n    data_dir: .\n"
        "    lookback: 24\n    horizon: 12\n",
        lambda: write(500, 4.0),  # the file has grown, by larger values
    )
    data = run.datamodule()
    data.setup()
    torch.testing.assert_close(data.mean, torch.tensor(run.preprocessing["mean"]))
    torch.testing.assert_close(data.std, torch.tensor(run.preprocessing["std"]))
    assert data.num_rows == 500 and run.preprocessing["num_rows"] == 300


def test_a_tabular_run_encodes_new_raw_rows_as_its_test_split_and_predicts_as_mlplab_predict(cli, tmp_path):
    # A tabular checkpoint kept neither the numeric transform nor the category codes, so raw rows could
    # not be turned into the model's inputs outside the DataModule's own splits.
    import pandas as pd

    from mlplab.data.tabular import DATASETS, rebuild_numeric_transform
    from tests.conftest import REPO
    from tests.test_readme_examples import code_blocks, readme_section

    tiny = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
            "--model.backbone.init_args.ensemble_size=4", "--model.backbone.init_args.embed_dim=16",
            "--model.backbone.init_args.depth=1", *QUIET]  # fmt: skip
    assert cli("fit", "--config", str(REPO / "configs/tabular/tabm_penguins.yaml"), *tiny) == 0
    assert (
        cli("predict", "--config", "lightning_logs/version_0/config.yaml", "--ckpt_path", "best", *QUIET) == 0
    )
    predicted = torch.load("lightning_logs/version_1/predictions.pt", weights_only=True)["probabilities"]

    run = mlplab.load_run("lightning_logs/version_0")
    kept = run.preprocessing
    assert kept["numeric_columns"] == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
                                       "year"]  # fmt: skip
    assert kept["categorical_columns"] == ["island", "sex"] and kept["classes"] == ["Adelie", "Chinstrap",
                                                                                    "Gentoo"]  # fmt: skip
    assert kept["numeric_transform"]["kind"] == "QuantileTransformer"
    data = run.datamodule()
    frame, _ = DATASETS["penguins"].load(tmp_path, False)
    rows = frame.iloc[data._indices["test"]].drop(columns="species")  # the raw test rows, in another order
    rows = rows.sample(frac=1.0, random_state=0)
    x_num, x_cat = data.inputs(rows)
    position = torch.as_tensor(pd.Index(frame.index[data._indices["test"]]).get_indexer(rows.index))
    test_num, test_cat, _ = data.split_tensors("test")
    assert torch.equal(x_num, test_num[position]) and torch.equal(x_cat, test_cat[position])
    raw = rows[kept["numeric_columns"]].to_numpy(dtype=float)  # the stored transform, rebuilt, does the same
    expected = rebuild_numeric_transform(kept["numeric_transform"]).transform(raw)
    torch.testing.assert_close(x_num, torch.as_tensor(np.nan_to_num(expected), dtype=torch.float32))
    with torch.no_grad():
        torch.testing.assert_close(run.model.predict(x_num, x_cat), predicted[position])
        torch.testing.assert_close(run.model.inference_module()(x_num, x_cat), predicted[position])

    namespace: dict = {}
    exec(code_blocks(readme_section("tabular-notebook"))["python"], namespace)  # the README's notebook code
    assert namespace["probabilities"].shape == (2, 3) and set(namespace["species"]) <= set(kept["classes"])
