"""LightningDataModules: images, series, text, synthetic recall, tables, one image's pixels, formulas."""

from mlplab.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from mlplab.data.common import TensorBatchLoader, resolve_data_dir
from mlplab.data.digits import DigitsDataModule
from mlplab.data.fields import ImageFittingDataModule
from mlplab.data.functions import FunctionDataModule
from mlplab.data.image import ImageDataModule
from mlplab.data.image_folder import ImageFolderDataModule
from mlplab.data.in_memory import InMemoryDataModule
from mlplab.data.mnist import FashionMNISTDataModule, MNISTDataModule
from mlplab.data.mqar import MQAR_PRESETS, MQARDataModule, multiquery_ar
from mlplab.data.tabular import TabularDataModule
from mlplab.data.text import CharTextDataModule, RandomWindowLoader
from mlplab.data.timeseries import CSVDataModule, ETTDataModule, ForecastingDataModule
from mlplab.data.tokenizer import CharTokenizer

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "CSVDataModule",
    "CharTextDataModule",
    "CharTokenizer",
    "DigitsDataModule",
    "ETTDataModule",
    "FashionMNISTDataModule",
    "ForecastingDataModule",
    "FunctionDataModule",
    "ImageDataModule",
    "ImageFittingDataModule",
    "ImageFolderDataModule",
    "InMemoryDataModule",
    "MNISTDataModule",
    "MQARDataModule",
    "MQAR_PRESETS",
    "RandomWindowLoader",
    "TabularDataModule",
    "TensorBatchLoader",
    "multiquery_ar",
    "resolve_data_dir",
]
