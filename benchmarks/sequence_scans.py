"""Speed and memory of the scans, forward + backward: the chunked forms against today's and the references.

On the inputs of one layer of width ``d_model`` (Mamba: ``d_inner = 2 d_model``, state 16; GLA: 4 heads,
``d_k = d_model / 8``, ``d_v = d_model / 4``), times forward + backward of

* Mamba's selective scan: ``sequential`` (:func:`selective_scan_reference`, the loop over time),
  ``parallel`` (:func:`selective_scan_parallel`, the log-depth scan that stores every state),
  ``parallel_recompute`` (the same under activation checkpointing: how the recipes ran it before the
  chunked scan), ``chunked`` (:func:`mlplab.models.sequence.scans.selective_scan_chunked`, one saved
  state per chunk) and, on CUDA with mamba-ssm installed, ``mamba_ssm`` (its ``selective_scan_fn``);
* GLA: ``recurrent`` (:func:`gla_recurrent`), ``chunkwise`` (every chunk's intermediates stored, at
  ``--gla-chunk-before`` steps per chunk: the recipes' form before), ``chunked`` (each chunk
  recomputed in the backward pass, at ``--gla-chunk``) and, on CUDA with flash-linear-attention
  installed, ``fla`` (``chunk_gla``).

Every form is first checked against its reference (the largest absolute difference of the outputs,
float32). Each timing is the median of ``--repeats`` runs after ``--warmup`` untimed ones, between
device synchronisations; the forms are interleaved, repeat by repeat, so that a machine shared with
other work slows them alike. Memory: ``peak_mib``, the most memory a form's forward + backward
holds beyond what was held before it (CUDA: the allocator's peak; CPU: the growth of the process's
peak resident set, Linux, after returning freed heap memory to the system with ``malloc_trim``), and
``saved_mib``, what autograd keeps for the backward pass beyond the inputs (saved-tensor hooks, each
storage once; activation checkpointing hides its recomputation from them, the peak shows it).
``--no-reference-timing`` checks against the references without timing them.

    python benchmarks/sequence_scans.py                                   # GPU, the Shakespeare model's layer
    python benchmarks/sequence_scans.py --device cpu --batch 8 --length 256 --d-model 128
    python benchmarks/sequence_scans.py --compile                  # also torch.compile the PyTorch forms
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from mlplab.models.sequence.backends import LIBRARIES, fla_chunk_gla, import_problem, mamba_ssm_scan
from mlplab.models.sequence.gla import gla_chunkwise, gla_recurrent
from mlplab.models.sequence.mamba import selective_scan_parallel, selective_scan_reference
from mlplab.models.sequence.scans import gla_chunked, selective_scan_chunked
from mlplab.tools.provenance import code_version

REPO = Path(__file__).resolve().parents[1]
MIB = 1024**2


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def saved_bytes(fn: Callable[[], torch.Tensor], inputs: list[torch.Tensor]) -> int:
    """Bytes autograd keeps for the backward pass of ``fn()`` beyond ``inputs``, each storage once."""
    seen = {t.untyped_storage().data_ptr() for t in inputs}
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = fn()
    del output
    return total


def proc_status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes (0 where there is none)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak(device: torch.device) -> int:
    """Start a new peak; returns what the peak is measured from."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap memory back to the system (glibc)
    except OSError:
        pass
    clear = Path("/proc/self/clear_refs")
    if clear.exists():
        clear.write_text("5")  # VmHWM := VmRSS
    return proc_status("VmRSS")


def peak_since(device: torch.device, baseline: int) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) - baseline
    return proc_status("VmHWM") - baseline


