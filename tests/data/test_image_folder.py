from pathlib import Path

import pytest
import torch
from PIL import Image

from mlplab.data import ImageFolderDataModule
from mlplab.errors import ConfigError, DataCorruptError, DataNotFoundError
from tests.conftest import cifar10_jpeg_subset, require_data


@pytest.fixture(scope="module")
def cifar_archive():
    return require_data("cifar10-jpg.tar.gz") / "cifar10-jpg.tar.gz"


@pytest.fixture(scope="module")
def from_archive(cifar_archive):
    """The first 20 images of every class read from the archive, set up once (a pass over the archive
    and 400 decodes; the tests only read it), with what it knew before ``setup``."""
    data = ImageFolderDataModule(root=str(cifar_archive), max_images_per_class=20, num_val=20)
    before_setup = (data.image_shape, data.num_classes, data.class_names[:3])
    data.setup()
    return data, before_setup


def test_real_cifar10_jpeg_archive(from_archive):
    data, before_setup = from_archive
    assert before_setup == ((3, 32, 32), 10, ["airplane", "automobile", "bird"])
    assert len(data.splits["train"][0]) == 180 and len(data.splits["val"][0]) == 20
    assert len(data.splits["test"][0]) == 200
    assert data.splits["train"][0].dtype == torch.uint8


def test_real_cifar10_jpeg_folders_once_unpacked(cifar_archive, from_archive):
    # the first 20 images (by file name) of every class, unpacked once per session (a full unpack works
    # the same, only slower); read as folders they are the images the archive gives
    root = cifar10_jpeg_subset(cifar_archive, per_class=20)
    data = ImageFolderDataModule(
        root=str(next(p.parent for p in root.rglob("train") if p.is_dir())), num_val=20
    )
    data.setup()
    archive, _ = from_archive
    assert len(data.splits["test"][0]) == 200
    assert torch.equal(data.splits["test"][0], archive.splits["test"][0])
    assert torch.equal(data.splits["train"][1], archive.splits["train"][1])


def test_decodes_once_and_caches(tmp_path, monkeypatch):
    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(tmp_path / split / label / f"{i}.png")
    data = ImageFolderDataModule(root=str(tmp_path), num_val=2, batch_size=4)
    calls = []
    original = ImageFolderDataModule._decode
    monkeypatch.setattr(
        ImageFolderDataModule, "_decode", lambda self, *a: calls.append(1) or original(self, *a)
    )
    data.setup()
    decoded = len(calls)
    for _ in range(2):  # two epochs
        for batch in data.train_dataloader():
            data.on_after_batch_transfer(batch, 0)
    assert len(calls) == decoded == 24


def test_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="image folder not found"):
        ImageFolderDataModule(root=str(tmp_path / "nothing"))
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataCorruptError, match="cannot decode"):
        ImageFolderDataModule(root=str(tmp_path), test_folder=None)
    (tmp_path / "train" / "a" / "x.jpg").unlink()
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "a" / "x.png")
    Image.new("RGB", (5, 5)).save(tmp_path / "train" / "a" / "y.png")
    data = ImageFolderDataModule(root=str(tmp_path), test_folder=None, num_val=1, num_test=0)
    with pytest.raises(ConfigError):
        data.setup()
    data = ImageFolderDataModule(root=str(tmp_path), test_folder=None, num_val=1, num_test=1, image_size=4)
    with pytest.raises(ConfigError, match="leave training images"):
        data.setup()
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataCorruptError, match="cannot read the archive"):
        ImageFolderDataModule(root=str(bad))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decode_threads": 0}, "decode_threads must be a positive integer, got 0"),  # once a traceback
        ({"max_images_per_class": 0}, "max_images_per_class must be a positive integer, got 0"),
    ],
)
def test_counts_must_be_positive(tmp_path, kwargs, message):
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "a" / "x.png")
    with pytest.raises(ConfigError, match=message):
        ImageFolderDataModule(root=str(tmp_path), test_folder=None, **kwargs)


def _folder(root, classes, per_class=4):
    for split in ("train", "test"):
        for index, label in enumerate(classes):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (4, 4), (index * 60, i * 40, 0)).save(root / split / label / f"{i}.png")


def _fit_on_a_folder(cli, tmp_path, classes, num_val):
    """Fit a tiny classifier for one epoch on a folder ``pets`` of ``classes``; its run folder."""
    _folder(tmp_path / "pets", classes)
    config = tmp_path / "pets.yaml"
    config.write_text(
        "model:\n  class_path: ImageClassification\n  init_args:\n    backbone:\n"
        "      class_path: BottleneckMLP\n      init_args: {variant: tiny}\n"
        "data:\n  class_path: ImageFolderDataModule\n"
        f"  init_args: {{root: pets, data_dir: ., num_val: {num_val}, batch_size: 4}}\n"
        "trainer:\n  max_epochs: 1\n  default_root_dir: run\n"
        "  enable_progress_bar: false\n  enable_model_summary: false\n"
    )
    assert cli("fit", "--config", str(config)) == 0
    return tmp_path / "run" / "lightning_logs" / "version_0"


