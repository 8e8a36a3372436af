"""Mamba: a selective state-space model, in pure PyTorch, with a sequential and a parallel scan.

Gu and Dao, 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv 2312.00752;
official code state-spaces/mamba (``mamba_ssm/modules/mamba_simple.py``, ``models/mixer_seq_simple.py``).

Mixer, for input ``x`` of width d and ``d_inner = expand * d``:

* ``in_proj: d -> 2 d_inner`` (no bias) gives the stream ``u`` and the gate ``z``;
* ``u`` goes through a causal depthwise convolution (kernel ``d_conv = 4``, with bias) and SiLU;
* ``x_proj: d_inner -> dt_rank + 2 N`` (no bias) gives ``(dt, B, C)`` per token;
  ``Delta = softplus(dt_proj(dt))`` with ``dt_proj: dt_rank -> d_inner`` whose bias is initialised so
  that ``Delta`` is log-uniform in ``[dt_min, dt_max] = [1e-3, 1e-1]``;
* the selective scan ``h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t``, ``y_t = C_t h_t + D u_t`` with
  ``A = -exp(A_log)``, ``A_log = log(1..N)`` per channel (S4D-real) and ``D = 1``; the state ``h_t`` is
  ``(d_inner, N)``;
* ``y * SiLU(z)`` then ``out_proj: d_inner -> d`` (no bias).

Blocks are ``x + mixer(RMSNorm(x))`` (the official ``Block`` with ``rms_norm=True``; the official fused
kernels add the residual in a different place, with the same result), optionally followed by
``x + MLP(norm(x))``; no position embeddings; final RMSNorm and an LM head tied to the embedding. With
``embed_dim=768, depth=24`` and the GPT-NeoX vocabulary padded to 50,280 this is mamba-130m:
129,135,360 parameters.

The scan runs in float32, by one of three PyTorch forms (``scan``) or mamba-ssm's fused kernel
(``backend``, see :mod:`mlplab.models.sequence.backends`):

* ``chunked`` (default): :func:`mlplab.models.sequence.scans.selective_scan_chunked`, which saves one
  state per chunk of ``chunk_size`` steps and recomputes the chunk in the backward pass, so memory is
  linear in ``B x T x d_inner``; like the official kernel it takes the softplus, ``D`` and the gate
  ``z`` inside, so their intermediates are not stored either;
* ``sequential``: :func:`selective_scan_reference`, the plain loop over time, kept as the reference
  the tests check against;
* ``parallel``: :func:`selective_scan_parallel`, a log-depth (Hillis-Steele) scan inside chunks; it
  materialises the states ``(B, T, d_inner, N)`` (``recompute_scan`` recomputes them in the
  backward pass instead of storing them, but the recomputation still holds them all at once).

While the model is traced for export (``mlplab export``), every scan runs as
:func:`mlplab.models.sequence.scans.selective_scan_chunk_parallel` (all chunks at once, no loop over
the length), so that the exported file takes any length; equal to the chunked scan to float32 rounding.

Checked weight for weight against the official ``MambaLMHeadModel`` (``mamba_simple.Mamba`` with
mamba-ssm's ``selective_scan_ref`` and ``rms_norm_ref`` in place of its CUDA and Triton kernels), at
mamba-130m and with each scan, and the scans against ``selective_scan_ref`` directly:
``benchmarks/sequence_official_check.py --mamba`` (figures in ``docs/results.md``).

Shapes: tokens ``(B, T)`` -> logits ``(B, T, V)``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import Variant, register_family
from mlplab.models.sequence.backends import BackendChoice, causal_conv1d_kernel, mamba_ssm_scan
from mlplab.models.sequence.common import CausalDepthwiseConv1d, SequenceModel, SequenceNorm
from mlplab.models.sequence.scans import exporting, selective_scan_chunk_parallel, selective_scan_chunked
from mlplab.nn.channel_mlp import ChannelMLP
from mlplab.nn.moe import MixtureOfExperts

ScanKind = Literal["chunked", "parallel", "sequential"]
MambaBackend = Literal["auto", "torch", "mamba_ssm"]


def _discretise(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``exp(Delta A)`` and ``Delta B u``, both ``(batch, T, d_inner, N)`` in float32."""
    delta = delta.float()
    decay = torch.exp(delta[..., None] * A.float())
    drive = (delta * u.float())[..., None] * B.float()[:, :, None, :]
    return decay, drive


