"""Callbacks for cross-cutting concerns: best checkpoint, throughput / FLOPs / MFU, compilation."""

from mlplab.callbacks.checkpoint import BestCheckpoint
from mlplab.callbacks.compile import CompileBackbone
from mlplab.callbacks.logging import LearningRates, SaveRunConfig
from mlplab.callbacks.predictions import SavePredictions
from mlplab.callbacks.throughput import Throughput, leading_batch_size

__all__ = [
    "BestCheckpoint",
    "CompileBackbone",
    "LearningRates",
    "SavePredictions",
    "SaveRunConfig",
    "Throughput",
    "leading_batch_size",
]
