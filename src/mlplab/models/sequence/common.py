"""The one sequence model every sequence family is, with its own mixer; norms and causal convolutions.

Contract of a sequence family (``LanguageModeling`` and ``AssociativeRecall`` call it this way):
``family(vocab_size, context_length, **args)`` maps int64 tokens ``(B, T)`` with ``T <= context_length``
to next-token logits ``(B, T, vocab_size)``, causally: the output at position t depends on tokens
``0..t`` only. A family file holds its mixer layer (``(B, T, d) -> (B, T, d)``, causal) and a small
subclass of :class:`SequenceModel` that builds its blocks around it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout
from mlplab.nn.channel_mlp import ChannelMLP
from mlplab.nn.moe import MixtureOfExperts, link_gating_residuals

#: The channel MLP's hidden width as a multiple of d unless ``mlp_ratio`` says otherwise.
DEFAULT_MLP_RATIO = 4.0

SequenceNorm = Literal["layernorm", "rmsnorm"]


def make_sequence_norm(kind: SequenceNorm, dim: int, bias: bool = True, eps: float = 1e-5) -> nn.Module:
    """``LayerNorm`` (with or without bias) or ``RMSNorm`` over the last axis."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    raise ConfigError(f"norm must be layernorm or rmsnorm, got {kind!r}")


class KernelConv1d(nn.Conv1d):
    """The ``nn.Conv1d`` of :class:`CausalDepthwiseConv1d`, which can also run a fused kernel on its weights.

    ``forward(x, silu_kernel)`` returns ``silu_kernel(x, weight[:, 0], bias, activation="silu")``
    (causal-conv1d's ``causal_conv1d_fn``: the causal convolution and SiLU in one kernel) instead of
    the plain convolution. Either way the layer is called as a module, so its forward pre-hooks run,
    among them the one by which a pruning mask (``torch.nn.utils.prune``) recomputes ``weight``; a
    caller that read ``weight`` itself would get the tensor of the last call.
    """

    def forward(
        self, x: torch.Tensor, silu_kernel: Callable[..., torch.Tensor] | None = None
    ) -> torch.Tensor:
        if silu_kernel is None:
            return super().forward(x)
        return silu_kernel(x, self.weight.squeeze(1), self.bias, activation="silu")


class CausalDepthwiseConv1d(nn.Module):
    """Per-channel causal convolution ``y_t = sum_{j<k} w_j x_{t-j} (+ b)``.

    Shapes: ``(B, T, C) -> (B, T, C)``.

    Args:
        channels: Number of channels C.
        kernel_size: Taps k (the current token and k - 1 before it).
        bias: Whether to add a per-channel bias.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        require_positive(type(self).__name__, channels=channels, kernel_size=kernel_size)
        self.conv = KernelConv1d(
            channels, channels, kernel_size, groups=channels, padding=kernel_size - 1, bias=bias
        )

    def forward(
        self, x: torch.Tensor, silu_kernel: Callable[..., torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The convolution of ``x`` ``(B, T, C)``, or its SiLU computed by ``silu_kernel``.

        ``silu_kernel`` is causal-conv1d's ``causal_conv1d_fn`` (see :class:`KernelConv1d`).
        """
        if silu_kernel is not None:
            return self.conv(x.transpose(1, 2).contiguous(), silu_kernel).transpose(1, 2)
        return self.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)