def time_forms(
    forms: dict[str, Callable[[], torch.Tensor]], device: torch.device, warmup: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Median seconds and peak memory (MiB) of ``fn().sum().backward()`` per form, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in forms}
    peaks: dict[str, int] = dict.fromkeys(forms, 0)
    for _ in range(warmup):
        for fn in forms.values():
            fn().sum().backward()
    for _ in range(repeats):
        for name, fn in forms.items():
            sync(device)
            baseline = reset_peak(device)
            start = time.perf_counter()
            fn().sum().backward()
            sync(device)
            times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], peak_since(device, baseline))
    return {
        name: {"seconds": round(statistics.median(times[name]), 4), "peak_mib": round(peaks[name] / MIB)}
        for name in forms
    }


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


def kernel_usable(library: str, device: torch.device) -> bool:
    return device.type == "cuda" and import_problem(LIBRARIES[library].module) is None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=384)
    parser.add_argument("--mamba-chunk", type=int, default=64)
    parser.add_argument("--gla-chunk", type=int, default=16)
    parser.add_argument("--gla-chunk-before", type=int, default=32, help="the chunkwise form's chunk")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-reference-timing", action="store_true", help="check, but do not time, the loops"
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd PyTorch forms")
    parser.add_argument("--out", type=Path, default=None, help="append the result as a JSON line")
    options = parser.parse_args()
    device = torch.device(options.device)

    mamba = mamba_inputs(options, device)
    u, delta, A, B, C, D = mamba
    mamba_forms = {
        "sequential": lambda: selective_scan_reference(*mamba),
        "parallel": lambda: selective_scan_parallel(*mamba, chunk_size=options.mamba_chunk),
        "parallel_recompute": lambda: checkpoint(
            selective_scan_parallel, *mamba, options.mamba_chunk, use_reentrant=False
        ),
        "chunked": lambda: selective_scan_chunked(u, delta, A, B, C, D, chunk_size=options.mamba_chunk),
    }
    if kernel_usable("mamba_ssm", device):
        mamba_forms["mamba_ssm"] = lambda: mamba_ssm_scan(u, delta, A, B, C, D)
    gla = gla_inputs(options, device)
    gla_forms = {
        "recurrent": lambda: gla_recurrent(*gla),
        "chunkwise": lambda: gla_chunkwise(*gla, chunk_size=options.gla_chunk_before),
        "chunked": lambda: gla_chunked(*gla, chunk_size=options.gla_chunk),
    }
    if kernel_usable("fla", device):
        gla_forms["fla"] = lambda: fla_chunk_gla(*gla)
    if options.compile:
        compiled_mamba, compiled_gla = torch.compile(selective_scan_parallel), torch.compile(gla_chunkwise)
        mamba_forms["parallel_compiled"] = lambda: compiled_mamba(*mamba, chunk_size=options.mamba_chunk)
        gla_forms["chunkwise_compiled"] = lambda: compiled_gla(*gla, chunk_size=options.gla_chunk_before)

    result: dict = {"shape": {"batch": options.batch, "length": options.length, "d_model": options.d_model}}
    families = (("mamba", mamba_forms, "sequential", mamba), ("gla", gla_forms, "recurrent", gla))
    for family, forms, reference, inputs in families:
        with torch.no_grad():
            expected = forms[reference]()
            differences = {
                name: (fn().float() - expected).abs().max().item()
                for name, fn in forms.items()
                if name != reference
            }
        timed = {
            name: fn for name, fn in forms.items() if name != reference or not options.no_reference_timing
        }
        measured = time_forms(timed, device, options.warmup, options.repeats)
        for name, figures in measured.items():
            figures["max_abs_difference"] = differences.get(name, 0.0)
            figures["saved_mib"] = round(saved_bytes(forms[name], inputs) / MIB, 1)
        result[family] = measured
    before = {"mamba": "parallel_recompute", "gla": "chunkwise"}
    for family, old in before.items():
        result[f"{family}_chunked_speedup_over_{old}"] = round(
            result[family][old]["seconds"] / result[family]["chunked"]["seconds"], 2
        )
    result.update(
        device=torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor()})",
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        commit=code_version(REPO),
    )
    print(json.dumps(result))
    if options.out is not None:
        with open(options.out, "a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
