import gzip

import pytest
import torch
import torchvision

from mlplab.data import MNISTDataModule
from mlplab.data.mnist import read_idx
from mlplab.errors import DataCorruptError, DataNotFoundError
from tests.conftest import require_data


def test_real_mnist_test_split_loads_and_splits_8k_1k_1k():
    folder = require_data("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")
    data = MNISTDataModule(data_dir=str(folder), source_split="test", normalize=False)
    data.setup()
    sizes = {k: tuple(v[0].shape) for k, v in data.splits.items()}
    assert sizes == {"train": (8000, 1, 28, 28), "val": (1000, 1, 28, 28), "test": (1000, 1, 28, 28)}
    labels = torch.cat([v[1] for v in data.splits.values()])
    assert torch.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    images = data.splits["train"][0]
    assert images.dtype == torch.uint8 and images.max() == 255


def test_missing_training_split_names_files_folder_and_source(tmp_path):
    folder = require_data("mnist/t10k-images-idx3-ubyte.gz")
    data = MNISTDataModule(data_dir=str(folder), download=False)
    with pytest.raises(DataNotFoundError) as error:
        data.setup()
    message = str(error.value)
    assert "\n" not in message
    for expected in (
        "train-images-idx3-ubyte.gz",
        str(folder / "mnist"),
        "ossci-datasets",
        "source_split: test",
    ):
        assert expected in message


def test_no_network_and_no_files(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["https://unreachable.invalid/mnist/"])
    with pytest.raises(
        DataNotFoundError,
        match=r"MNIST not found: expected t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz in .*; downl",
    ):
        MNISTDataModule(data_dir=str(tmp_path), source_split="test").setup()


def test_corrupt_files(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataCorruptError, match="MD5 check"):
        MNISTDataModule(data_dir=str(tmp_path), source_split="test").setup()
    with pytest.raises(DataCorruptError, match="cannot read .* as an IDX file"):
        read_idx(folder / "t10k-labels-idx1-ubyte.gz")
