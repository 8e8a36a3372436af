"""Sequence families (pure PyTorch, causal), called as ``family(vocab_size, context_length, **args)``."""

from mlplab.models.sequence.common import SequenceModel
from mlplab.models.sequence.gam import GatedAssociativeMemory
from mlplab.models.sequence.gated_conv import GatedConv
from mlplab.models.sequence.gla import GatedLinearAttention
from mlplab.models.sequence.hopfield import HopfieldLM
from mlplab.models.sequence.mamba import Mamba
from mlplab.models.sequence.transformer import Transformer

__all__ = [
    "GatedAssociativeMemory",
    "GatedConv",
    "GatedLinearAttention",
    "HopfieldLM",
    "Mamba",
    "SequenceModel",
    "Transformer",
]
