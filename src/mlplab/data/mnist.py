"""MNIST and Fashion-MNIST, read from their original IDX files."""

from __future__ import annotations

import contextlib
import gzip
import io
from pathlib import Path

import numpy as np
import torch
import torchvision

from mlplab.data.common import download_lock, file_digest, missing_data_message
from mlplab.data.image import ImageDataModule, Split
from mlplab.errors import DataCorruptError, DataNotFoundError

IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array of its stored shape.

    Raises:
        DataCorruptError: When the file is truncated or not an IDX file of unsigned bytes.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        magic = int.from_bytes(raw[0:4], "big")
        dtype_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
        if magic >> 16 != 0 or dtype_code not in IDX_DTYPES or ndim == 0:
            raise ValueError(f"bad IDX header {magic:#010x}")
        shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
        data = np.frombuffer(raw, dtype=IDX_DTYPES[dtype_code], offset=4 + 4 * ndim)
        return data.reshape(shape)
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as error:
        raise DataCorruptError(
            f"cannot read {path} as an IDX file ({error}); delete it and download it again"
        ) from error


class MNISTDataModule(ImageDataModule):
    """MNIST handwritten digits, 28×28 grey, 10 classes (60k train / 10k test).

    Files are looked for, compressed (``.gz``) or not, in ``data_dir/mnist/`` (the original file names)
    and ``data_dir/MNIST/raw/`` (torchvision's layout); when missing and online they are downloaded
    by ``torchvision.datasets.MNIST`` into the latter. Compressed files are checked against
    torchvision's MD5 record. Default validation split: 10,000 of the training images, as in the
    Hourglass paper (50k / 10k, permutation seed 42).

    Args:
        **kwargs: See :class:`~mlplab.data.image.ImageDataModule`.
    """

    image_shape = (1, 28, 28)
    num_classes = 10
    display_name = "MNIST"
    default_num_val = {"train": 10000, "test": 1000}
    torchvision_class = torchvision.datasets.MNIST
    folders = ("mnist", "MNIST/raw")
    split_files = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def _find(self, name: str) -> Path | None:
        for folder in self.folders:
            for candidate in (self.data_dir / folder / f"{name}.gz", self.data_dir / folder / name):
                if candidate.is_file():
                    return candidate
        return None

    def _missing(self, split: Split) -> list[str]:
        return [name for name in self.split_files[split] if self._find(name) is None]

    def _splits_needed(self) -> list[Split]:
        return ["test"] if self.source_split == "test" else ["train", "test"]

    def prepare_data(self) -> None:
        missing = [name for split in self._splits_needed() for name in self._missing(split)]
        if not missing:
            return
        mirrors = " or ".join(self.torchvision_class.mirrors)
        expected = [f"{name}.gz" for name in missing]
        folder = self.data_dir / self.folders[0]
        hint = ""
        if self.source_split == "train" and not self._missing("test"):
            hint = "; only the test split is here: set data.init_args.source_split: test to split it 3 ways"
        if not self.download:
            raise DataNotFoundError(
                missing_data_message(
                    self.display_name, folder, expected, mirrors, "downloads are disabled", hint
                )
            )
        log = io.StringIO()
        try:
            with download_lock(self.data_dir / self.folders[-1]):  # one process downloads, the others wait
                if not any(self._missing(split) for split in self._splits_needed()):
                    return
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    for train in (True, False):
                        self.torchvision_class(root=str(self.data_dir), train=train, download=True)
        except (RuntimeError, OSError) as error:
            raise DataNotFoundError(
                missing_data_message(self.display_name, folder, expected, mirrors, str(error), hint)
            ) from error

    def load_split(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        missing = self._missing(split)
        if missing:
            self.prepare_data()
        paths = [self._find(name) for name in self.split_files[split]]
        md5 = dict(self.torchvision_class.resources)
        for path in paths:
            expected = md5.get(path.name)
            if expected is not None and file_digest(path, "md5") != expected:
                raise DataCorruptError(
                    f"{path} fails its MD5 check (torchvision's record {expected}): "
                    "the file is damaged; delete it and download it again"
                )
        images, labels = (read_idx(path) for path in paths)
        if images.ndim != 3 or images.shape[1:] != self.image_shape[1:] or len(images) != len(labels):
            raise DataCorruptError(
                f"{paths[0]} and {paths[1]} do not hold matching 28×28 images and labels "
                f"(shapes {images.shape} and {labels.shape})"
            )
        return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST: 28×28 grey images of clothing, 10 classes (60k train / 10k test).

    Same files and layout as MNIST, in ``data_dir/fashion-mnist/`` or ``data_dir/FashionMNIST/raw/``;
    downloaded by ``torchvision.datasets.FashionMNIST``.

    Args:
        **kwargs: See :class:`~mlplab.data.image.ImageDataModule`.
    """

    display_name = "Fashion-MNIST"
    torchvision_class = torchvision.datasets.FashionMNIST
    folders = ("fashion-mnist", "FashionMNIST/raw")
