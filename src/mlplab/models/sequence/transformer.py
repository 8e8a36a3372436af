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

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.sequence.common import PreNormResidualBlock, SequenceModel

AttentionGate = Literal["none", "headwise", "elementwise"]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through SDPA, with an optional sigmoid output gate.

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        dim: Width d.
        num_heads: Number of heads (must divide d).
        bias: Whether the projections have biases.
        attention_dropout: Dropout on the attention probabilities.
        gate: ``none``, ``headwise`` or ``elementwise`` gating of the attention output.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        bias: bool = False,
        attention_dropout: float = 0.0,
        gate: AttentionGate = "none",
    ):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"Transformer: num_heads={num_heads} must divide embed_dim={dim}")
        if gate not in ("none", "headwise", "elementwise"):
            raise ConfigError(
                f"Transformer: attention_gate must be none, headwise or elementwise, got {gate!r}"
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attention_dropout = attention_dropout
        self.gate_kind = gate
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.gate = (
            None if gate == "none" else nn.Linear(dim, num_heads if gate == "headwise" else dim, bias=bias)
        )
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        dropout = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        y = y.transpose(1, 2)  # (B, T, H, d/H)
        if self.gate is not None:
            gate = torch.sigmoid(self.gate(x))
            y = y * (gate[..., None] if self.gate_kind == "headwise" else gate.view_as(y))
        return self.out_proj(y.reshape(batch, length, width))


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={
        "tiny": Variant({"embed_dim": 16, "depth": 2, "num_heads": 2}),
        "nanogpt-shakespeare": Variant(
            {"embed_dim": 384, "depth": 6, "num_heads": 6, "bias": False, "dropout": 0.2},
            params=10_745_088,
            shapes=(65, 256),
            source="nanoGPT's train_shakespeare_char.py (10.65M without the positions)",
        ),
    },
    blocks=BlockLayout(PreNormResidualBlock, mixer=("mixer",), mlp=("mlp",)),
    renamed={"d_model": "embed_dim", "n_layers": "depth", "n_heads": "num_heads"},
    legacy_keys=[(r"^(blocks\.\d+\.)attn\.", r"\1mixer.")],
    source="own: nanoGPT's GPT with SDPA, and gated attention",
)
class Transformer(SequenceModel):
    """GPT-style decoder (nanoGPT) with SDPA attention and optional gated attention (see module docs).

    nanoGPT's Shakespeare model (variant ``nanogpt-shakespeare``) is ``embed_dim=384, depth=6,
    num_heads=6, bias=False, dropout=0.2`` with context 256 and vocabulary 65: 10,745,088 parameters,
    of which 10,646,784 outside the position table (nanoGPT prints "number of parameters: 10.65M").

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence (size of the position table); filled in from the data.
        num_heads: Attention heads per block (nanoGPT's ``n_head``).
        attention_gate: Sigmoid gate on the attention output: ``none``, ``headwise`` or ``elementwise``.
        attention_dropout: Dropout on the attention probabilities; ``None`` means ``dropout``.
        bias: Biases in the linear layers and LayerNorms (nanoGPT's ``bias``).
        learned_positions: Learned absolute position embeddings (GPT-2); without them the model
            sees order only through causal masking.
        **kwargs: The arguments every sequence family shares (:class:`SequenceModel`): ``embed_dim``,
            ``depth``, ``channel_mlp``, ``mlp_ratio``, ``norm``, ``dropout``, ``embedding_dropout``,
            ``tie_embeddings``.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        num_heads: int = 6,
        attention_gate: AttentionGate = "none",
        attention_dropout: float | None = None,
        bias: bool = False,
        learned_positions: bool = True,
        **kwargs: Any,
    ):
        super().__init__(vocab_size, context_length, bias=bias, learned_positions=learned_positions, **kwargs)
        require_positive("Transformer", num_heads=num_heads)
        attention_dropout = self.dropout_rate if attention_dropout is None else attention_dropout
        self.build_blocks(
            lambda: CausalSelfAttention(self.embed_dim, num_heads, bias, attention_dropout, attention_gate)
        )