class PreNormResidualBlock(nn.Module):
    """``x + drop(mixer(norm1(x)))``, then ``x + drop(mlp(norm2(x)))`` when the block has a channel MLP.

    The block of every sequence family: only the mixer differs. Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        dim: Width d.
        mixer: The sequence mixer, ``(B, T, d) -> (B, T, d)``, causal.
        channel_mlp: The channel MLP's config section, or ``None`` for a mixer-only block.
        mlp_ratio: Hidden width of the channel MLP as a multiple of d.
        norm: ``layernorm`` or ``rmsnorm``.
        bias: Biases in the LayerNorms and the channel MLP.
        dropout: Dropout on the residual branches.
        norm_mixer_input: Normalise the mixer's input (``False`` for mixers that normalise it themselves).
        mixer_dropout: Drop out the mixer branch too (``False``: the channel MLP's only).
    """

    def __init__(
        self,
        dim: int,
        mixer: nn.Module,
        channel_mlp: ChannelMLP | None,
        mlp_ratio: float,
        norm: SequenceNorm,
        bias: bool,
        dropout: float,
        norm_mixer_input: bool = True,
        mixer_dropout: bool = True,
    ):
        super().__init__()
        self.norm1 = make_sequence_norm(norm, dim, bias) if norm_mixer_input else nn.Identity()
        self.mixer = mixer
        self.mlp = None
        if channel_mlp is not None:
            self.mlp = channel_mlp.build(dim, max(1, round(mlp_ratio * dim)), activation="gelu", bias=bias)
        self.norm2 = make_sequence_norm(norm, dim, bias) if self.mlp is not None else None
        self.dropout = nn.Dropout(dropout)
        self.mixer_dropout = mixer_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.mixer(self.norm1(x))
        x = x + (self.dropout(mixed) if self.mixer_dropout else mixed)
        if self.mlp is not None:
            x = x + self.dropout(self.mlp(self.norm2(x)))
        return x