def test_checkpoints_record_the_class_names_and_refuse_other_classes(cli, capsys, tmp_path):
    # The class of an output is its position among the sorted folder names: load_run and predict name
    # the classes the model was trained on, and a folder with other classes is refused in one line.
    import csv

    import mlplab

    run = _fit_on_a_folder(cli, tmp_path, ["cat", "dog", "fox"], num_val=3)
    assert mlplab.load_run(run).preprocessing["class_names"] == ["cat", "dog", "fox"]
    best = f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"
    assert cli("predict", "--config", str(run / "config.yaml"), best) == 0
    with open(tmp_path / "run" / "lightning_logs" / "version_1" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == ["cat"] * 4 + ["dog"] * 4 + ["fox"] * 4
    assert {row["prediction"] for row in rows} <= {"cat", "dog", "fox"}
    assert all(0 < float(row["probability"]) <= 1 for row in rows)

    _folder(tmp_path / "renamed", ["cat", "dog", "wolf"])
    _folder(tmp_path / "more", ["cat", "dog", "fox", "owl"])
    expected = {
        "renamed": "has 3 (trained on but not in the folder: fox; new: wolf)",
        "more": "has 4 (new: owl)",
    }
    for folder, difference in expected.items():
        for stage in ("test", "predict"):
            capsys.readouterr()
            status = cli(stage, "--config", str(run / "config.yaml"), best, f"--data.root={folder}")
            assert status == 2
            assert capsys.readouterr().err.strip().splitlines()[-1] == (
                f"error: the checkpoint's model was trained on 3 classes, the image folder "
                f"{folder}/train {difference}; its outputs would name other classes: use "
                "a folder with the classes it was trained on"
            )


def test_a_grown_folder_is_tested_and_predicted_with_the_checkpoint_normalisation(cli, tmp_path, caplog):
    # test and predict recomputed the normalisation from the folder as it is now: with brighter images
    # added since training, the model saw inputs normalised otherwise. Now the checkpoint's statistics
    # are used, and that the folder's differ is said once.
    import logging

    import mlplab
    from mlplab.cli import MLPLabCLI

    run = _fit_on_a_folder(cli, tmp_path, ["cat", "dog"], num_val=2)
    best = f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"
    trained = mlplab.load_run(run)
    mean, std = torch.tensor(trained.preprocessing["mean"]), torch.tensor(trained.preprocessing["std"])
    for label in ("cat", "dog"):  # the folder grows by brighter images
        for i in range(4):
            Image.new("RGB", (4, 4), (250, 250, 200 + i * 10)).save(
                tmp_path / "pets" / "train" / label / f"new{i}.png"
            )
    caplog.set_level(logging.INFO)
    for stage in ("test", "predict"):
        evaluated = MLPLabCLI(args=[stage, "--config", str(run / "config.yaml"), best])
        data = evaluated.datamodule
        assert torch.equal(data.mean, mean) and torch.equal(data.std, std)
    said = [r.getMessage() for r in caplog.records if "differ from the checkpoint's" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(
        "image folder pets/train: the training split's per-channel mean"
    )
    # predict's probabilities are the model's on the test images normalised with the checkpoint's statistics
    images = data.splits["test"][0].float() / 255
    with torch.no_grad():
        expected = trained.model((images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).softmax(-1)
    saved = torch.load(Path(evaluated.trainer.log_dir) / "predictions.pt", weights_only=True)
    torch.testing.assert_close(saved["probabilities"], expected)


@pytest.mark.parametrize("test_folder", ["test", None])
def test_the_prediction_table_names_the_file_of_every_image(tmp_path, test_folder):
    # predictions.csv had label, prediction, probability only: which image a row was about was unsaid
    import numpy as np

    _folder(tmp_path / "pets", ["cat", "dog", "fox"], per_class=5)
    data = ImageFolderDataModule(root=str(tmp_path / "pets"), test_folder=test_folder, num_val=3, num_test=4)
    data.setup()
    images, labels = data.splits["test"]
    outputs = {"labels": labels, "predictions": labels, "probabilities": torch.eye(3)[labels]}
    files = data.prediction_table(outputs)["file"]
    assert len(files) == len(labels) and len(set(files)) == len(files)
    for file, image, label in zip(files, images, labels):
        assert Path(file).parts[-2] == data.class_names[label]
        pixels = np.asarray(Image.open(tmp_path / "pets" / file).convert("RGB"))
        assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1))
    second = {key: value[1::2] for key, value in outputs.items()}  # process 1 of 2: every second image
    assert list(data.prediction_table(second, first_window=1, every=2)["file"]) == list(files[1::2])
