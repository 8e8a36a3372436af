"""Decoder-only Transformer with SDPA attention and an optional gated-attention output gate.

The baseline is nanoGPT's GPT (Karpathy, github.com/karpathy/nanoGPT, ``model.py``), itself GPT-2
(Radford et al., 2019): learned token and position embeddings, pre-LayerNorm blocks
``x + attn(LN(x))`` and ``x + MLP(LN(x))`` with a 4x GELU MLP, a final LayerNorm and an LM head tied to
the token embedding; with ``bias=False`` neither the linear layers nor the LayerNorms have biases
(nanoGPT's Shakespeare setting). Attention is ``torch.nn.functional.scaled_dot_product_attention``
with ``is_causal=True`` (flash / memory-efficient kernels where available).

Gated attention (Qiu et al., 2025, "Gated Attention for Large Language Models: Non-linearity,
Sparsity, and Attention-Sink-Free", arXiv 2505.06708; code qiuzh20/gated_attention): the SDPA output
of each head is multiplied by a sigmoid gate computed from the block's (normalised) input before the
output projection, ``Y' = Y * sigmoid(X W_g)``; ``headwise`` learns one gate per head and token
(``W_g: d -> heads``), ``elementwise`` one per channel (``W_g: d -> d``). The paper's best variant is
the elementwise gate at this position (G1).

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``; inside, ``(B, T, d)`` and heads ``(B, H, T, d/H)``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.sequence.common import SequenceModel, SequenceNorm, build_channel_mlp, make_sequence_norm
from mlplab.nn.channel_mlp import ChannelMLP

AttentionGate = Literal["none", "headwise", "elementwise"]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through SDPA, with an optional sigmoid output gate.

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        d_model: Width d.
        n_heads: Number of heads (must divide d).
        bias: Whether the projections have biases.
        dropout: Dropout on the output.
        attention_dropout: Dropout on the attention probabilities.
        gate: ``none``, ``headwise`` or ``elementwise`` gating of the attention output.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        bias: bool = False,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        gate: AttentionGate = "none",
    ):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"Transformer: n_heads={n_heads} must divide d_model={d_model}")
        if gate not in ("none", "headwise", "elementwise"):
            raise ConfigError(
                f"Transformer: attention_gate must be none, headwise or elementwise, got {gate!r}"
            )
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.attention_dropout = attention_dropout
        self.gate_kind = gate
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.gate = (
            None
            if gate == "none"
            else nn.Linear(d_model, n_heads if gate == "headwise" else d_model, bias=bias)
        )
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        dropout = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        y = y.transpose(1, 2)  # (B, T, H, d/H)
        if self.gate is not None:
            gate = torch.sigmoid(self.gate(x))
            y = y * (gate[..., None] if self.gate_kind == "headwise" else gate.view_as(y))
        return self.dropout(self.out_proj(y.reshape(batch, length, width)))


class TransformerBlock(nn.Module):
    """Pre-norm block ``x + attn(norm(x))`` then ``x + MLP(norm(x))`` (no MLP when ``channel_mlp`` is None).

    Shapes: ``(B, T, d) -> (B, T, d)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        channel_mlp: ChannelMLP | None,
        mlp_ratio: float,
        norm: SequenceNorm,
        bias: bool,
        dropout: float,
        attention_dropout: float,
        gate: AttentionGate,
    ):
        super().__init__()
        self.norm1 = make_sequence_norm(norm, d_model, bias)
        self.attn = CausalSelfAttention(d_model, n_heads, bias, dropout, attention_dropout, gate)
        self.mlp = build_channel_mlp(channel_mlp, d_model, mlp_ratio, bias)
        self.norm2 = make_sequence_norm(norm, d_model, bias) if self.mlp is not None else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        if self.mlp is not None:
            x = x + self.dropout(self.mlp(self.norm2(x)))
        return x


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={
        "tiny": Variant({"d_model": 16, "n_layers": 2, "n_heads": 2}),
        "nanogpt-shakespeare": Variant(
            {"d_model": 384, "n_layers": 6, "n_heads": 6, "bias": False, "dropout": 0.2},
            params=10_745_088,
            shapes=(65, 256),
            source="nanoGPT's train_shakespeare_char.py (10.65M without the positions)",
        ),
    },
    blocks=BlockLayout(TransformerBlock, mixer=("attn",), mlp=("mlp",)),
    source="own: nanoGPT's GPT with SDPA, and gated attention",
)
class Transformer(SequenceModel):
    """GPT-style decoder (nanoGPT) with SDPA attention and optional gated attention (see module docs).

    nanoGPT's Shakespeare model is ``d_model=384, n_layers=6, n_heads=6, bias=False, dropout=0.2``
    with context 256 and vocabulary 65: 10,745,088 parameters, of which 10,646,784 outside the
    position table (nanoGPT prints "number of parameters: 10.65M").

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence (size of the position table); filled in from the data.
        d_model: Width d.
        n_layers: Number of blocks.
        n_heads: Attention heads per block.
        channel_mlp: The blocks' channel MLP (conventional, hourglass, moe, moe_plus_plus), or ``null``
            for attention-only blocks (Zoology's MQAR setting).
        mlp_ratio: Hidden width of the channel MLP as a multiple of d.
        attention_gate: Sigmoid gate on the attention output: ``none``, ``headwise`` or ``elementwise``.
        norm: ``layernorm`` (GPT-2) or ``rmsnorm``.
        bias: Biases in the linear layers and LayerNorms.
        dropout: Dropout on the residual branches (and, unless set, the attention and embeddings).
        attention_dropout: Dropout on the attention probabilities; ``None`` means ``dropout``.
        embedding_dropout: Dropout on the embeddings; ``None`` means ``dropout``.
        learned_positions: Learned absolute position embeddings (GPT-2); without them the model
            sees order only through causal masking.
        tie_embeddings: Share the token embedding with the LM head.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        d_model: int = 384,
        n_layers: int = 6,
        n_heads: int = 6,
        channel_mlp: ChannelMLP | None = ChannelMLP(),  # noqa: B008  (a config section; never mutated)
        mlp_ratio: float = 4.0,
        attention_gate: AttentionGate = "none",
        norm: SequenceNorm = "layernorm",
        bias: bool = False,
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        embedding_dropout: float | None = None,
        learned_positions: bool = True,
        tie_embeddings: bool = True,
    ):
        super().__init__(
            vocab_size,
            context_length,
            d_model,
            n_layers,
            learned_positions=learned_positions,
            norm=norm,
            norm_bias=bias,
            embedding_dropout=dropout if embedding_dropout is None else embedding_dropout,
            tie_embeddings=tie_embeddings,
        )
        require_positive("Transformer", n_heads=n_heads)
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        for _ in range(n_layers):
            self.blocks.append(
                TransformerBlock(
                    d_model,
                    n_heads,
                    channel_mlp,
                    mlp_ratio,
                    norm,
                    bias,
                    dropout,
                    attention_dropout,
                    attention_gate,
                )
            )
        self.finish()
