"""LightningModules, one per task; each receives its backbone family by dependency injection."""

from mlplab.tasks.associative_recall import AssociativeRecall
from mlplab.tasks.base import ImageBackbone, Task
from mlplab.tasks.forecasting import ForecastingBackbone, ForecastingTask
from mlplab.tasks.function_fitting import FunctionFitting
from mlplab.tasks.image_classification import ImageClassification
from mlplab.tasks.image_fitting import ImageFitting
from mlplab.tasks.image_restoration import ImageRestoration
from mlplab.tasks.language_modeling import LanguageModeling, generate
from mlplab.tasks.sequence import SequenceBackbone, SequenceTask
from mlplab.tasks.tabular import TabularBackbone, TabularTask

__all__ = [
    "AssociativeRecall",
    "ForecastingBackbone",
    "ForecastingTask",
    "ImageBackbone",
    "FunctionFitting",
    "ImageClassification",
    "ImageFitting",
    "ImageRestoration",
    "LanguageModeling",
    "SequenceBackbone",
    "SequenceTask",
    "TabularBackbone",
    "TabularTask",
    "Task",
    "generate",
]
