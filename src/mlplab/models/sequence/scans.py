"""Chunked scans with bounded memory: Mamba's selective scan and gated linear attention, in pure PyTorch.

Both recurrences carry a state per token whose size is the model width times a state size (Mamba:
``(d_inner, N)`` per sequence; GLA: ``(d_k, d_v)`` per head). Autograd through a plain implementation
keeps every token's state for the backward pass, ``B x T x width x state`` floats per layer, which is
what made the Mamba recipes need tens of GiB. The forms here keep **one state per chunk** of
``chunk_size`` tokens and recompute the states inside a chunk during the backward pass, one chunk at
a time, so a layer's saved activations are linear in ``B x T x width`` and the transient memory is
one chunk's worth:

* :func:`selective_scan_chunked`: the selective scan ``h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t``,
  ``y_t = C_t h_t + D u_t`` (then ``y * SiLU(z)``), as a custom autograd function with a hand-written
  backward pass. Inside a chunk the recurrence runs step by step over ``(B, d_inner, N)`` slices of
  one preallocated buffer; the backward pass recomputes the chunk's states from the chunk's saved
  initial state and runs the adjoint recurrence ``dh_t = C_t^T dy_t + exp(Delta_{t+1} A) dh_{t+1}``
  backwards. Its arguments follow mamba-ssm's ``selective_scan_fn`` (``D``, ``z``, ``delta_bias``,
  ``delta_softplus``), with time on the second axis instead of the last. Saved for the backward pass:
  the inputs and ``ceil(T / chunk_size)`` states ``(B, d_inner, N)``; transient: three
  ``(chunk_size, B, d_inner, N)`` buffers.
* :func:`gla_chunked`: gated linear attention in its chunkwise form (the same arithmetic as
  :func:`mlplab.models.sequence.gla.gla_chunkwise`), each chunk under activation checkpointing
  (``torch.utils.checkpoint``): a chunk's ``(B, H, C, C, d_k)`` decay tensor exists only while that
  chunk is computed, in the forward pass and once more in the backward pass.

The sequential loops :func:`mlplab.models.sequence.mamba.selective_scan_reference` and
:func:`mlplab.models.sequence.gla.gla_recurrent` stay the ground truth: the tests check these forms
against them (float32, forward and gradients, within 1e-4). Everything runs in float32, with
autocast off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from mlplab.errors import require_positive
from mlplab.nn.precision import autocast_off

_LOG2_E = 1.4426950408889634  # exp(x) = exp2(x log2(e))

# ------------------------------------------------------------------------------------ Mamba


def exporting() -> bool:
    """Whether the model is being traced for export (``torch.jit.trace``, ``torch.export``, ONNX).

    The chunked scans loop over chunks (and steps) in Python, so a trace holds the number of chunks of
    the length it was traced at; while exporting, the layers take length-generic forms instead
    (:func:`gla_chunk_parallel`, :func:`selective_scan_chunk_parallel`), which compute the same
    outputs to float32 rounding.
    """
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


def _segment_sums(x: torch.Tensor) -> torch.Tensor:
    """``out[..., j, i, :] = sum_{i < m <= j} x[..., m, :]`` (``i <= j``; else ``-inf``) of ``x (..., n, d)``.

    Summed along the chunks of each segment (a masked cumulative sum), not as a difference of two
    running totals, so a short segment keeps its precision however large the totals grow.
    """
    n = x.shape[-2]
    index = torch.arange(n, device=x.device)
    later = index[:, None] > index[None, :]  # m > i, (m, i)
    repeated = x[..., :, None, :].expand(*x.shape[:-2], n, n, x.shape[-1])  # (..., m, i, d) = x[m]
    sums = repeated.masked_fill(~later[:, :, None], 0.0).cumsum(-3)  # (..., j, i, d)
    return sums.masked_fill(~(index[:, None] >= index[None, :])[:, :, None], float("-inf"))


def _padded_chunks(x: torch.Tensor, dim: int, chunk_size: int) -> torch.Tensor:
    """``x`` zero-padded along ``dim`` to whole chunks and split there into ``(n, chunk_size)``.

    The padding is computed from the (possibly symbolic) length, so a trace or ``torch.export`` graph
    keeps it length-generic.
    """
    length = x.shape[dim]
    padding = [0, 0] * (x.dim() - 1 - dim) + [0, (chunk_size - length % chunk_size) % chunk_size]
    x = F.pad(x, padding)
    return x.unflatten(dim, (-1, chunk_size))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 inputs (so that ``torch.autograd.gradcheck`` can check the scans)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _time_major(x: torch.Tensor | None, start: int, stop: int) -> torch.Tensor | None:
    """A copy of ``x[:, start:stop]``, contiguous ``(stop - start, B, ...)``, in the compute dtype."""
    if x is None:
        return None
    part = x[:, start:stop].transpose(0, 1)
    return torch.empty(part.shape, dtype=_compute_dtype(x), device=x.device).copy_(part)


class _SelectiveScan(torch.autograd.Function):
    """The selective scan with one saved state per chunk (see :func:`selective_scan_chunked`).

    The recurrences run one step at a time over ``(B, N, d_inner)`` tensors (the state axis before
    the channels, so that the contractions with ``B_t`` and ``C_t`` run along contiguous channels),
    written into buffers allocated once per call: a step's few operations stay in the CPU's cache,
    where the same operations over whole chunks would stream ``(Q, B, N, d_inner)`` tensors through
    memory each time and fault in fresh pages for every new buffer. Decays are computed as
    ``exp2(dt * A log2(e))``, which PyTorch's CPU kernels evaluate several times faster than ``exp``.
    Time-major tensors ``(T, B, ...)`` are returned as transposed views.
    """

    @staticmethod
    def _chunk(u, delta, B, C, z, delta_bias, softplus: bool, start: int, stop: int) -> dict:
        """A chunk's inputs, time-major: ``dt`` (step sizes), ``pre`` (before the softplus), ``du = dt u``."""
        pre = _time_major(delta, start, stop)
        if delta_bias is not None:
            pre += delta_bias.to(pre.dtype)
        dt = F.softplus(pre) if softplus else pre
        u_c, B_c, C_c, z_c = (_time_major(x, start, stop) for x in (u, B, C, z))
        return {"dt": dt, "pre": pre, "u": u_c, "du": dt * u_c, "B": B_c, "C": C_c, "z": z_c}

    @staticmethod
    def _recurrence(
        chunk: dict, A2: torch.Tensor, h: torch.Tensor, decay: torch.Tensor, states=None, decays=None, y=None
    ) -> torch.Tensor:
        """``h_t = exp(dt_t A) h_{t-1} + du_t B_t`` over a chunk from ``h``; returns the last state.

        ``h`` is updated in place unless ``states`` is given. ``A2`` is ``A log2(e)``
        ``(N, d_inner)``; states are ``(B, N, d_inner)``; ``decay`` is a buffer of that shape.
        ``states`` and ``decays`` ``(>= Q, B, N, d_inner)`` receive every state and decay, ``y``
        ``(Q, B, d_inner)`` every ``C_t h_t``.
        """
        dt, du, B, C = chunk["dt"], chunk["du"], chunk["B"], chunk["C"]
        for t in range(dt.shape[0]):
            if decays is not None:
                decay = decays[t]
            torch.mul(dt[t, :, None, :], A2, out=decay).exp2_()
            if states is not None:
                h = torch.mul(h, decay, out=states[t])
            else:
                h.mul_(decay)
            h.addcmul_(B[t, :, :, None], du[t, :, None, :])
            if y is not None:
                torch.bmm(C[t, :, None, :], h, out=y[t, :, None, :])
        return h

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, chunk_size):
        with autocast_off(u):
            batch, length, channels = u.shape
            dtype = _compute_dtype(u)
            A2 = A.to(dtype).t().mul(_LOG2_E).contiguous()  # (N, d_inner)
            state = u.new_zeros(batch, A.shape[1], channels, dtype=dtype)
            decay = torch.empty_like(state)
            y = u.new_empty(length, batch, channels, dtype=dtype)
            starts = []
            for start in range(0, length, chunk_size):
                stop = min(start + chunk_size, length)
                chunk = _SelectiveScan._chunk(u, delta, B, C, z, delta_bias, softplus, start, stop)
                starts.append(state.clone())
                y_chunk = y[start:stop]
                _SelectiveScan._recurrence(chunk, A2, state, decay, y=y_chunk)
                if D is not None:
                    y_chunk.addcmul_(chunk["u"], D.to(dtype))
                if z is not None:
                    y_chunk.mul_(F.silu(chunk["z"]))
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, torch.stack(starts))
            ctx.softplus, ctx.chunk_size = softplus, chunk_size
            return y.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_output):
        u, delta, A, B, C, D, z, delta_bias, starts = ctx.saved_tensors
        dtype = starts.dtype
        with autocast_off(u):
            A_t = A.to(dtype).t().contiguous()  # (N, d_inner)
            A2 = A_t * _LOG2_E
            D32 = D.to(dtype) if D is not None else None
            grad_A = torch.zeros_like(A_t)
            grad_D = torch.zeros_like(D32) if D is not None else None
            time_major = (u.shape[1], u.shape[0])
            grad_u, grad_dt = (u.new_empty(*time_major, u.shape[2], dtype=dtype) for _ in range(2))
            grad_B, grad_C = (u.new_empty(*time_major, B.shape[2], dtype=dtype) for _ in range(2))
            grad_z = u.new_empty(*time_major, u.shape[2], dtype=dtype) if z is not None else None
            buffers = (min(ctx.chunk_size, u.shape[1]), *starts.shape[1:])
            states, decays = (u.new_empty(buffers, dtype=dtype) for _ in range(2))
            carry = torch.zeros_like(starts[0])  # adjoint of the chunk's last state, from later steps
            for index, start in reversed(list(enumerate(range(0, u.shape[1], ctx.chunk_size)))):
                stop = min(start + ctx.chunk_size, u.shape[1])
                chunk = _SelectiveScan._chunk(u, delta, B, C, z, delta_bias, ctx.softplus, start, stop)
                size = stop - start
                _SelectiveScan._recurrence(
                    chunk, A2, starts[index], None, states=states[:size], decays=decays[:size]
                )
                grad_y = _time_major(grad_output, start, stop)
                if z is not None:  # the output is y * silu(z)
                    y = (chunk["C"][:, :, None, :] @ states[:size]).squeeze(2)
                    if D32 is not None:
                        y.addcmul_(chunk["u"], D32)
                    gate = torch.sigmoid(chunk["z"])
                    grad_z[start:stop] = grad_y * y * gate * (1 + chunk["z"] * (1 - gate))
                    grad_y.mul_(chunk["z"] * gate)
                if D32 is not None:
                    grad_D += (grad_y * chunk["u"]).sum((0, 1))
                grad_du = grad_u[start:stop]  # d/d(du) first, then turned into d/du below
                carry, grad_A_chunk = _SelectiveScan._adjoint(
                    chunk, A_t, starts[index], states, decays, grad_y, carry,
                    grad_dt[start:stop], grad_du, grad_B[start:stop], grad_C[start:stop],
                )  # fmt: skip
                grad_A += grad_A_chunk
                grad_dt[start:stop].addcmul_(grad_du, chunk["u"])
                grad_du.mul_(chunk["dt"])
                if D32 is not None:
                    grad_du.addcmul_(grad_y, D32)
                if ctx.softplus:
                    grad_dt[start:stop].mul_(torch.sigmoid(chunk["pre"]))
            grad_bias = grad_dt.sum((0, 1)) if delta_bias is not None else None
        return (
            grad_u.transpose(0, 1).to(u.dtype),
            grad_dt.transpose(0, 1).to(delta.dtype),
            grad_A.t().to(A.dtype),
            grad_B.transpose(0, 1).to(B.dtype),
            grad_C.transpose(0, 1).to(C.dtype),
            grad_D.to(D.dtype) if D is not None else None,
            grad_z.transpose(0, 1).to(z.dtype) if z is not None else None,
            grad_bias.to(delta_bias.dtype) if delta_bias is not None else None,
            None,
            None,
        )

    @staticmethod
    def _adjoint(
        chunk: dict, A, start_state, states, decays, grad_y, carry, grad_dt, grad_du, grad_B, grad_C
    ):
        """The adjoint recurrence over a chunk, last step first, writing the gradients it gives.

        ``dh_t = C_t dy_t + exp(dt_{t+1} A) dh_{t+1}``; then ``d/dC_t = h_t dy_t``, ``d/d(du_t) =
        B_t dh_t``, ``d/dB_t = dh_t du_t`` and, with ``g_t = dh_t exp(dt_t A) h_{t-1}`` (the gradient
        of ``dt_t A``), ``d/d(dt_t) = sum_n g_t A`` and ``d/dA = sum_{b, t} g_t dt_t``. ``A`` is
        ``(N, d_inner)``, states and adjoints ``(B, N, d_inner)``; the gradients go into
        ``grad_dt``, ``grad_du``, ``grad_B`` and ``grad_C`` (time-major, the chunk's length).

        Returns:
            The carry ``exp(dt_0 A) dh_0`` into the previous chunk and the chunk's ``d/dA``
            ``(N, d_inner)``.
        """
        dt, du, B, C = chunk["dt"], chunk["du"], chunk["B"], chunk["C"]
        dh, work = carry.clone(), torch.empty_like(carry)  # no allocation inside the loop
        grad_A = torch.zeros_like(carry)  # summed over the batch at the end
        for t in range(dt.shape[0] - 1, -1, -1):
            dh.addcmul_(C[t, :, :, None], grad_y[t, :, None, :])
            torch.sum(torch.mul(states[t], grad_y[t, :, None, :], out=work), -1, out=grad_C[t])
            torch.bmm(B[t, :, None, :], dh, out=grad_du[t, :, None, :])
            torch.sum(torch.mul(dh, du[t, :, None, :], out=work), -1, out=grad_B[t])
            dh.mul_(decays[t])  # now exp(dt_t A) dh_t: the part of dh_{t-1} that comes from step t
            torch.mul(dh, states[t - 1] if t else start_state, out=work)  # g_t
            grad_A.addcmul_(work, dt[t, :, None, :])
            torch.sum(work.mul_(A), 1, out=grad_dt[t])
        return dh, grad_A.sum(0)


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk_size: int = 32,
) -> torch.Tensor:
    """The selective scan with one saved state per chunk of ``chunk_size`` steps (module docs).

    ``Delta = softplus(delta + delta_bias)`` (``delta_softplus``; without it ``delta + delta_bias``),
    ``h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t``, ``y_t = C_t h_t + D u_t``, and the output is
    ``y * SiLU(z)`` when ``z`` is given: mamba-ssm's ``selective_scan_fn`` with time on axis 1.

    Args:
        u: Inputs ``(batch, T, d_inner)``.
        delta: Step sizes (or their pre-activations) ``(batch, T, d_inner)``.
        A: State matrix diagonal ``(d_inner, N)``.
        B: Input matrices ``(batch, T, N)``.
        C: Output matrices ``(batch, T, N)``.
        D: Skip ``(d_inner,)`` or ``None``.
        z: Gate ``(batch, T, d_inner)`` or ``None``.
        delta_bias: Bias added to ``delta`` ``(d_inner,)`` or ``None``.
        delta_softplus: Apply softplus to ``delta + delta_bias``.
        chunk_size: Steps per chunk (one state saved per chunk; three chunk-sized buffers in backward).

    Returns:
        ``(batch, T, d_inner)`` in float32.
    """
    require_positive("selective_scan_chunked", chunk_size=chunk_size)
    if u.device.type == "meta":  # shape and FLOP counting: no values, and the recurrence has no matmuls
        inputs = [u, delta, B.sum(-1, keepdim=True), C.sum(-1, keepdim=True), A.sum()]
        inputs += [t for t in (D, z, delta_bias) if t is not None]
        return sum(t.float() * 0 for t in inputs)
    return _SelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size)


