"""Callbacks for cross-cutting concerns: checkpoints, divergence, throughput, compilation, watchdog."""

from mlplab.callbacks.checkpoint import AtomicCheckpointIO, BestCheckpoint
from mlplab.callbacks.compile import CompileBackbone
from mlplab.callbacks.divergence import DivergenceGuard
from mlplab.callbacks.logging import LearningRates, SaveRunConfig
from mlplab.callbacks.predictions import SavePredictions
from mlplab.callbacks.throughput import Throughput, leading_batch_size
from mlplab.callbacks.watchdog import DistributedWatchdog

__all__ = [
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "CompileBackbone",
    "DistributedWatchdog",
    "DivergenceGuard",
    "LearningRates",
    "SavePredictions",
    "SaveRunConfig",
    "Throughput",
    "leading_batch_size",
]
