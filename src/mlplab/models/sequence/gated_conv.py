"""A gated long-convolution mixer (Hyena / H3 family), the attention-free baseline of Zoology.

Poli et al., 2023, "Hyena Hierarchy: Towards Larger Convolutional Language Models", ICML 2023,
arXiv 2302.10866; as implemented in HazyResearch/zoology (``zoology/mixers/hyena.py``), which Zoology
(Arora et al., ICLR 2024, arXiv 2312.04927) compares with attention on MQAR.

Operator of order 2, for ``x`` of width d::

    x1, x2, v = split(short_conv(W_in x))        (W_in: d -> 3d; causal depthwise conv, kernel 3)
    v = v * x1                                   (gate)
    v = h * v + bias * v                         (causal long convolution over the whole sequence)
    y = W_out (v * x2)                           (gate, then d -> d)

The long filter ``h`` ``(T, d)`` is a full-length causal kernel per channel, applied with FFTs
(``O(T log T)``, zero-padded to ``2T`` so it does not wrap around). It is either

* ``implicit`` (Hyena): an MLP of the position — ``[t, cos, sin]`` features of ``emb_dim``
  dimensions (Hyena's complex-exponential encoding), three linear layers of width ``filter_order``
  with sine activations (learned frequency, ``w = 1``) and a last layer to d channels — multiplied by
  an exponential decay ``exp(-t |delta_c|)`` whose rates span ``log(0.01)/1.5 .. log(0.01)/0.3``
  over the channels (``ExponentialModulation``, fixed). The official code trains the positional
  features with a tiny learning rate; here they are fixed buffers. Like every linear layer of the
  model, the filter MLP's start from GPT-2's N(0, 0.02) (Zoology initialises the whole model so). Or
* ``explicit``: a learned kernel of length ``context_length`` per channel (Zoology's
  ``LongConvolution``), initialised N(0, 0.02).

The operator (implicit filter) is checked weight for weight against Zoology's ``Hyena``
(``benchmarks/sequence_official_check.py --zoology``, figures in ``docs/results.md``), with one
structural difference: Zoology's filter MLP reuses a single ``Sin`` module, so its three sine
activations share one learned frequency vector; here each has its own (``2 * filter_order`` more
parameters per layer, and the frequencies train apart). The check copies the shared frequency into
all three and compares its gradient with the sum of theirs.

While the model is exported through ``torch.export`` (``mlplab export --format onnx``) the long
convolution is summed directly (:func:`causal_direct_conv`, ``O(T^2)``, equal to the FFT to float32
rounding): onnxruntime computes the inverse FFT of a graph with a dynamic length wrongly.

Blocks are ``x + mixer(LN(x))`` then ``x + MLP(LN(x))``; no position embeddings (the filter carries
position). The FFT runs in float32.

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``; inside, ``(B, T, d)``, filters ``(T, d)``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.sequence.common import CausalDepthwiseConv1d, SequenceModel
from mlplab.nn.precision import autocast_off

FilterKind = Literal["implicit", "explicit"]


def causal_fft_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``y_t = sum_{s <= t} kernel_{t - s} u_s`` per channel, by FFT, in float32.

    Args:
        u: Signals ``(B, T, C)``.
        kernel: Filters ``(T, C)``.

    Returns:
        ``(B, T, C)`` in float32.
    """
    length = u.shape[1]
    size = 2 * length
    with autocast_off(u):  # (the meta device has no autocast to turn off)
        u_f = torch.fft.rfft(u.float(), n=size, dim=1)
        k_f = torch.fft.rfft(kernel.float(), n=size, dim=0)
        return torch.fft.irfft(u_f * k_f, n=size, dim=1)[:, :length]


def causal_direct_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """:func:`causal_fft_conv` summed directly (a depthwise ``conv1d``, ``O(T^2)``), in float32.

    The ONNX export form: onnxruntime runs the inverse real FFT of a graph with a dynamic length
    wrongly (its ``DFT`` node's output shape), so a file exported with the FFT would take only the
    length it was traced at. Equal to the FFT form to float32 rounding.
    """
    length = u.shape[1]
    with autocast_off(u):
        weight = kernel.float().flip(0).t()[:, None, :]  # (C, 1, T): taps T-1 ... 0
        signal = F.pad(u.float().transpose(1, 2), (length - 1, 0))  # (B, C, 2T - 1)
        return F.conv1d(signal, weight, groups=u.shape[2]).transpose(1, 2)


