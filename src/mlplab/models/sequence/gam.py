"""Gated Associative Memory (GAM): a local causal convolution and a learned memory bank, fused by gates.

Acharya, 2025, "Gated Associative Memory: A Parallel O(N) Architecture for Efficient Sequence Modeling",
arXiv 2509.00605; official PyTorch code by the author, github.com/rishiraj/gam (``gam_model.py``:
``GAMBlock`` / ``GAM_Model``). Checked weight for weight against it (commit 2ebb82e; the published
configuration, variant ``official``, and a small one with kernel 4): same parameters, logits and
gradients, bit for bit, by ``benchmarks/sequence_official_check.py --gam`` (figures in
``docs/results.md``).

Block (following the official code), for ``x`` of width d; the mixer is the middle four lines::

    n      = LN(x)
    local  = causal depthwise conv(n)                 (kernel 3, with bias)
    global = softmax(n M^T) M                         (M: learned memory bank, (slots, d), Xavier init)
    g_l, g_g = split(W_g n + b)                       (W_g: d -> 2d)
    x      = x + sigmoid(g_l) * local + sigmoid(g_g) * global
    x      = x + dropout(MLP(LN(x)))                  (4x GELU MLP)

The model adds learned position embeddings, ends in a LayerNorm and ties the LM head to the token
embedding. Both paths are per token or look back ``kernel_size - 1`` tokens, so the layer is causal,
and it has **no long-range token mixing**: information travels at most ``kernel_size - 1`` positions
per layer (the memory bank is shared by all sequences, not written by the current one). Expect it to
fail at associative recall beyond that reach.

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``; inside, ``(B, T, d)`` and scores ``(B, T, slots)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlplab.errors import require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.sequence.common import CausalDepthwiseConv1d, SequenceModel


class GAMMixer(nn.Module):
    """The GAM mixer (module docs): a local causal convolution and a memory-bank lookup, fused by gates.

    Shapes: ``(B, T, d) -> (B, T, d)``; its input is the block's normalised ``n``.

    Args:
        dim: Width d.
        memory_slots: Rows of the learned memory bank.
        kernel_size: Taps of the causal depthwise convolution.
    """

    def __init__(self, dim: int, memory_slots: int, kernel_size: int):
        super().__init__()
        require_positive("GatedAssociativeMemory", memory_slots=memory_slots, kernel_size=kernel_size)
        self.conv = CausalDepthwiseConv1d(dim, kernel_size, bias=True)
        self.memory = nn.Parameter(torch.empty(memory_slots, dim))
        nn.init.xavier_uniform_(self.memory)
        self.gate = nn.Linear(dim, 2 * dim)

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        local = self.conv(n)
        retrieved = (n @ self.memory.t()).softmax(dim=-1) @ self.memory
        gate_local, gate_global = self.gate(n).chunk(2, dim=-1)
        return torch.sigmoid(gate_local) * local + torch.sigmoid(gate_global) * retrieved


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={
        "tiny": Variant({"embed_dim": 16, "depth": 2, "memory_slots": 8}),
        "official": Variant(
            {"embed_dim": 512, "depth": 6, "memory_slots": 512, "kernel_size": 3},
            params=22_599_680,
            shapes=(10_000, 256),
            source="the official GAM_Model's defaults (vocabulary 10,000, block 256)",
        ),
    },
    blocks=SequenceModel.block_layout,
    renamed=SequenceModel.renamed_args,
    legacy_keys=[(r"^(blocks\.\d+\.)(conv|memory|gate)(\.|$)", r"\1mixer.\2\3")],
    source="own, weight for weight with the official code",
)
class GatedAssociativeMemory(SequenceModel):
    """The GAM language model (see module docs); the official model is variant ``official``.

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence (size of the position table); filled in from the data.
        memory_slots: Rows of each block's memory bank (512 in the official code).
        kernel_size: Taps of the causal convolution (3).
        learned_positions: Learned absolute position embeddings (official).
        **kwargs: The arguments every sequence family shares (:class:`SequenceModel`): ``embed_dim``
            (512 in the official code), ``depth``, ``channel_mlp``, ``mlp_ratio``, ``norm``, ``bias``,
            ``dropout`` (after the channel MLPs and on the embeddings; 0.1 in the official code),
            ``embedding_dropout``, ``tie_embeddings``.
    """

    #: The official block drops out the channel MLP's output only.
    mixer_dropout = False

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        memory_slots: int = 512,
        kernel_size: int = 3,
        learned_positions: bool = True,
        **kwargs: Any,
    ):
        super().__init__(vocab_size, context_length, learned_positions=learned_positions, **kwargs)
        self.build_blocks(lambda: GAMMixer(self.embed_dim, memory_slots, kernel_size))
