"""LightningDataModules: image classification datasets (and, later, time series and text)."""

from mlplab.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from mlplab.data.common import TensorBatchLoader, resolve_data_dir
from mlplab.data.digits import DigitsDataModule
from mlplab.data.image import ImageDataModule
from mlplab.data.image_folder import ImageFolderDataModule
from mlplab.data.mnist import FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "TensorBatchLoader",
    "resolve_data_dir",
]