class Sin(nn.Module):
    """``sin(w * x)`` with a learned frequency per feature (Hyena's filter activation)."""

    def __init__(self, features: int, w: float = 1.0):
        super().__init__()
        self.freq = nn.Parameter(torch.full((1, features), float(w)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class ImplicitFilter(nn.Module):
    """Hyena's implicit long filter: an MLP of the position with exponential decay (module docs).

    Shapes: ``length -> (length, channels)``.

    Args:
        channels: Channels C (one filter each).
        max_length: Longest filter (the positions are normalised by it).
        order: Width of the filter MLP.
        emb_dim: Positional features (odd, >= 3: time, then cosine and sine bands).
        inner_layers: Hidden layers of width ``order``.
        fast_decay_pct: Decay horizon of the fastest channel (fraction of the sequence).
        slow_decay_pct: Decay horizon of the slowest channel.
        target: Value the decay reaches at its horizon.
    """

    def __init__(
        self,
        channels: int,
        max_length: int,
        order: int = 64,
        emb_dim: int = 3,
        inner_layers: int = 2,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        target: float = 1e-2,
    ):
        super().__init__()
        if emb_dim < 3 or emb_dim % 2 == 0:
            raise ConfigError(f"GatedConv: filter_emb_dim must be odd and >= 3, got {emb_dim}")
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, max_length)[:, None]  # (L, 1)
        w = 2 * math.pi * torch.arange(max_length, dtype=torch.float32)[:, None] / max_length
        f = torch.linspace(1e-4, bands - 1, bands)[None]
        z = torch.exp(-1j * f * w)
        self.register_buffer("features", torch.cat([t, z.real, z.imag], dim=-1), persistent=False)
        self.register_buffer("t", t, persistent=False)
        layers: list[nn.Module] = [nn.Linear(emb_dim, order), Sin(order)]
        for _ in range(inner_layers):
            layers += [nn.Linear(order, order), Sin(order)]
        layers.append(nn.Linear(order, channels, bias=False))
        self.mlp = nn.Sequential(*layers)
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, channels)[None], persistent=False)

    def forward(self, length: int) -> torch.Tensor:
        t = self.t[:length]
        return self.mlp(self.features[:length]) * torch.exp(-t * self.deltas.abs())


class GatedLongConv(nn.Module):
    """The gated long-convolution operator (module docs).

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        d_model: Width d.
        max_length: Longest sequence (filter length).
        short_kernel: Taps of the short causal convolution.
        filter: ``implicit`` (Hyena) or ``explicit`` (one learned kernel per channel).
        filter_order: Width of the implicit filter's MLP.
        filter_emb_dim: Positional features of the implicit filter.
    """

    def __init__(
        self,
        d_model: int,
        max_length: int,
        short_kernel: int = 3,
        filter: FilterKind = "implicit",
        filter_order: int = 64,
        filter_emb_dim: int = 3,
    ):
        super().__init__()
        if filter not in ("implicit", "explicit"):
            raise ConfigError(f"GatedConv: filter must be implicit or explicit, got {filter!r}")
        require_positive("GatedConv", short_kernel=short_kernel, filter_order=filter_order)
        self.d_model = d_model
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.short_conv = CausalDepthwiseConv1d(3 * d_model, short_kernel, bias=True)
        if filter == "implicit":
            self.filter = ImplicitFilter(d_model, max_length, filter_order, filter_emb_dim)
            self.kernel = None
        else:
            self.filter = None
            self.kernel = nn.Parameter(torch.randn(max_length, d_model) * 0.02)
        self.filter_bias = nn.Parameter(torch.randn(d_model))
        self.out_proj = nn.Linear(d_model, d_model)

    def long_filter(self, length: int) -> torch.Tensor:
        """The causal long filter ``(length, d)``."""
        return self.filter(length) if self.filter is not None else self.kernel[:length]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2, v = self.short_conv(self.in_proj(x)).split(self.d_model, dim=-1)
        v = v * x1
        # torch.export (ONNX): the direct sum, which onnxruntime runs at any length (causal_direct_conv)
        convolve = causal_direct_conv if torch.compiler.is_exporting() else causal_fft_conv
        v = convolve(v, self.long_filter(x.shape[1])) + v.float() * self.filter_bias.float()
        return self.out_proj(v.to(x.dtype) * x2)


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={"tiny": Variant({"embed_dim": 16, "depth": 2, "filter_order": 8})},
    blocks=SequenceModel.block_layout,
    renamed=SequenceModel.renamed_args,
    source="own (Zoology's Hyena operator; weight for weight, but untied filter frequencies)",
)
class GatedConv(SequenceModel):
    """A language model of gated long convolutions (Hyena operator, see module docs).

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence (the long filters' length); filled in from the data.
        short_kernel: Taps of the short causal convolution (3).
        filter: ``implicit`` (Hyena's MLP filter) or ``explicit`` (a learned kernel per channel).
        filter_order: Width of the implicit filter's MLP (64).
        filter_emb_dim: Positional features of the implicit filter (3).
        **kwargs: The arguments every sequence family shares (:class:`SequenceModel`): ``embed_dim``,
            ``depth``, ``channel_mlp``, ``mlp_ratio``, ``norm``, ``bias``, ``dropout``,
            ``embedding_dropout``, ``learned_positions``, ``tie_embeddings``.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        short_kernel: int = 3,
        filter: FilterKind = "implicit",
        filter_order: int = 64,
        filter_emb_dim: int = 3,
        **kwargs: Any,
    ):
        super().__init__(vocab_size, context_length, **kwargs)
        self.build_blocks(
            lambda: GatedLongConv(
                self.embed_dim, context_length, short_kernel, filter, filter_order, filter_emb_dim
            )
        )
