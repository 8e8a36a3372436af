"""Callbacks for cross-cutting concerns: checkpoints, divergence, throughput / FLOPs / MFU, compilation.

Also the S-KAN selection phase (ActivationSelection).
"""

from mlplab.callbacks.activation_selection import ActivationSelection
from mlplab.callbacks.checkpoint import AtomicCheckpointIO, BestCheckpoint
from mlplab.callbacks.compile import CompileBackbone
from mlplab.callbacks.divergence import DivergenceGuard
from mlplab.callbacks.logging import LearningRates, SaveRunConfig
from mlplab.callbacks.predictions import SavePredictions
from mlplab.callbacks.throughput import Throughput, leading_batch_size

__all__ = [
    "ActivationSelection",
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "CompileBackbone",
    "DivergenceGuard",
    "LearningRates",
    "SavePredictions",
    "SaveRunConfig",
    "Throughput",
    "leading_batch_size",
]
