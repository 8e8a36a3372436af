"""What the sequence families share: embeddings, the residual stack, the LM head, causal convolutions.

Contract of a sequence family (``LanguageModeling`` and ``AssociativeRecall`` call it this way):
``family(vocab_size, context_length, **args)`` maps int64 tokens ``(B, T)`` with ``T <= context_length``
to next-token logits ``(B, T, vocab_size)``, causally: the output at position t depends on tokens
``0..t`` only.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.nn.moe import link_gating_residuals

SequenceNorm = Literal["layernorm", "rmsnorm"]


def make_sequence_norm(kind: SequenceNorm, dim: int, bias: bool = True, eps: float = 1e-5) -> nn.Module:
    """``LayerNorm`` (with or without bias) or ``RMSNorm`` over the last axis."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    raise ConfigError(f"norm must be layernorm or rmsnorm, got {kind!r}")


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
        self.conv = nn.Conv1d(
            channels, channels, kernel_size, groups=channels, padding=kernel_size - 1, bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)


class SequenceModel(nn.Module):
    """Token embedding (+ learned positions), a stack of residual blocks, final norm, tied LM head.

    Subclasses call this ``__init__``, append their blocks (each ``(B, T, d) -> (B, T, d)``) to
    ``self.blocks`` and end their ``__init__`` with :meth:`finish`, which initialises the weights
    (:meth:`init_weights`) and links MoE++ gating residuals across layers.

    Shapes: tokens ``(B, T)`` -> embeddings ``(B, T, d)`` -> blocks -> norm -> logits ``(B, T, V)``.

    Args:
        vocab_size: Vocabulary V.
        context_length: Longest sequence the model accepts (size of the position table).
        d_model: Width d of the residual stream.
        n_layers: Number of blocks (used by the initialisation).
        learned_positions: Add a learned position embedding (GPT-2); families with their own notion
            of order (recurrences, convolutions) go without.
        norm: Final normalisation.
        norm_bias: Whether a LayerNorm has a bias.
        embedding_dropout: Dropout on the embeddings.
        tie_embeddings: Share the embedding matrix with the LM head.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        d_model: int,
        n_layers: int,
        learned_positions: bool = False,
        norm: SequenceNorm = "layernorm",
        norm_bias: bool = True,
        embedding_dropout: float = 0.0,
        tie_embeddings: bool = True,
    ):
        super().__init__()
        require_positive(
            type(self).__name__,
            vocab_size=vocab_size,
            context_length=context_length,
            d_model=d_model,
            n_layers=n_layers,
        )
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.d_model = d_model
        self.n_layers = n_layers
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context_length, d_model) if learned_positions else None
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.blocks = nn.ModuleList()
        self.norm = make_sequence_norm(norm, d_model, norm_bias)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.head.weight = self.embedding.weight

    def finish(self) -> None:
        """End of a subclass's ``__init__``: initialise the weights, link MoE++ gating residuals."""
        self.init_weights()
        link_gating_residuals(self)

    def init_weights(self) -> None:
        """GPT-2's initialisation, as nanoGPT and Zoology.

        N(0, 0.02) for linear and embedding weights, zero biases, N(0, 0.02 / sqrt(2 n_layers)) for the
        projections back into the residual stream (``out_proj`` and the channel MLPs' ``fc2``). Modules
        marked ``keep_init = True`` and parameters that are not in ``nn.Linear`` / ``nn.Embedding``
        layers keep their own initialisation.
        """
        for module in self.modules():
            if getattr(module, "keep_init", False):
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        residual_std = 0.02 / math.sqrt(2 * self.n_layers)
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


def build_channel_mlp(channel_mlp, d_model: int, mlp_ratio: float, bias: bool = True) -> nn.Module | None:
    """A block's channel MLP from its config section (``None``: the block has none)."""
    if channel_mlp is None:
        return None
    return channel_mlp.build(d_model, max(1, round(mlp_ratio * d_model)), activation="gelu", bias=bias)


class PreNormResidualBlock(nn.Module):
    """``x + mixer(norm(x))``, then ``x + MLP(norm(x))`` when the block has a channel MLP.

    The block of the Mamba, GLA and gated-convolution language models: only the sequence mixer differs.
    Shapes: ``(B, T, d) -> (B, T, d)``.
    """

    def __init__(
        self,
        d_model: int,
        mixer: nn.Module,
        channel_mlp,
        mlp_ratio: float,
        norm: SequenceNorm,
        dropout: float,
    ):
        super().__init__()
        self.norm1 = make_sequence_norm(norm, d_model)
        self.mixer = mixer
        self.mlp = build_channel_mlp(channel_mlp, d_model, mlp_ratio)
        self.norm2 = make_sequence_norm(norm, d_model) if self.mlp is not None else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.mixer(self.norm1(x)))
        if self.mlp is not None:
            x = x + self.dropout(self.mlp(self.norm2(x)))
        return x
