"""Decoder-only Transformer with SDPA attention and an optional gated-attention output gate.

The baseline is nanoGPT's GPT (Karpathy, github.com/karpathy/nanoGPT, ``model.py``), itself GPT-2
(Radford et al., 2019): learned token and position embeddings, pre-LayerNorm blocks
``x + attn(LN(x))`` and ``x + MLP(LN(x))`` with a 4x GELU MLP, a final LayerNorm and an LM head tied to
the token embedding; with ``bias=False`` neither the linear layers nor the LayerNorms have biases
(nanoGPT's Shakespeare setting). Attention is ``torch.nn.functional.scaled_dot_product_attention``
with ``is_causal=True`` (flash / memory-efficient kernels where available). Without a gate and with
the standard attention matrices it is checked weight for weight against nanoGPT's ``GPT`` (the
Shakespeare configuration and GPT-2 124M: equal logits and gradients):
``benchmarks/sequence_official_check.py --nanogpt`` (figures in ``docs/results.md``).

Gated attention (Qiu et al., 2025, "Gated Attention for Large Language Models: Non-linearity,
Sparsity, and Attention-Sink-Free", arXiv 2505.06708; code qiuzh20/gated_attention): the SDPA output
of each head is multiplied by a sigmoid gate computed from the block's (normalised) input before the
output projection, ``Y' = Y * sigmoid(X W_g)``; ``headwise`` learns one gate per head and token
(``W_g: d -> heads``), ``elementwise`` one per channel (``W_g: d -> d``). The paper's best variant is
the elementwise gate at this position (G1).

The attention-only minimal Transformer (Bermeitinger, Hrycej, Pavone, Kath and Handschuh, "Reducing
the Transformer Architecture to a Minimum", arXiv 2410.13732, 2024; no official code): the MLPs go
(``channel_mlp: null``, blocks ``x + attn(LN(x))`` only: attention's softmax is already nonlinear) and
the attention matrices shrink. With one head the products are square and collapse:
``query_key: merged`` scores ``x_i W_QK x_jᵀ`` with one ``d x d`` matrix (the paper's Keras code sets
``W_K`` to the identity and trains ``W_Q`` as ``W_QK``), ``value_output: merged`` maps ``A x W_VO`` with
one matrix (``W_V`` the identity, ``W_O`` trained as ``W_VO``), and ``value_output: none`` drops both,
so the output is the attention-weighted mean of the inputs (as He and Hofmann 2024 propose).
``symmetric_similarity`` makes the similarity symmetric: with separate matrices ``W_K = W_Q`` (the
paper's implementation; any number of heads), with a merged one a symmetric ``W_QK`` from its
``d(d+1)/2`` lower-triangular entries mirrored over the diagonal. Attention parameters per block
(biases aside): ``4d²`` standard, ``3d²`` symmetric, ``2d²`` merged QK and VO, ``d²`` merged QK without
VO, ``d(d+1)/2`` symmetric merged without VO; the paper's "2SN²" and its reductions.
The variant ``minimal`` is nanoGPT's Shakespeare width reduced this way.

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``; inside, ``(B, T, d)`` and heads ``(B, H, T, d/H)``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.sequence.common import SequenceModel

AttentionGate = Literal["none", "headwise", "elementwise"]
QueryKey = Literal["separate", "merged"]
ValueOutput = Literal["separate", "merged", "none"]


class SymmetricLinear(nn.Module):
    """``x -> x S`` with a symmetric ``d x d`` matrix ``S`` stored as its ``d(d+1)/2`` lower triangle.

    Shapes: ``(..., d) -> (..., d)``.

    Global magnitude pruning (:mod:`mlplab.analysis.pruning`) ranks and counts the stored entries, the
    matrix's free parameters: a pruned off-diagonal entry zeroes ``S[i, j]`` and ``S[j, i]`` alike.

    Args:
        dim: Width d.
    """

    #: The packed ``weight`` is a linear map's free parameters: global magnitude pruning prunes it.
    prunable_weights = ("weight",)

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("rows", torch.tril_indices(dim, dim)[0], persistent=False)
        self.register_buffer("cols", torch.tril_indices(dim, dim)[1], persistent=False)
        self.weight = nn.Parameter(torch.empty(dim * (dim + 1) // 2))
        nn.init.normal_(self.weight, std=0.02)
        self.keep_init = True

    def matrix(self) -> torch.Tensor:
        """The symmetric matrix ``S``."""
        lower = self.weight.new_zeros(self.dim, self.dim).index_put((self.rows, self.cols), self.weight)
        return lower + lower.tril(-1).T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix()


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through SDPA, with an optional sigmoid output gate.

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        dim: Width d.
        num_heads: Number of heads (must divide d).
        bias: Whether the projections have biases.
        attention_dropout: Dropout on the attention probabilities.
        gate: ``none``, ``headwise`` or ``elementwise`` gating of the attention output.
        query_key: ``separate`` ``W_Q``, ``W_K`` or one ``merged`` ``W_QK`` (one head only).
        value_output: ``separate`` ``W_V``, ``W_O``, one ``merged`` ``W_VO``, or ``none`` (one head only
            for the last two).
        symmetric_similarity: A symmetric similarity: ``W_K = W_Q``, or a symmetric ``W_QK``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        bias: bool = False,
        attention_dropout: float = 0.0,
        gate: AttentionGate = "none",
        query_key: QueryKey = "separate",
        value_output: ValueOutput = "separate",
        symmetric_similarity: bool = False,
    ):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"Transformer: num_heads={num_heads} must divide embed_dim={dim}")
        if gate not in ("none", "headwise", "elementwise"):
            raise ConfigError(
                f"Transformer: attention_gate must be none, headwise or elementwise, got {gate!r}"
            )
        if query_key not in ("separate", "merged") or value_output not in ("separate", "merged", "none"):
            raise ConfigError(
                "Transformer: query_key must be separate or merged and value_output separate, merged or "
                f"none, got {query_key!r} and {value_output!r}"
            )
        if num_heads != 1 and (query_key == "merged" or value_output != "separate"):
            raise ConfigError(
                f"Transformer: query_key=merged and value_output={value_output} need num_heads=1 (with "
                f"{num_heads} heads the per-head products are not square; Bermeitinger et al. 2024, sec. 4)"
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attention_dropout = attention_dropout
        self.gate_kind = gate
        self.query_key = query_key
        self.value_output = value_output
        self.symmetric_similarity = symmetric_similarity
        standard = query_key == "separate" and value_output == "separate" and not symmetric_similarity
        # the standard layer keeps one fused projection (and its state-dict names); the reduced ones
        # keep only the matrices they have
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias) if standard else None
        self.query = None
        self.key = None
        self.value = None
        if not standard:
            if query_key == "merged" and symmetric_similarity:
                self.query = SymmetricLinear(dim)
            else:
                self.query = nn.Linear(dim, dim, bias=bias)
            if query_key == "separate" and not symmetric_similarity:
                self.key = nn.Linear(dim, dim, bias=bias)
            if value_output == "separate":
                self.value = nn.Linear(dim, dim, bias=bias)
        self.gate = (
            None if gate == "none" else nn.Linear(dim, num_heads if gate == "headwise" else dim, bias=bias)
        )
        self.out_proj = nn.Linear(dim, dim, bias=bias) if value_output != "none" else None

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values ``(B, H, T, d/H)``."""
        batch, length, _ = x.shape
        if self.qkv is not None:
            q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            return q, k, v
        q = self.query(x)
        if self.key is not None:
            k = self.key(x)
        elif self.query_key == "merged":
            k = x  # W_K = identity: the scores are x_i W_QK x_j^T
        else:
            k = q  # symmetric: W_K = W_Q
        v = self.value(x) if self.value is not None else x  # W_V = identity: W_O alone is W_VO

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        return split(q), split(k), split(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.heads(x)
        dropout = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        y = y.transpose(1, 2)  # (B, T, H, d/H)
        if self.gate is not None:
            gate = torch.sigmoid(self.gate(x))
            y = y * (gate[..., None] if self.gate_kind == "headwise" else gate.view_as(y))
        y = y.reshape(batch, length, width)
        return self.out_proj(y) if self.out_proj is not None else y


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
        "minimal": Variant(
            {
                "embed_dim": 384,
                "depth": 6,
                "num_heads": 1,
                "bias": False,
                "dropout": 0.2,
                "channel_mlp": None,
                "query_key": "merged",
                "value_output": "merged",
                "symmetric_similarity": True,
            },
        ),  # fmt: skip
    },
    blocks=SequenceModel.block_layout,
    renamed={**SequenceModel.renamed_args, "n_heads": "num_heads"},
    legacy_keys=[(r"^(blocks\.\d+\.)attn\.", r"\1mixer.")],
    source="own: nanoGPT's GPT (weight for weight) with SDPA, and gated attention",
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
        query_key: ``separate`` query and key matrices, or one ``merged`` ``W_QK`` (needs
            ``num_heads: 1``; Bermeitinger et al. 2024, see the module docs).
        value_output: ``separate`` value and output matrices, one ``merged`` ``W_VO``, or ``none`` (the
            output is the attention-weighted mean of the inputs); the last two need ``num_heads: 1``.
        symmetric_similarity: Symmetric attention scores: ``W_K = W_Q``, or a symmetric ``W_QK`` with
            ``d(d+1)/2`` parameters.
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
        query_key: QueryKey = "separate",
        value_output: ValueOutput = "separate",
        symmetric_similarity: bool = False,
        bias: bool = False,
        learned_positions: bool = True,
        **kwargs: Any,
    ):
        super().__init__(vocab_size, context_length, bias=bias, learned_positions=learned_positions, **kwargs)
        require_positive("Transformer", num_heads=num_heads)
        attention_dropout = self.dropout_rate if attention_dropout is None else attention_dropout
        self.build_blocks(
            lambda: CausalSelfAttention(
                self.embed_dim,
                num_heads,
                bias,
                attention_dropout,
                attention_gate,
                query_key,
                value_output,
                symmetric_similarity,
            )
        )