def selective_scan_reference(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor
) -> torch.Tensor:
    """The selective scan as a loop over time (the reference).

    Args:
        u: Inputs ``(batch, T, d_inner)``.
        delta: Step sizes ``(batch, T, d_inner)``, positive.
        A: State matrix diagonal ``(d_inner, N)``, negative.
        B: Input matrices ``(batch, T, N)``.
        C: Output matrices ``(batch, T, N)``.
        D: Skip ``(d_inner,)``.

    Returns:
        ``y`` ``(batch, T, d_inner)`` in float32.
    """
    decay, drive = _discretise(u, delta, A, B)
    state = decay.new_zeros(decay.shape[0], decay.shape[2], decay.shape[3])
    outputs = []
    for t in range(u.shape[1]):
        state = decay[:, t] * state + drive[:, t]
        outputs.append((state * C[:, t, None, :].float()).sum(-1))
    return torch.stack(outputs, dim=1) + u.float() * D.float()


def _shift(x: torch.Tensor, step: int, fill: float) -> torch.Tensor:
    """``x`` moved ``step`` places later along the time axis (dim 1), the first ``step`` places ``fill``."""
    return F.pad(x, (0, 0, 0, 0, step, -step), value=fill)


def _scan_chunk(decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """States ``h_t = a_t h_{t-1} + b_t`` of one chunk ``(batch, Q, d_inner, N)`` from ``h_{-1} = state``.

    A Hillis-Steele scan of the pairs ``(a, b)`` under ``(a, b) o (a', b') = (a a', a' b + b')``:
    ``log2(Q)`` rounds, each combining every step with the one ``2^round`` steps before it. Afterwards
    ``a_t`` holds the decay products ``a_t ... a_0``, which carry ``state`` into the chunk.
    """
    length = decay.shape[1]
    step = 1
    while step < length:
        drive = drive + decay * _shift(drive, step, 0.0)
        decay = decay * _shift(decay, step, 1.0)
        step *= 2
    return drive + decay * state[:, None]


def selective_scan_parallel(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    chunk_size: int = 64,
) -> torch.Tensor:
    """The selective scan by log-depth scans within chunks of ``chunk_size`` steps (module docs).

    Same arguments and result as :func:`selective_scan_reference`.
    """
    decay, drive = _discretise(u, delta, A, B)
    state = decay.new_zeros(decay.shape[0], decay.shape[2], decay.shape[3])
    outputs = []
    for start in range(0, u.shape[1], chunk_size):
        stop = start + chunk_size
        states = _scan_chunk(decay[:, start:stop], drive[:, start:stop], state)
        state = states[:, -1]
        outputs.append((states * C[:, start:stop, None, :].float()).sum(-1))
    return torch.cat(outputs, dim=1) + u.float() * D.float()


class DeltaProjection(nn.Linear):
    """``dt_proj``: an ``nn.Linear`` whose bias the fused scans may add themselves.

    ``forward(x, add_bias=False)`` is ``x Wᵀ`` alone, the official ``self.dt_proj.weight @ dt``; the
    scan then adds the bias (``delta_bias``) before the softplus. Called as a module either way, so
    its forward pre-hooks run, among them the one by which a pruning mask (``torch.nn.utils.prune``)
    recomputes ``weight``: reading ``dt_proj.weight`` directly gave the tensor of the pruning step.
    Same parameters and state-dict names as ``nn.Linear``.
    """

    def forward(self, x: torch.Tensor, add_bias: bool = True) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias if add_bias else None)