def _shifted(x: torch.Tensor, step: int, fill: float) -> torch.Tensor:
    """``x`` moved ``step`` places later along axis 2 (the steps of a chunk), the first ``step`` ``fill``."""
    return F.pad(x, (0, 0, 0, 0, step, -step), value=fill)


def selective_scan_chunk_parallel(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk_size: int = 32,
) -> torch.Tensor:
    """The selective scan with every chunk computed at once (the export form, inference only).

    Same arguments and result as :func:`selective_scan_chunked`. Inside each chunk the states come
    from a log-depth (Hillis-Steele) scan, ``log2(chunk_size)`` rounds over all chunks together; the
    state entering chunk ``j`` is ``sum_{i < j} exp(A (Delta_{i+1} + ... + Delta_{j-1})) H_i`` with
    ``H_i`` chunk ``i``'s last state from a zero start and ``Delta_m`` its step sizes summed
    (``(batch, n, n, d_inner, N)`` decays for ``n`` chunks). Nothing depends on the length in Python,
    so a trace or ``torch.export`` graph takes any length: the steps are zero-padded to whole chunks
    (a zero step size leaves the state as it is) and the outputs cut back. It materialises every state
    ``(batch, T, d_inner, N)``. Equal to :func:`selective_scan_chunked` to float32 rounding (the tests:
    within 1e-5 of the outputs' scale).
    """
    require_positive("selective_scan_chunk_parallel", chunk_size=chunk_size)
    length = u.shape[1]
    with autocast_off(u):
        dtype = _compute_dtype(u)
        dt = delta.to(dtype) + (delta_bias.to(dtype) if delta_bias is not None else 0.0)
        dt = F.softplus(dt) if delta_softplus else dt
        dt, u_c, B_c, C_c = (
            _padded_chunks(t.to(dtype), 1, chunk_size) for t in (dt, u, B, C)
        )  # (b, n, Q, .)
        A = A.to(dtype)
        decay = torch.exp(dt[..., None] * A)  # (b, n, Q, d_inner, N)
        drive = (dt * u_c)[..., None] * B_c[..., None, :]
        step = 1
        while step < chunk_size:  # states from a zero start; decay becomes the products a_t ... a_0
            drive = drive + decay * _shifted(drive, step, 0.0)
            decay = decay * _shifted(decay, step, 1.0)
            step *= 2
        totals = _segment_sums(dt.sum(2))  # (b, n(j), n(i), d_inner): step sizes of chunks i+1..j
        exponent = (totals[..., None] * A).masked_fill(totals[..., None] == float("-inf"), float("-inf"))
        after = exponent.exp().mul(drive[:, None, :, -1]).sum(2)  # the state after each chunk j
        before = torch.cat([torch.zeros_like(after[:, :1]), after[:, :-1]], dim=1)
        states = drive + decay * before[:, :, None]
        y = (states * C_c[..., None, :]).sum(-1).flatten(1, 2)[:, :length]  # (b, T, d_inner)
        if D is not None:
            y = y + u.to(dtype) * D.to(dtype)
        if z is not None:
            y = y * F.silu(z.to(dtype))
        return y


