"""CIFAR-10 and CIFAR-100 through torchvision (the original Python pickles)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
import torchvision

from mlplab.data.common import download_lock, missing_data_message
from mlplab.data.image import ImageDataModule, Split
from mlplab.errors import DataCorruptError, DataNotFoundError


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 32×32 colour images, 10 classes (50k train / 10k test).

    Read by ``torchvision.datasets.CIFAR10`` from ``data_dir/cifar-10-batches-py/`` (MD5-checked by
    torchvision) and downloaded there when missing and online. The JPEG copy of CIFAR-10 in ImageFolder
    layout loads with :class:`~mlplab.data.image_folder.ImageFolderDataModule` instead. Default
    validation split: 5,000 of the training images.

    Args:
        **kwargs: See :class:`~mlplab.data.image.ImageDataModule`.
    """

    image_shape = (3, 32, 32)
    num_classes = 10
    display_name = "CIFAR-10"
    torchvision_class = torchvision.datasets.CIFAR10

    def _files(self) -> list[str]:
        cls = self.torchvision_class
        return [name for name, _ in cls.train_list + cls.test_list]

    def _folder_present(self) -> bool:
        folder = self.data_dir / self.torchvision_class.base_folder
        return all((folder / name).is_file() for name in self._files())

    def prepare_data(self) -> None:
        if self._folder_present():
            return
        cls = self.torchvision_class
        folder = self.data_dir / cls.base_folder
        if not self.download:
            raise DataNotFoundError(
                missing_data_message(
                    self.display_name, folder, self._files(), cls.url, "downloads are disabled"
                )
            )
        log = io.StringIO()
        try:
            with download_lock(folder):  # one process downloads, the others wait
                if self._folder_present():
                    return
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    cls(root=str(self.data_dir), train=True, download=True)
        except (RuntimeError, OSError) as error:
            raise DataNotFoundError(
                missing_data_message(self.display_name, folder, self._files(), cls.url, str(error).strip())
            ) from error

    def load_split(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        self.prepare_data()
        try:
            dataset = self.torchvision_class(root=str(self.data_dir), train=split == "train", download=False)
        except RuntimeError as error:  # torchvision's integrity check failed
            folder = self.data_dir / self.torchvision_class.base_folder
            raise DataCorruptError(
                f"{folder} fails torchvision's MD5 check ({error}); delete the folder and download it again"
            ) from error
        images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
        return images, torch.tensor(dataset.targets, dtype=torch.int64)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: 32×32 colour images, 100 classes (50k train / 10k test), from ``cifar-100-python/``.

    Args:
        **kwargs: See :class:`~mlplab.data.image.ImageDataModule`.
    """

    num_classes = 100
    display_name = "CIFAR-100"
    torchvision_class = torchvision.datasets.CIFAR100
