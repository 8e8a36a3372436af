"""LightningDataModules: image classification datasets, time series (and, later, text)."""

from mlplab.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from mlplab.data.common import TensorBatchLoader, resolve_data_dir
from mlplab.data.digits import DigitsDataModule
from mlplab.data.image import ImageDataModule
from mlplab.data.image_folder import ImageFolderDataModule
from mlplab.data.mnist import FashionMNISTDataModule, MNISTDataModule
from mlplab.data.timeseries import CSVDataModule, ETTDataModule, ForecastingDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "CSVDataModule",
    "DigitsDataModule",
    "ETTDataModule",
    "FashionMNISTDataModule",
    "ForecastingDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "TensorBatchLoader",
    "resolve_data_dir",
]