# -------------------------------------------------------------------------------------- GLA


def gla_chunk(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_alpha: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of gated linear attention: its outputs and the state after it.

    With ``G`` the cumulative log-gates inside the chunk, ``o_t = (q_t * exp(G_t)) S + sum_{s <= t}
    (q_t . (k_s * exp(G_t - G_s))) v_s`` and the state passed on is ``exp(G_C) S + sum_s
    (k_s * exp(G_C - G_s))^T v_s``; every exponent is <= 0.

    Args:
        q: Queries ``(B, H, C, d_k)`` (already scaled), float32.
        k: Keys ``(B, H, C, d_k)``.
        v: Values ``(B, H, C, d_v)``.
        log_alpha: Log forget gates ``(B, H, C, d_k)``, <= 0.
        state: State before the chunk ``(B, H, d_k, d_v)``.

    Returns:
        Outputs ``(B, H, C, d_v)`` and the state after the chunk.
    """
    size = q.shape[2]
    cumulative = log_alpha.cumsum(dim=2)  # G_t
    inter = (q * cumulative.exp()) @ state
    exponent = cumulative[:, :, :, None, :] - cumulative[:, :, None, :, :]  # G_t - G_s, (B, H, C, C, d_k)
    causal = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
    exponent = exponent.masked_fill(~causal[:, :, None], float("-inf"))
    scores = (q[:, :, :, None, :] * k[:, :, None, :, :] * exponent.exp()).sum(-1)  # (B, H, C, C)
    last = cumulative[:, :, -1:, :]  # G_C
    new_state = last.transpose(-1, -2).exp() * state + (k * (last - cumulative).exp()).transpose(-1, -2) @ v
    return inter + scores @ v, new_state


def gla_chunk_parallel(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_alpha: torch.Tensor, chunk_size: int = 16
) -> torch.Tensor:
    """GLA outputs by the chunkwise form with every chunk computed at once (the export form).

    Same arguments and result as :func:`gla_chunked`, and within a chunk the same arithmetic
    (:func:`gla_chunk`); the states passed between chunks are not carried by a loop but summed:
    the state before chunk ``j`` is ``sum_{i < j} exp(g_{i+1} + ... + g_{j-1}) U_i`` with ``U_i`` the
    state chunk ``i`` adds and ``g_m`` the log-gates summed over chunk ``m`` (``(B, H, n, n, d_k)``
    decays for ``n`` chunks). Nothing depends on the length in Python, so a trace or ``torch.export``
    graph takes any length: the sequence is zero-padded to whole chunks (a zero log-gate, key and
    value leave the state as it is) and the outputs cut back. Equal to :func:`gla_chunked` to float32
    rounding (the tests: within 1e-5).
    """
    require_positive("gla_chunk_parallel", chunk_size=chunk_size)
    length = q.shape[2]
    with autocast_off(q):
        q, k, v, log_alpha = (
            _padded_chunks(t.to(_compute_dtype(q)), 2, chunk_size) for t in (q, k, v, log_alpha)
        )
        cumulative = log_alpha.cumsum(dim=3)  # G_t inside each chunk, (B, H, n, C, d_k)
        exponent = cumulative[..., :, None, :] - cumulative[..., None, :, :]  # (B, H, n, C, C, d_k)
        causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
        exponent = exponent.masked_fill(~causal[:, :, None], float("-inf"))
        scores = (q[..., :, None, :] * k[..., None, :, :] * exponent.exp()).sum(-1)  # (B, H, n, C, C)
        last = cumulative[..., -1:, :]  # G_C of each chunk, (B, H, n, 1, d_k)
        added = (k * (last - cumulative).exp()).transpose(-1, -2) @ v  # U_i, (B, H, n, d_k, d_v)
        # states after each chunk: sum_{i <= j} exp(g_{i+1} + ... + g_j) U_i; before: shifted by one
        decays = _segment_sums(last.squeeze(-2)).exp()  # (B, H, n(j), n(i), d_k)
        after = torch.einsum("bhjik,bhikv->bhjkv", decays, added)
        before = torch.cat([torch.zeros_like(after[:, :, :1]), after[:, :, :-1]], dim=2)
        outputs = (q * cumulative.exp()) @ before + scores @ v  # (B, H, n, C, d_v)
        return outputs.flatten(2, 3)[:, :, :length]


def gla_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_alpha: torch.Tensor,
    chunk_size: int = 16,
    recompute: bool = True,
) -> torch.Tensor:
    """GLA outputs, chunk by chunk, each chunk recomputed in the backward pass (module docs).

    Same arguments and result as :func:`mlplab.models.sequence.gla.gla_recurrent`: queries and keys
    ``(B, H, T, d_k)`` (queries already scaled), values ``(B, H, T, d_v)``, log forget gates
    ``(B, H, T, d_k)``; outputs ``(B, H, T, d_v)`` in float32 (float64 for float64 inputs).

    Args:
        q: Queries.
        k: Keys.
        v: Values.
        log_alpha: Log forget gates, <= 0.
        chunk_size: Steps per chunk.
        recompute: Recompute each chunk in the backward pass (``False``: keep every chunk's
            intermediates, ``(B, H, C, C, d_k)`` floats per chunk, as autograd does by default).
    """
    require_positive("gla_chunked", chunk_size=chunk_size)
    with autocast_off(q):
        q, k, v, log_alpha = (t.to(_compute_dtype(q)) for t in (q, k, v, log_alpha))
        state = q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1])
        tracked = any(t.requires_grad for t in (q, k, v, log_alpha))
        recompute = recompute and torch.is_grad_enabled() and tracked
        outputs = []
        for start in range(0, q.shape[2], chunk_size):
            chunk = [t[:, :, start : start + chunk_size] for t in (q, k, v, log_alpha)]
            if recompute:
                output, state = checkpoint(gla_chunk, *chunk, state, use_reentrant=False)
            else:
                output, state = gla_chunk(*chunk, state)
            outputs.append(output)
        return torch.cat(outputs, dim=2)
