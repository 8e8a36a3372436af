"""Callbacks for cross-cutting concerns: checkpoints, divergence, throughput and FLOPs, compiling, pruning."""

from mlplab.callbacks.checkpoint import AtomicCheckpointIO, BestCheckpoint
from mlplab.callbacks.compile import CompileBackbone
from mlplab.callbacks.divergence import DivergenceGuard
from mlplab.callbacks.logging import LearningRates, SaveRunConfig
from mlplab.callbacks.predictions import SavePredictions
from mlplab.callbacks.pruning import GlobalMagnitudePruning
from mlplab.callbacks.throughput import Throughput, leading_batch_size

__all__ = [
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "CompileBackbone",
    "DivergenceGuard",
    "GlobalMagnitudePruning",
    "LearningRates",
    "SavePredictions",
    "SaveRunConfig",
    "Throughput",
    "leading_batch_size",
]
