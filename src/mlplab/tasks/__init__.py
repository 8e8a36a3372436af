"""LightningModules, one per task; each receives its backbone family by dependency injection."""

from mlplab.tasks.base import ImageBackbone, Task
from mlplab.tasks.forecasting import ForecastingBackbone, ForecastingTask
from mlplab.tasks.image_classification import ImageClassification
from mlplab.tasks.image_restoration import ImageRestoration

__all__ = [
    "ForecastingBackbone",
    "ForecastingTask",
    "ImageBackbone",
    "ImageClassification",
    "ImageRestoration",
    "Task",
]
