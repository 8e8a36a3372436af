"""Gated linear attention (GLA), with a recurrent reference and a chunkwise-parallel form, in pure PyTorch.

Yang, Wang, Shen, Panda and Kim, 2024, "Gated Linear Attention Transformers with Hardware-Efficient
Training", ICML 2024, arXiv 2312.06635; layer as in flash-linear-attention (``fla/layers/gla.py``, also
``zoology/mixers/gla.py``).

Per head, with keys and queries of width ``d_k`` and values of width ``d_v``, a matrix state
``S_t`` ``(d_k, d_v)`` decays along the key axis by a data-dependent gate and accumulates
``k_t^T v_t``::

    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,    o_t = (q_t / sqrt(d_k)) S_t,
    log alpha_t = logsigmoid(W_2 W_1 x_t + b) / 16      (low rank: d -> 16 -> d_k)

The layer: ``q, k`` from ``d -> expand_k d`` and ``v, g`` from ``d -> expand_v d`` (no biases), split
into heads; output ``W_o (RMSNorm(o) * swish(g))`` with the RMSNorm over each head's ``d_v`` channels.

Computations of the same ``o`` (``mode`` and ``backend``):

* :func:`gla_recurrent`: the recurrence above, one step at a time (the reference, float32);
* the chunkwise form (float32), chunks of ``C`` steps; with ``G`` the cumulative log-gates inside a
  chunk, ``o_t = (q_t * exp(G_t)) S_prev + sum_{s <= t in chunk} (q_t . (k_s * exp(G_t - G_s))) v_s``
  and the state passed on is ``exp(G_C) S_prev + sum_s (k_s * exp(G_C - G_s))^T v_s``. Every exponent
  is a sum of log-gates over a later minus an earlier step, so it is <= 0 and nothing overflows; the
  intra-chunk decays are materialised as ``(B, H, C, C, d_k)`` per chunk (the paper's secondary
  chunking avoids that tensor with tiled kernels; this form keeps pure PyTorch simple). The layer
  runs it as :func:`mlplab.models.sequence.scans.gla_chunked`, which recomputes each chunk in the
  backward pass so that only one chunk's decays exist at a time; :func:`gla_chunkwise` keeps every
  chunk's intermediates for the backward pass instead (more memory, no recomputation);
* while the model is traced for export (``mlplab export``), either mode runs
  :func:`mlplab.models.sequence.scans.gla_chunk_parallel`, the chunkwise form with all chunks at once
  and the states between chunks summed instead of carried by a loop, so that the exported file takes
  any length (equal to the chunked form to float32 rounding);
* flash-linear-attention's ``chunk_gla`` kernel (``backend: fla``, CUDA only; see
  :mod:`mlplab.models.sequence.backends`).

Blocks are ``x + GLA(RMSNorm(x))`` then ``x + MLP(RMSNorm(x))``; no position embeddings.

The layer is checked weight for weight against flash-linear-attention's ``GatedLinearAttention``
(``fla/layers/gla.py`` with its ``naive_recurrent_gla`` in place of the Triton kernels), both modes:
``benchmarks/sequence_official_check.py --gla`` (figures in ``docs/results.md``). The model around it
is mlplab's, not fla's ``GLAForCausalLM``: the channel MLP is mlplab's ``channel_mlp`` (GELU,
``mlp_ratio`` 4 by default) where fla has a SwiGLU ``GatedMLP`` (hidden ``2/3 * 4 d`` rounded up to
256); the embedding is tied to the head by default (fla: untied, ``tie_embeddings: false`` here); and
every RMSNorm has eps 1e-5 (fla's ``GLAConfig``: 1e-6; the layer's own default: 1e-5).

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``; inside, heads ``(B, H, T, d_k)`` and ``(B, H, T, d_v)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.sequence.backends import BackendChoice, fla_chunk_gla
from mlplab.models.sequence.common import SequenceModel, SequenceNorm
from mlplab.models.sequence.scans import exporting, gla_chunk_parallel, gla_chunked

GLAMode = Literal["chunk", "recurrent"]
GLABackend = Literal["auto", "torch", "fla"]


def gla_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_alpha: torch.Tensor) -> torch.Tensor:
    """GLA outputs by the step-by-step recurrence (the reference).

    Args:
        q: Queries ``(B, H, T, d_k)``, already scaled by ``1 / sqrt(d_k)``.
        k: Keys ``(B, H, T, d_k)``.
        v: Values ``(B, H, T, d_v)``.
        log_alpha: Log forget gates ``(B, H, T, d_k)``, <= 0.

    Returns:
        Outputs ``(B, H, T, d_v)`` in float32.
    """
    q, k, v, log_alpha = (t.float() for t in (q, k, v, log_alpha))
    state = q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1])
    outputs = []
    for t in range(q.shape[2]):
        state = log_alpha[:, :, t, :, None].exp() * state + k[:, :, t, :, None] * v[:, :, t, None, :]
        outputs.append((q[:, :, t, None, :] @ state).squeeze(-2))
    return torch.stack(outputs, dim=2)


def gla_chunkwise(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_alpha: torch.Tensor, chunk_size: int = 32
) -> torch.Tensor:
    """GLA outputs by the chunkwise-parallel form, every chunk's intermediates kept for the backward pass.

    Same arguments and result as :func:`gla_recurrent` (module docs); the layer uses
    :func:`mlplab.models.sequence.scans.gla_chunked`, the same arithmetic with bounded memory.
    """
    return gla_chunked(q, k, v, log_alpha, chunk_size, recompute=False)


class GLALayer(nn.Module):
    """The gated linear attention layer (module docs).

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        d_model: Width d.
        n_heads: Number of heads (must divide ``expand_k d`` and ``expand_v d``).
        expand_k: Key / query width as a multiple of d.
        expand_v: Value / gate width as a multiple of d.
        gate_low_rank_dim: Rank of the forget-gate projection.
        gate_logit_normalizer: Divisor of ``logsigmoid`` in the forget gate (16 in the paper).
        mode: ``chunk`` (chunkwise-parallel) or ``recurrent`` (the reference loop).
        chunk_size: Steps per chunk.
        backend: ``auto``, ``torch`` or ``fla`` (flash-linear-attention's kernel, see
            :mod:`mlplab.models.sequence.backends`; ``mode`` then does not apply).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 4,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_low_rank_dim: int = 16,
        gate_logit_normalizer: float = 16.0,
        mode: GLAMode = "chunk",
        chunk_size: int = 16,
        backend: GLABackend = "auto",
    ):
        super().__init__()
        self.key_dim = int(d_model * expand_k)
        self.value_dim = int(d_model * expand_v)
        require_positive(
            "GatedLinearAttention", n_heads=n_heads, key_width=self.key_dim, chunk_size=chunk_size
        )
        if self.key_dim % n_heads or self.value_dim % n_heads:
            raise ConfigError(
                f"GatedLinearAttention: num_heads={n_heads} must divide the key width {self.key_dim} and the "
                f"value width {self.value_dim}"
            )
        if mode not in ("chunk", "recurrent"):
            raise ConfigError(f"GatedLinearAttention: mode must be chunk or recurrent, got {mode!r}")
        self.backend = BackendChoice("GatedLinearAttention", backend, "fla")
        self.n_heads = n_heads
        self.mode = mode
        self.chunk_size = chunk_size
        self.gate_logit_normalizer = gate_logit_normalizer
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.gk_down = nn.Linear(d_model, gate_low_rank_dim, bias=False)
        self.gk_up = nn.Linear(gate_low_rank_dim, self.key_dim, bias=True)
        self.g_norm = nn.RMSNorm(self.value_dim // n_heads, eps=1e-5)
        self.out_proj = nn.Linear(self.value_dim, d_model, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.n_heads, width // self.n_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        log_alpha = self._heads(
            F.logsigmoid(self.gk_up(self.gk_down(x)).float()) / self.gate_logit_normalizer
        )
        q = q * q.shape[-1] ** -0.5
        if self.backend.resolve(x.device) == "fla":
            o = fla_chunk_gla(q, k, v, log_alpha)
        elif exporting():  # both modes' loops would hold the traced length: the length-generic form
            o = gla_chunk_parallel(q, k, v, log_alpha, self.chunk_size)
        elif self.mode == "recurrent":
            o = gla_recurrent(q, k, v, log_alpha)
        else:
            o = gla_chunked(q, k, v, log_alpha, self.chunk_size)
        o = self.g_norm(o.to(x.dtype)).transpose(1, 2).reshape(batch, length, self.value_dim)
        return self.out_proj(o * F.silu(self.g_proj(x)))


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={"tiny": Variant({"embed_dim": 16, "depth": 2, "num_heads": 2, "chunk_size": 5})},
    blocks=SequenceModel.block_layout,
    renamed={**SequenceModel.renamed_args, "n_heads": "num_heads"},
    source="own, pure PyTorch; the layer weight for weight with flash-linear-attention's",
)
class GatedLinearAttention(SequenceModel):
    """A GLA Transformer: gated linear attention blocks with channel MLPs (see module docs).

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence accepted; filled in from the data.
        num_heads: Heads per layer.
        expand_k: Key / query width as a multiple of d (0.5 in the paper).
        expand_v: Value width as a multiple of d (1.0 in the paper).
        gate_low_rank_dim: Rank of the forget-gate projection (16).
        gate_logit_normalizer: Divisor of ``logsigmoid`` in the forget gate (16).
        mode: ``chunk`` (chunkwise-parallel, each chunk recomputed in the backward pass) or
            ``recurrent`` (the reference loop over time).
        chunk_size: Steps per chunk (16: the pairwise decays cost ``T x chunk_size x d_k`` per head).
        backend: ``auto`` (flash-linear-attention's kernel when installed and on CUDA, else
            PyTorch), ``torch`` or ``fla``; see :mod:`mlplab.models.sequence.backends`.
        norm: ``rmsnorm`` (paper) or ``layernorm``.
        **kwargs: The arguments every sequence family shares (:class:`SequenceModel`): ``embed_dim``,
            ``depth``, ``channel_mlp``, ``mlp_ratio``, ``bias``, ``dropout``, ``embedding_dropout``,
            ``learned_positions``, ``tie_embeddings``.
    """

    #: Arguments that choose how the same function is computed, not the model: a checkpoint may be
    #: evaluated or resumed with other values (a GPU run's ``backend: fla`` tested on a CPU).
    computation_arguments: ClassVar[tuple[str, ...]] = ("mode", "chunk_size", "backend")

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        num_heads: int = 4,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_low_rank_dim: int = 16,
        gate_logit_normalizer: float = 16.0,
        mode: GLAMode = "chunk",
        chunk_size: int = 16,
        backend: GLABackend = "auto",
        norm: SequenceNorm = "rmsnorm",
        **kwargs: Any,
    ):
        super().__init__(vocab_size, context_length, norm=norm, **kwargs)
        self.build_blocks(
            lambda: GLALayer(
                self.embed_dim,
                num_heads,
                expand_k,
                expand_v,
                gate_low_rank_dim,
                gate_logit_normalizer,
                mode,
                chunk_size,
                backend,
            )
        )