class MambaMixer(nn.Module):
    """The Mamba mixer (module docs).

    Shapes: ``(B, T, d) -> (B, T, d)``.

    Args:
        d_model: Width d.
        d_state: State size N per channel.
        d_conv: Kernel of the causal depthwise convolution.
        expand: ``d_inner = expand * d``.
        dt_rank: Rank of the step-size projection; ``None`` means ``ceil(d / 16)``.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init_floor: Floor of the initial step sizes.
        scan: The PyTorch scan: ``chunked`` (bounded memory), ``parallel`` (log-depth) or
            ``sequential`` (the reference loop).
        chunk_size: Steps per chunk of the chunked and parallel scans.
        recompute_scan: ``parallel`` scan: recompute it in the backward pass instead of storing its states.
        backend: ``auto``, ``torch`` or ``mamba_ssm`` (the fused CUDA kernels, see
            :mod:`mlplab.models.sequence.backends`; ``scan`` then does not apply).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        scan: ScanKind = "chunked",
        chunk_size: int = 64,
        recompute_scan: bool = False,
        backend: MambaBackend = "auto",
    ):
        super().__init__()
        require_positive("Mamba", d_state=d_state, d_conv=d_conv, expand=expand, chunk_size=chunk_size)
        if scan not in ("chunked", "parallel", "sequential"):
            raise ConfigError(f"Mamba: scan must be chunked, parallel or sequential, got {scan!r}")
        self.backend = BackendChoice("Mamba", backend, "mamba_ssm")
        if not 0 < dt_min <= dt_max:
            raise ConfigError(f"Mamba: need 0 < dt_min <= dt_max, got {dt_min} and {dt_max}")
        self.d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.scan = scan
        self.chunk_size = chunk_size
        self.recompute_scan = recompute_scan
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv = CausalDepthwiseConv1d(self.d_inner, d_conv, bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = DeltaProjection(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state))
        self.D = nn.Parameter(torch.empty(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self.dt_init = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()

    def reset_ssm_parameters(self) -> None:
        """The official initialisation of ``dt_proj``, ``A_log`` and ``D`` (skipped on the meta device)."""
        if self.A_log.is_meta:
            return
        dt_min, dt_max, floor = self.dt_init
        with torch.no_grad():
            std = self.dt_rank**-0.5
            nn.init.uniform_(self.dt_proj.weight, -std, std)
            dt = torch.exp(
                torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            )
            dt = dt.clamp(min=floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
            a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
            self.A_log.copy_(torch.log(a))
            self.D.fill_(1.0)
        self.dt_proj.keep_init = True  # the family's generic initialisation leaves it alone

    def selective_scan(self, u, delta, A, B, C, D) -> torch.Tensor:
        """The configured scan (see the module docs)."""
        if exporting():  # every scan's loops would hold the traced length: the length-generic form
            return selective_scan_chunk_parallel(u, delta, A, B, C, D, chunk_size=self.chunk_size)
        if self.scan == "sequential":
            return selective_scan_reference(u, delta, A, B, C, D)
        if self.recompute_scan and torch.is_grad_enabled():
            return checkpoint(
                selective_scan_parallel, u, delta, A, B, C, D, self.chunk_size, use_reentrant=False
            )
        return selective_scan_parallel(u, delta, A, B, C, D, self.chunk_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, z = self.in_proj(x).chunk(2, dim=-1)
        kernel = self.backend.resolve(x.device)
        conv_kernel = causal_conv1d_kernel() if kernel == "mamba_ssm" else None
        # the layers are called as modules, never read for their weights: their forward pre-hooks
        # run (a pruning mask, torch.nn.utils.prune, is recomputed there)
        u = self.conv(u, silu_kernel=conv_kernel) if conv_kernel is not None else F.silu(self.conv(u))
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        A = -torch.exp(self.A_log.float())
        if kernel == "mamba_ssm" or self.scan == "chunked":  # softplus, D and the gate inside the scan
            dt = self.dt_proj(dt, add_bias=False)  # the scan adds the bias (delta_bias)
            if kernel == "mamba_ssm":
                y = mamba_ssm_scan(u, dt, A, B, C, self.D, z, self.dt_proj.bias, delta_softplus=True)
            else:
                scan = selective_scan_chunk_parallel if exporting() else selective_scan_chunked
                y = scan(
                    u,
                    dt,
                    A,
                    B,
                    C,
                    self.D,
                    z,
                    self.dt_proj.bias,
                    delta_softplus=True,
                    chunk_size=self.chunk_size,
                )
            return self.out_proj(y.to(u.dtype))
        delta = F.softplus(self.dt_proj(dt).float())
        y = self.selective_scan(u, delta, A, B, C, self.D).to(u.dtype)
        return self.out_proj(y * F.silu(z))


@register_family(
    domains=("sequence",),
    channel_mlps=("conventional", "hourglass", "moe", "moe_plus_plus"),
    variants={
        "tiny": Variant({"embed_dim": 16, "depth": 2, "chunk_size": 5, "d_state": 4}),
        "130m": Variant(
            {"embed_dim": 768, "depth": 24, "d_state": 16, "expand": 2, "d_conv": 4},
            params=129_135_360,
            shapes=(50_280, 2048),
            source="state-spaces/mamba-130m's checkpoint (vocabulary padded to 50,280)",
        ),
    },
    blocks=SequenceModel.block_layout,
    renamed=SequenceModel.renamed_args,
    source="own, pure PyTorch, weight for weight with the official mamba_ssm",
)
class Mamba(SequenceModel):
    """A stack of Mamba blocks: the mamba_ssm language model in pure PyTorch (see module docs).

    mamba-130m (variant ``130m``) is ``embed_dim=768, depth=24`` with the defaults below.

    Args:
        vocab_size: Vocabulary V; filled in from the data.
        context_length: Longest sequence accepted; filled in from the data.
        d_state: State size N per channel.
        d_conv: Kernel of the causal depthwise convolution.
        expand: ``d_inner = expand * d``.
        dt_rank: Rank of the step-size projection; ``None`` means ``ceil(d / 16)``.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        scan: The PyTorch scan: ``chunked`` (one saved state per chunk; memory linear in the
            sequence), ``parallel`` (log-depth, stores every state) or ``sequential`` (the reference
            loop over time).
        chunk_size: Steps per chunk of the chunked and parallel scans.
        recompute_scan: ``parallel`` scan: recompute its states in the backward pass.
        backend: ``auto`` (mamba-ssm's kernels when installed and on CUDA, else PyTorch), ``torch``
            or ``mamba_ssm``; see :mod:`mlplab.models.sequence.backends`.
        channel_mlp: An optional channel MLP after each mixer (Mamba has none: ``null``).
        norm: ``rmsnorm`` (official) or ``layernorm``.
        **kwargs: The arguments every sequence family shares (:class:`SequenceModel`): ``embed_dim``,
            ``depth``, ``mlp_ratio``, ``bias``, ``dropout``, ``embedding_dropout``, ``learned_positions``,
            ``tie_embeddings``.
    """

    #: Arguments that choose how the same function is computed, not the model: a checkpoint may be
    #: evaluated or resumed with other values (a GPU run's ``backend: mamba_ssm`` tested on a CPU).
    computation_arguments: ClassVar[tuple[str, ...]] = ("scan", "chunk_size", "recompute_scan", "backend")

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        scan: ScanKind = "chunked",
        chunk_size: int = 64,
        recompute_scan: bool = False,
        backend: MambaBackend = "auto",
        channel_mlp: ChannelMLP | None = None,
        norm: SequenceNorm = "rmsnorm",
        **kwargs: Any,
    ):
        super().__init__(vocab_size, context_length, channel_mlp=channel_mlp, norm=norm, **kwargs)
        self.build_blocks(
            lambda: MambaMixer(
                self.embed_dim,
                d_state,
                d_conv,
                expand,
                dt_rank,
                dt_min,
                dt_max,
                scan=scan,
                chunk_size=chunk_size,
                recompute_scan=recompute_scan,
                backend=backend,
            )  # fmt: skip
        )

    def init_weights(self) -> None:
        """The official ``_init_weights`` (``mixer_seq_simple.py``).

        Linear layers keep PyTorch's default initialisation with zero biases (except ``dt_proj``),
        embeddings N(0, 0.02), and the residual branches' output layers, ``out_proj`` and a channel
        MLP's ``fc2`` (the official rule names both), are rescaled by ``1 / sqrt(depth)`` (one residual
        branch per layer; ``1 / sqrt(2 depth)`` with a channel MLP). Mixture-of-experts channel MLPs:
        the experts keep their default (:meth:`~mlplab.nn.moe.MixtureOfExperts.reset_experts`,
        PyTorch's for linear layers) with zero biases, as a dense channel MLP's layers, and their
        output stack ``w2`` is rescaled as ``fc2``.
        """
        branches = 1 if all(block.mlp is None for block in self.blocks) else 2
        for module in self.modules():
            if (
                isinstance(module, nn.Linear)
                and module.bias is not None
                and not getattr(module, "keep_init", False)
            ):
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, MixtureOfExperts):
                for bias in (module.b1, module.b2):
                    if bias is not None:
                        nn.init.zeros_(bias)
        scale = math.sqrt(branches * self.depth)
        with torch.no_grad():
            for block in self.blocks:
                block.mixer.out_proj.weight.div_(scale)
                if block.mlp is not None:
                    for name, parameter in block.mlp.named_parameters():
                        if name in ("fc2.weight", "w2"):
                            parameter.div_(scale)
