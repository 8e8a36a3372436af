"""The chunked scans against the sequential references: forward, gradients, and what they keep in memory."""

import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models.sequence.gla import gla_recurrent
from mlplab.models.sequence.mamba import selective_scan_parallel, selective_scan_reference
from mlplab.models.sequence.scans import (
    gla_chunk_parallel,
    gla_chunked,
    selective_scan_chunk_parallel,
    selective_scan_chunked,
)


def mamba_inputs(batch=2, length=37, channels=6, state=4, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    u, delta, z = (
        randn(batch, length, channels),
        randn(batch, length, channels),
        randn(batch, length, channels),
    )
    A = -torch.rand(channels, state, generator=generator, dtype=dtype) * 8  # strong decays too
    B, C = randn(batch, length, state), randn(batch, length, state)
    D, bias = randn(channels), randn(channels)
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


def mamba_reference(u, delta, A, B, C, D, z, bias, gated=True):
    """The full selective scan (softplus steps, skip, gate) around the sequential reference loop."""
    y = selective_scan_reference(u, F.softplus(delta + bias), A, B, C, D)
    return y * F.silu(z) if gated else y


def assert_grads_close(ours, theirs, inputs):
    for mine, reference, tensor in zip(
        torch.autograd.grad(ours.square().sum(), inputs, allow_unused=True),
        torch.autograd.grad(theirs.square().sum(), inputs, allow_unused=True),
        inputs,
    ):
        if reference is None:
            assert mine is None or mine.abs().max() == 0
            continue
        assert mine.dtype == tensor.dtype and mine.shape == tensor.shape
        torch.testing.assert_close(mine, reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 16, 64])
@pytest.mark.parametrize("gated", [True, False])
def test_chunked_selective_scan_equals_the_sequential_reference(chunk_size, gated):
    inputs = mamba_inputs()
    u, delta, A, B, C, D, z, bias = inputs
    ours = selective_scan_chunked(
        u, delta, A, B, C, D, z if gated else None, bias, delta_softplus=True, chunk_size=chunk_size
    )
    theirs = mamba_reference(*inputs, gated=gated)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert_grads_close(ours, theirs, inputs)


def test_chunked_selective_scan_without_skip_bias_or_softplus():
    u, delta, A, B, C, *_ = mamba_inputs()
    delta = F.softplus(delta.detach()).requires_grad_()  # positive steps given directly
    ours = selective_scan_chunked(u, delta, A, B, C, chunk_size=5)
    theirs = selective_scan_reference(u, delta, A, B, C, torch.zeros(u.shape[-1]))
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert_grads_close(ours, theirs, [u, delta, A, B, C])


def test_chunked_selective_scan_gradcheck_in_float64():
    inputs = mamba_inputs(batch=1, length=9, channels=3, state=2, dtype=torch.float64)

    def scan(u, delta, A, B, C, D, z, bias):
        return selective_scan_chunked(u, delta, A, B, C, D, z, bias, delta_softplus=True, chunk_size=4)

    assert torch.autograd.gradcheck(scan, inputs)


def test_chunked_selective_scan_under_bf16_autocast_stays_float32():
    u, delta, A, B, C, D, z, bias = (t.detach() for t in mamba_inputs())
    halves = [t.bfloat16().requires_grad_() for t in (u, delta, B, C, z)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = selective_scan_chunked(halves[0], halves[1], A, halves[2], halves[3], D, halves[4], bias,
                                     delta_softplus=True, chunk_size=8)  # fmt: skip
    assert out.dtype == torch.float32
    reference = mamba_reference(*(t.float() for t in halves[:2]), A, *(t.float() for t in halves[2:4]), D,
                                halves[4].float(), bias)  # fmt: skip
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)
    out.sum().backward()
    assert all(t.grad.dtype == torch.bfloat16 for t in halves)


def saved_elements(fn, *inputs) -> int:
    """Elements of the tensors autograd keeps for the backward pass of ``fn(*inputs)``, inputs excluded."""
    given = {t.data_ptr() for t in inputs}
    total = 0

    def pack(tensor):
        nonlocal total
        if tensor.data_ptr() not in given:
            total += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn(*inputs)
    return total


