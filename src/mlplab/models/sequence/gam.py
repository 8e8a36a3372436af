"""Gated Associative Memory (GAM): a local causal convolution and a learned memory bank, fused by gates.

Acharya, 2025, "Gated Associative Memory: A Parallel O(N) Architecture for Efficient Sequence Modeling",
arXiv 2509.00605; official PyTorch code by the author (``GAMBlock`` / ``GAM_Model``).

Block (following the official code), for ``x`` of width d::

    n      = LN(x)
    local  = causal depthwise conv(n)                 (kernel 3, with bias)
    global = softmax(n M^T) M                         (M: learned memory bank, (slots, d), Xavier init)
    g_l, g_g = split(W_g n + b)                       (W_g: d -> 2d)
    x      = x + sigmoid(g_l) * local + sigmoid(g_g) * global
    x      = x + MLP(LN(x))                           (4x GELU MLP, dropout)

The model adds learned position embeddings, ends in a LayerNorm and ties the LM head to the token
embedding. Both paths are per token or look back ``kernel_size - 1`` tokens, so the layer is causal,
and it has **no long-range token mixing**: information travels at most ``kernel_size - 1`` positions
per layer (the memory bank is shared by all sequences, not written by the current one). Expect it to
fail at associative recall beyond that reach.

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``; inside, ``(B, T, d)`` and scores ``(B, T, slots)``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlplab.errors import require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.sequence.common import CausalDepthwiseConv1d, SequenceModel, build_channel_mlp
from mlplab.nn.channel_mlp import ChannelMLP


class GAMBlock(nn.Module):
    """One GAM block (module docs).

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        d_model: Width d.
        memory_slots: Rows of the learned memory bank.
        kernel_size: Taps of the causal depthwise convolution.
        channel_mlp: The block's channel MLP, or ``None``.
        mlp_ratio: Hidden width of the channel MLP as a multiple of d.
        dropout: Dropout after the channel MLP (as the official code).
    """

    def __init__(
        self,
        d_model: int,
        memory_slots: int,
        kernel_size: int,
        channel_mlp: ChannelMLP | None,
        mlp_ratio: float,
        dropout: float,
    ):
        super().__init__()
        require_positive("GatedAssociativeMemory", memory_slots=memory_slots, kernel_size=kernel_size)
        self.norm1 = nn.LayerNorm(d_model)
        self.conv = CausalDepthwiseConv1d(d_model, kernel_size, bias=True)
        self.memory = nn.Parameter(torch.empty(memory_slots, d_model))
        nn.init.xavier_uniform_(self.memory)
        self.gate = nn.Linear(d_model, 2 * d_model)
        self.mlp = build_channel_mlp(channel_mlp, d_model, mlp_ratio)
        self.norm2 = nn.LayerNorm(d_model) if self.mlp is not None else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm1(x)
        local = self.conv(n)
        retrieved = (n @ self.memory.t()).softmax(dim=-1) @ self.memory
        gate_local, gate_global = self.gate(n).chunk(2, dim=-1)
        x = x + torch.sigmoid(gate_local) * local + torch.sigmoid(gate_global) * retrieved
        if self.mlp is not None:
            x = x + self.dropout(self.mlp(self.norm2(x)))
        return x


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={
        "tiny": Variant({"d_model": 16, "n_layers": 2, "memory_slots": 8}),
        "official": Variant(
            {"d_model": 512, "n_layers": 6, "memory_slots": 512, "kernel_size": 3},
            params=22_599_680,
            shapes=(10_000, 256),
            source="the official GAM_Model's defaults (vocabulary 10,000, block 256)",
        ),
    },
    source="own, following the official code",
)
class GatedAssociativeMemory(SequenceModel):
    """The GAM language model (see module docs).

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence (size of the position table); filled in from the data.
        d_model: Width d.
        n_layers: Number of blocks.
        memory_slots: Rows of each block's memory bank (512 in the official code).
        kernel_size: Taps of the causal convolution (3).
        channel_mlp: The blocks' channel MLP, or ``null``.
        mlp_ratio: Hidden width of the channel MLP as a multiple of d (4).
        dropout: Dropout on the embeddings and after the channel MLPs (0.1 in the official code).
        learned_positions: Learned absolute position embeddings (official).
        tie_embeddings: Share the token embedding with the LM head (official).
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        d_model: int = 512,
        n_layers: int = 6,
        memory_slots: int = 512,
        kernel_size: int = 3,
        channel_mlp: ChannelMLP | None = ChannelMLP(),  # noqa: B008  (a config section; never mutated)
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        learned_positions: bool = True,
        tie_embeddings: bool = True,
    ):
        super().__init__(
            vocab_size,
            context_length,
            d_model,
            n_layers,
            learned_positions=learned_positions,
            norm="layernorm",
            embedding_dropout=dropout,
            tie_embeddings=tie_embeddings,
        )
        for _ in range(n_layers):
            self.blocks.append(GAMBlock(d_model, memory_slots, kernel_size, channel_mlp, mlp_ratio, dropout))
        self.finish()
