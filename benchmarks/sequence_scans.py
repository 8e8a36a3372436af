"""Speed of the fast scans against their sequential references: Mamba's selective scan, GLA's recurrence.

Times forward + backward of

* Mamba: :func:`selective_scan_parallel` (chunked log-depth scan) against
  :func:`selective_scan_reference` (a loop over time), on the inputs of one Mamba layer of width
  ``d_model`` (``d_inner = 2 d_model``, state 16);
* GLA: :func:`gla_chunkwise` against :func:`gla_recurrent` on one layer's heads.

Both pairs are first checked to agree (within 1e-4 in float32). Each timing is the median of
``--repeats`` runs after ``--warmup`` untimed ones, between device synchronisations.

    python benchmarks/sequence_scans.py                                   # GPU, the Shakespeare model's layer
    python benchmarks/sequence_scans.py --device cpu --batch 8 --length 256 --d-model 128
    python benchmarks/sequence_scans.py --compile                         # also torch.compile the fast forms
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from mlplab.models.sequence.gla import gla_chunkwise, gla_recurrent
from mlplab.models.sequence.mamba import selective_scan_parallel, selective_scan_reference
from mlplab.tools.provenance import code_version

REPO = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], torch.Tensor], device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn().sum().backward()``."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn().sum().backward()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn().sum().backward()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mamba_inputs(options: argparse.Namespace, device: torch.device) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch, length, channels, state = options.batch, options.length, 2 * options.d_model, 16
    u = torch.randn(batch, length, channels, generator=generator)
    delta = F.softplus(torch.randn(batch, length, channels, generator=generator) - 3)
    A = -torch.arange(1, state + 1, dtype=torch.float32).repeat(channels, 1)
    B = torch.randn(batch, length, state, generator=generator)
    C = torch.randn(batch, length, state, generator=generator)
    D = torch.ones(channels)
    return [t.to(device).requires_grad_() for t in (u, delta, A, B, C, D)]


def gla_inputs(options: argparse.Namespace, device: torch.device) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    heads = 4
    d_k, d_v = options.d_model // 2 // heads, options.d_model // heads
    shape = (options.batch, heads, options.length)
    q = torch.randn(*shape, d_k, generator=generator) * d_k**-0.5
    k = torch.randn(*shape, d_k, generator=generator)
    v = torch.randn(*shape, d_v, generator=generator)
    log_alpha = F.logsigmoid(torch.randn(*shape, d_k, generator=generator)) / 16
    return [t.to(device).requires_grad_() for t in (q, k, v, log_alpha)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=384)
    parser.add_argument("--mamba-chunk", type=int, default=64)
    parser.add_argument("--gla-chunk", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd fast forms")
    parser.add_argument("--out", type=Path, default=None, help="append the result as a JSON line")
    options = parser.parse_args()
    device = torch.device(options.device)

    mamba = mamba_inputs(options, device)
    gla = gla_inputs(options, device)
    fast_mamba = lambda: selective_scan_parallel(*mamba, chunk_size=options.mamba_chunk)  # noqa: E731
    fast_gla = lambda: gla_chunkwise(*gla, chunk_size=options.gla_chunk)  # noqa: E731
    with torch.no_grad():
        mamba_error = (fast_mamba() - selective_scan_reference(*mamba)).abs().max().item()
        gla_error = (fast_gla() - gla_recurrent(*gla)).abs().max().item()
    result = {
        "shape": {"batch": options.batch, "length": options.length, "d_model": options.d_model},
        "mamba_max_abs_difference": mamba_error,
        "gla_max_abs_difference": gla_error,
        "mamba_sequential_s": timed(
            lambda: selective_scan_reference(*mamba), device, options.warmup, options.repeats
        ),
        "mamba_parallel_s": timed(fast_mamba, device, options.warmup, options.repeats),
        "gla_recurrent_s": timed(lambda: gla_recurrent(*gla), device, options.warmup, options.repeats),
        "gla_chunkwise_s": timed(fast_gla, device, options.warmup, options.repeats),
    }
    result["mamba_speedup"] = round(result["mamba_sequential_s"] / result["mamba_parallel_s"], 2)
    result["gla_speedup"] = round(result["gla_recurrent_s"] / result["gla_chunkwise_s"], 2)
    if options.compile:
        compiled_mamba = torch.compile(selective_scan_parallel)
        compiled_gla = torch.compile(gla_chunkwise)
        result["mamba_parallel_compiled_s"] = timed(
            lambda: compiled_mamba(*mamba, chunk_size=options.mamba_chunk),
            device,
            options.warmup + 1,
            options.repeats,
        )
        result["gla_chunkwise_compiled_s"] = timed(
            lambda: compiled_gla(*gla, chunk_size=options.gla_chunk),
            device,
            options.warmup + 1,
            options.repeats,
        )
    commit = code_version(REPO)
    result.update(
        device=torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor()})",
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        commit=commit,
    )
    print(json.dumps(result))
    if options.out is not None:
        with open(options.out, "a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