class SequenceModel(nn.Module):
    """Token embedding (+ learned positions), ``depth`` residual blocks around a mixer, final norm, tied head.

    Every sequence family is this model with its own mixer layer (as flash-linear-attention composes
    its models from layers): a family's ``__init__`` takes its mixer's arguments, and the defaults it
    wants for the arguments below, passes the rest on (``**kwargs``) to this ``__init__``, and ends
    with :meth:`build_blocks` given a factory of its mixer. The blocks are
    :class:`PreNormResidualBlock`; :meth:`build_blocks` then initialises the weights
    (:meth:`init_weights`) and links MoE++ gating residuals across layers.

    Shapes: tokens ``(B, T)`` -> embeddings ``(B, T, d)`` -> blocks -> norm -> logits ``(B, T, V)``.

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence accepted (size of the position table); filled in from the data.
        embed_dim: Width d of the residual stream (``d_model`` in the papers).
        depth: Number of blocks (``n_layers``).
        channel_mlp: The blocks' channel MLP (conventional, hourglass, moe, moe_plus_plus), or ``null``
            for mixer-only blocks (Zoology's MQAR setting).
        mlp_ratio: Hidden width of the channel MLP as a multiple of d (without a channel MLP, another
            value than 4 is refused: it would change nothing).
        norm: ``layernorm`` or ``rmsnorm``, in the blocks and at the end.
        bias: Biases in the LayerNorms and the channel MLPs.
        dropout: Dropout on the residual branches (and, unless set, the embeddings).
        embedding_dropout: Dropout on the embeddings; ``None`` means ``dropout``.
        learned_positions: Add a learned position embedding (GPT-2); families with their own notion of
            order (recurrences, convolutions) go without.
        tie_embeddings: Share the token embedding with the LM head.
    """

    #: Where the blocks are, for the families' ``@register_family(blocks=...)``: the
    #: :class:`PreNormResidualBlock` s of :meth:`build_blocks`, their branches ``mixer`` and ``mlp``.
    block_layout = BlockLayout(PreNormResidualBlock, mixer=("mixer",), mlp=("mlp",))
    #: The arguments' former names (the papers' own), for the families' ``@register_family(renamed=...)``.
    renamed_args = {"d_model": "embed_dim", "n_layers": "depth"}
    #: Whether the blocks normalise the mixer's input (a mixer that normalises it itself says no).
    norm_mixer_input: bool = True
    #: Whether dropout follows the mixer branch as well as the channel MLP.
    mixer_dropout: bool = True

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        embed_dim: int = 384,
        depth: int = 6,
        channel_mlp: ChannelMLP | None = ChannelMLP(),  # noqa: B008  (a config section; never mutated)
        mlp_ratio: float = DEFAULT_MLP_RATIO,
        norm: SequenceNorm = "layernorm",
        bias: bool = True,
        dropout: float = 0.0,
        embedding_dropout: float | None = None,
        learned_positions: bool = False,
        tie_embeddings: bool = True,
    ):
        super().__init__()
        require_positive(
            type(self).__name__,
            vocab_size=vocab_size,
            context_length=context_length,
            embed_dim=embed_dim,
            depth=depth,
        )
        if channel_mlp is None and mlp_ratio != DEFAULT_MLP_RATIO:
            raise ConfigError(
                f"{type(self).__name__}: mlp_ratio={mlp_ratio} has no effect without a channel MLP "
                "(channel_mlp is null): give a channel_mlp (kind: conventional, ...) or leave mlp_ratio out"
            )
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.embed_dim = embed_dim
        self.depth = depth
        self.block_args = {
            "channel_mlp": channel_mlp,
            "mlp_ratio": mlp_ratio,
            "norm": norm,
            "bias": bias,
            "dropout": dropout,
        }
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.position = nn.Embedding(context_length, embed_dim) if learned_positions else None
        self.embedding_dropout = nn.Dropout(dropout if embedding_dropout is None else embedding_dropout)
        self.blocks = nn.ModuleList()
        self.norm = make_sequence_norm(norm, embed_dim, bias)
        self.head = nn.Linear(embed_dim, vocab_size, bias=False)
        if tie_embeddings:
            self.head.weight = self.embedding.weight

    @property
    def dropout_rate(self) -> float:
        """The ``dropout`` the model was built with."""
        return self.block_args["dropout"]

    def build_blocks(self, make_mixer: Callable[[], nn.Module]) -> None:
        """End of a family's ``__init__``: ``depth`` blocks around ``make_mixer()``, then initialisation."""
        for _ in range(self.depth):
            self.blocks.append(
                PreNormResidualBlock(
                    self.embed_dim,
                    make_mixer(),
                    **self.block_args,
                    norm_mixer_input=self.norm_mixer_input,
                    mixer_dropout=self.mixer_dropout,
                )
            )
        link_gating_residuals(self)  # first: the gating-residual maps are linear layers to initialise
        self.init_weights()

    def init_weights(self) -> None:
        """GPT-2's initialisation, as nanoGPT and Zoology.

        N(0, 0.02) for linear and embedding weights, zero biases, N(0, 0.02 / sqrt(2 depth)) for the
        projections back into the residual stream (``out_proj`` and the channel MLPs' ``fc2``). The
        mixture-of-experts channel MLPs' experts follow the same rule (``w1`` like ``fc1``, ``w2`` like
        ``fc2``, :meth:`~mlplab.nn.moe.MixtureOfExperts.init_experts`), so a dense and an MoE model start
        from the same scales, as in MoE++'s official model and Mixtral. Modules marked
        ``keep_init = True`` and parameters that are not in ``nn.Linear`` / ``nn.Embedding`` layers or
        experts keep their own initialisation.
        """
        residual_std = 0.02 / math.sqrt(2 * self.depth)
        for module in self.modules():
            if getattr(module, "keep_init", False):
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, MixtureOfExperts):
                module.init_experts(nn.init.normal_, 0.02, output_std=residual_std)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ("out_proj", "fc2"):
                if not getattr(module, "keep_init", False):
                    nn.init.normal_(module.weight, std=residual_std)

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """Raise :class:`ConfigError` unless ``tokens`` is ``(B, T)`` with ``T <= context_length``."""
        if tokens.dim() != 2:
            raise ConfigError(
                f"{type(self).__name__} takes token batches of shape (B, T), got shape {tuple(tokens.shape)}"
            )
        if tokens.shape[1] > self.context_length:
            raise ConfigError(
                f"{type(self).__name__} was built for contexts of up to {self.context_length} tokens, got a "
                f"sequence of {tokens.shape[1]}: shorten it or build the model with a longer context_length"
            )

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token (+ position) embeddings ``(B, T, d)``, after dropout."""
        x = self.embedding(tokens)
        if self.position is not None:
            x = x + self.position.weight[: tokens.shape[1]]
        return self.embedding_dropout(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.check_tokens(tokens)
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))
