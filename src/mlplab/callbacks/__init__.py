"""Cross-cutting callbacks: checkpoints, divergence, throughput, compilation, run summaries, watchdog.

Also global magnitude pruning and the S-KAN selection phase (ActivationSelection).
"""

from mlplab.callbacks.activation_selection import ActivationSelection
from mlplab.callbacks.checkpoint import AtomicCheckpointIO, BestCheckpoint
from mlplab.callbacks.compile import CompileBackbone
from mlplab.callbacks.divergence import DivergenceGuard
from mlplab.callbacks.logging import LearningRates, SaveRunConfig
from mlplab.callbacks.model_summary import FlopsModelSummary, RichFlopsModelSummary
from mlplab.callbacks.predictions import SavePredictions
from mlplab.callbacks.progress import ThrottledRichProgressBar, ThrottledTQDMProgressBar
from mlplab.callbacks.pruning import GlobalMagnitudePruning
from mlplab.callbacks.summary import RunSummary
from mlplab.callbacks.throughput import Throughput, leading_batch_size
from mlplab.callbacks.watchdog import DistributedWatchdog

__all__ = [
    "ActivationSelection",
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "CompileBackbone",
    "DistributedWatchdog",
    "DivergenceGuard",
    "FlopsModelSummary",
    "GlobalMagnitudePruning",
    "LearningRates",
    "RichFlopsModelSummary",
    "SavePredictions",
    "RunSummary",
    "SaveRunConfig",
    "ThrottledRichProgressBar",
    "ThrottledTQDMProgressBar",
    "Throughput",
    "leading_batch_size",
]