def test_the_chunked_scan_keeps_one_state_per_chunk():
    batch, length, channels, state, chunk = 2, 64, 8, 4, 16
    u, delta, A, B, C, D, *_ = mamba_inputs(batch, length, channels, state)
    delta = F.softplus(delta.detach()).requires_grad_()
    inputs = (u, delta, A, B, C, D)
    chunked = saved_elements(lambda *x: selective_scan_chunked(*x, chunk_size=chunk), *inputs)
    assert chunked == (length // chunk) * batch * channels * state  # the chunks' initial states only
    stored = saved_elements(lambda *x: selective_scan_parallel(*x, chunk_size=chunk), *inputs)
    assert stored > batch * length * channels * state  # every state, several times over


def gla_inputs(strength: float, batch=2, heads=3, length=45, d_k=8, d_v=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, length, d_k, generator=generator) * d_k**-0.5
    k = torch.randn(batch, heads, length, d_k, generator=generator)
    v = torch.randn(batch, heads, length, d_v, generator=generator)
    log_alpha = F.logsigmoid(torch.randn(batch, heads, length, d_k, generator=generator) * strength)
    return [t.requires_grad_() for t in (q, k, v, log_alpha / 16 if strength < 4 else log_alpha)]


@pytest.mark.parametrize("strength", [1.0, 8.0])  # 8: decays far stronger than the paper's gates give
@pytest.mark.parametrize("chunk_size", [1, 7, 16, 64])
@pytest.mark.parametrize("recompute", [True, False])
def test_chunked_gla_equals_the_recurrence(chunk_size, strength, recompute):
    inputs = gla_inputs(strength)
    ours = gla_chunked(*inputs, chunk_size=chunk_size, recompute=recompute)
    theirs = gla_recurrent(*inputs)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert_grads_close(ours, theirs, inputs)


def test_chunked_gla_recomputes_instead_of_storing_the_pairwise_decays():
    inputs = gla_inputs(1.0, batch=2, heads=2, length=64, d_k=8, d_v=8)
    pairwise = 2 * 2 * 64 * 16 * 8  # (B, H, C, C, d_k) per chunk, over every chunk
    recomputed = saved_elements(lambda *x: gla_chunked(*x, chunk_size=16), *inputs)
    stored = saved_elements(lambda *x: gla_chunked(*x, chunk_size=16, recompute=False), *inputs)
    assert stored > pairwise > 4 * recomputed


# The export forms (all chunks at once, no loop over the length) compute the layers' outputs to float32
# rounding: within 1e-5 of the outputs' largest magnitude, at lengths that are and are not whole chunks.
@pytest.mark.parametrize(("length", "chunk_size"), [(1, 3), (5, 3), (6, 3), (45, 7), (45, 16)])
@pytest.mark.parametrize("strength", [1.0, 8.0])
def test_the_chunk_parallel_gla_equals_the_chunked_one(length, chunk_size, strength):
    with torch.no_grad():
        inputs = gla_inputs(strength, length=length)
        expected = gla_chunked(*inputs, chunk_size=chunk_size)
        got = gla_chunk_parallel(*inputs, chunk_size=chunk_size)
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize(("length", "chunk_size"), [(1, 3), (5, 3), (6, 3), (37, 7), (37, 16)])
@pytest.mark.parametrize("full", [True, False])  # softplus, skip, bias and gate inside, or none of them
def test_the_chunk_parallel_selective_scan_equals_the_chunked_one(length, chunk_size, full):
    with torch.no_grad():
        u, delta, A, B, C, D, z, bias = mamba_inputs(length=length)
        if full:
            args = (u, delta, A, B, C, D, z, bias, True)
        else:
            args = (u, F.softplus(delta), A, B, C, None, None, None, False)
        expected = selective_scan_chunked(*args, chunk_size=chunk_size)
        got = selective_scan_chunk_parallel(*args, chunk_size=chunk_size)
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, atol=1e-5 * scale, rtol=0)


def test_chunk_size_must_be_positive():
    with pytest.raises(ConfigError, match="chunk_size must be a positive integer"):
        selective_scan_chunked(*mamba_inputs()[:5], chunk_size=0)
    with pytest.raises(ConfigError, match="chunk_size must be a positive integer"):
        gla_chunked(*gla_inputs(1.0), chunk_size=0)
    with pytest.raises(ConfigError, match="chunk_size must be a positive integer"):
        selective_scan_chunk_parallel(*mamba_inputs()[:5], chunk_size=0)
    with pytest.raises(ConfigError, match="chunk_size must be a positive integer"):
        gla_chunk_parallel(*gla_inputs(1.0), chunk_size=0)
