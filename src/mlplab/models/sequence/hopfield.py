"""A language model of modern Hopfield layers: causal self-association, optional learned memories.

Ramsauer et al., 2021, "Hopfield Networks is All You Need", ICLR 2021, arXiv 2008.02217; official code
ml-jku/hopfield-layers (``hflayers/__init__.py``, ``hflayers/functional.py``).

A modern Hopfield network stores patterns ``Y`` and retrieves from a state pattern ``xi`` by the update
``xi <- Y^T softmax(beta Y xi)``; one update is attention. The ``Hopfield`` layer of the official
code projects state patterns (queries), stored patterns (keys) and pattern projections (values) from
its inputs after normalising each with its own LayerNorm (``normalize_state_pattern``,
``normalize_stored_pattern``, ``normalize_pattern_projection``, all on with affine parameters by
default), associates ``softmax(beta q k^T)`` with ``beta = 1 / sqrt(head_dim)`` unless given, and may
iterate the update in the key space ``update_steps`` more times (``q <- softmax(beta q k^T) k``)
before reading out the values ``softmax(beta q k^T) v`` and projecting them back. Here the stored
patterns are the sequence itself, masked causally (token t associates with tokens <= t), so the
layer is causal however many updates it runs; every association runs through SDPA.

``HopfieldLayer`` of the official code (learned stored patterns, a lookup table) is optional per block
(``stored_patterns > 0``), at the official defaults: the same ``Hopfield`` association, one head, no
update steps, whose stored patterns and pattern projections are both ``stored_patterns`` learned
vectors ``Y`` (``lookup_weights``, N(0, 0.02)): ``out_proj(softmax(beta q k^T) v)`` with
``q = W_q LN_1(x) + b_q``, ``k = W_k LN_2(Y) + b_k``, ``v = W_v LN_3(Y) + b_v``, ``beta = 1 / sqrt(d)``;
added to the residual stream beside the self-association.

The association (``HopfieldAssociation``) is checked weight for weight against the official ``Hopfield``
(with a causal ``association_mask``, 0 and 2 update steps): ``benchmarks/sequence_official_check.py
--hopfield`` (figures in ``docs/results.md``). One difference: the official layer also stops iterating
early once the associations change by less than ``update_steps_eps`` (1e-4, largest over the batch);
here exactly ``update_steps`` updates run. The learned-pattern lookup (``HopfieldLookup``) is checked
weight for weight against the official ``HopfieldLayer`` by the same script (until session 19 it was a
reduced form, ``softmax(beta LN(x) W_q Y^T) Y_v`` with no stored-pattern norms, key, value or output
projections, which the official layer has).

Blocks are ``x + Hopfield(x) [+ HopfieldLayer(x)]`` (the layer's own LayerNorms take the place of the
pre-norm) then ``x + MLP(LN(x))``; learned position embeddings; final LayerNorm; tied head.

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``; inside, heads ``(B, H, T, head_dim)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.sequence.common import SequenceModel


class HopfieldAssociation(nn.Module):
    """Causal Hopfield self-association with pattern normalisation and iterated updates (module docs).

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        d_model: Width d of inputs and outputs.
        n_heads: Association heads.
        head_dim: Width of each head's association space; ``None`` means ``d / n_heads``.
        beta: Inverse temperature; ``None`` means ``1 / sqrt(head_dim)``.
        update_steps: Extra Hopfield updates of the state patterns before the read-out (0: one
            association, like attention).
        normalize_patterns: LayerNorm the state, stored and projected patterns (official default).
        bias: Biases in the projections (official ``input_bias``).
        dropout: Dropout on the association probabilities.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        head_dim: int | None = None,
        beta: float | None = None,
        update_steps: int = 0,
        normalize_patterns: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if head_dim is None:
            if d_model % n_heads:
                raise ConfigError(
                    f"HopfieldLM: num_heads={n_heads} must divide embed_dim={d_model} (or set head_dim)"
                )
            head_dim = d_model // n_heads
        require_positive("HopfieldLM", n_heads=n_heads, head_dim=head_dim)
        if update_steps < 0:
            raise ConfigError(f"HopfieldLM: update_steps must be >= 0, got {update_steps}")
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.beta = beta if beta is not None else 1.0 / math.sqrt(head_dim)
        self.update_steps = update_steps
        self.dropout = dropout
        width = n_heads * head_dim

        def norm() -> nn.Module:
            return nn.LayerNorm(d_model) if normalize_patterns else nn.Identity()

        self.norm_state, self.norm_stored, self.norm_projection = norm(), norm(), norm()
        self.q_proj = nn.Linear(d_model, width, bias=bias)
        self.k_proj = nn.Linear(d_model, width, bias=bias)
        self.v_proj = nn.Linear(d_model, width, bias=bias)
        self.out_proj = nn.Linear(width, d_model, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def associate(
        self, state: torch.Tensor, stored: torch.Tensor, projection: torch.Tensor, causal: bool
    ) -> torch.Tensor:
        """The official ``Hopfield`` on (stored, state, projection) patterns: normalise, project, associate.

        Shapes: state ``(B, T, d)``, stored and projection ``(B, S, d)`` -> ``(B, T, d)``; ``causal``
        masks stored pattern ``s > t`` for state ``t`` (self-association, ``S = T``).
        """
        batch, length, _ = state.shape
        q = self._heads(self.q_proj(self.norm_state(state)))
        k = self._heads(self.k_proj(self.norm_stored(stored)))
        v = self._heads(self.v_proj(self.norm_projection(projection)))
        for _ in range(self.update_steps):
            q = F.scaled_dot_product_attention(q, k, k, is_causal=causal, scale=self.beta)
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal, scale=self.beta)
        return self.out_proj(y.transpose(1, 2).reshape(batch, length, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.associate(x, x, x, causal=True)


class HopfieldLookup(HopfieldAssociation):
    """The official ``HopfieldLayer`` at its defaults: ``Hopfield`` association with learned stored patterns.

    ``num_patterns`` learned patterns ``Y`` (the official ``lookup_weights``, N(0, 0.02)) serve as the
    stored patterns and as the pattern projections (``lookup_weights_as_separated=False``); the state
    patterns are the tokens. As in :class:`HopfieldAssociation` (the official ``Hopfield``), each of the
    three is LayerNormed and projected (with biases), then ``out_proj(softmax(beta q k^T) v)``, no update
    steps (``update_steps_max=0``); one head (``num_heads=1``), so ``beta = 1 / sqrt(d)``. Nothing is
    masked: every token sees every stored pattern, and each token only its own state, so it is causal.

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        d_model: Width d.
        num_patterns: Number of learned stored patterns (the official ``quantity``).
        beta: Inverse temperature; ``None`` means ``1 / sqrt(d)``.
        bias: Biases in the projections (official ``input_bias``).
        dropout: Dropout on the association probabilities.
    """

    def __init__(
        self,
        d_model: int,
        num_patterns: int,
        beta: float | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__(d_model, 1, beta=beta, bias=bias, dropout=dropout)
        self.patterns = nn.Parameter(torch.randn(num_patterns, d_model) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patterns = self.patterns.expand(x.shape[0], -1, -1)
        return self.associate(x, patterns, patterns, causal=False)


class HopfieldMixer(nn.Module):
    """``Hopfield(x) [+ HopfieldLayer(x)]``: the self-association, plus the learned-pattern lookup if any.

    Shapes: ``(B, T, d) -> (B, T, d)``.
    """

    def __init__(self, association: HopfieldAssociation, lookup: HopfieldLookup | None):
        super().__init__()
        self.association = association
        self.lookup = lookup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.association(x)
        if self.lookup is not None:
            update = update + self.lookup(x)
        return update


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={
        "tiny": Variant(
            {"embed_dim": 16, "depth": 2, "num_heads": 2, "update_steps": 2, "stored_patterns": 8}
        )
    },
    blocks=SequenceModel.block_layout,
    renamed={**SequenceModel.renamed_args, "n_heads": "num_heads"},
    legacy_keys=[
        (r"^(blocks\.\d+\.)association\.", r"\1mixer.association."),
        (r"^(blocks\.\d+\.)lookup\.", r"\1mixer.lookup."),
        (r"^(blocks\.\d+\.)norm\.", r"\1norm2."),
    ],
    source="own (the Hopfield layers of hflayers, causal; Hopfield and HopfieldLayer weight for weight)",
    layout_changes=["2026-11-29: the lookup of stored_patterns became the official HopfieldLayer"],
)
class HopfieldLM(SequenceModel):
    """A causal language model of modern Hopfield layers (see module docs).

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence (size of the position table); filled in from the data.
        num_heads: Association heads per block.
        head_dim: Width of each head's association space; ``None`` means ``d / num_heads``.
        beta: Inverse temperature of the association; ``None`` means ``1 / sqrt(head_dim)``.
        update_steps: Extra Hopfield updates before the read-out (0: a single association).
        normalize_patterns: LayerNorm the state, stored and projected patterns separately.
        stored_patterns: Learned stored patterns per block (``HopfieldLayer``); 0 for none.
        bias: Biases in the association's projections (and the LayerNorms and channel MLPs).
        learned_positions: Learned absolute position embeddings.
        **kwargs: The arguments every sequence family shares (:class:`SequenceModel`): ``embed_dim``,
            ``depth``, ``channel_mlp``, ``mlp_ratio``, ``norm``, ``dropout`` (also on the association
            probabilities), ``embedding_dropout``, ``tie_embeddings``.
    """

    #: The association normalises its state, stored and projected patterns itself.
    norm_mixer_input = False

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        num_heads: int = 6,
        head_dim: int | None = None,
        beta: float | None = None,
        update_steps: int = 0,
        normalize_patterns: bool = True,
        stored_patterns: int = 0,
        bias: bool = True,
        learned_positions: bool = True,
        **kwargs: Any,
    ):
        super().__init__(vocab_size, context_length, bias=bias, learned_positions=learned_positions, **kwargs)
        if stored_patterns < 0:
            raise ConfigError(f"HopfieldLM: stored_patterns must be >= 0, got {stored_patterns}")

        def mixer() -> HopfieldMixer:
            association = HopfieldAssociation(
                self.embed_dim, num_heads, head_dim, beta, update_steps, normalize_patterns, bias,
                self.dropout_rate,
            )  # fmt: skip
            lookup = None
            if stored_patterns:
                lookup = HopfieldLookup(self.embed_dim, stored_patterns, bias=bias, dropout=self.dropout_rate)
            return HopfieldMixer(association, lookup)

        self.build_blocks(mixer)
