"""Per-step costs of the fit loop that do no training, removed where nothing is lost.

Each of these cost about a tenth of a millisecond or more per training step on the 2-core CPU
machine (profiled with py-spy and cProfile; the quickstart's step is about 10 ms, see
``docs/results.md``, "Small runs against hand-written code"):

* :func:`skip_unusable_nvml_check`: importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that
  asking whether CUDA is available does not initialise CUDA before DataLoader workers fork). torch's
  Adam and AdamW ask on every ``step()``; where the NVIDIA management library cannot be loaded (no
  NVIDIA driver: every CPU machine with torch's CUDA build), torch tries to load it again on every
  question, then falls back to the CUDA runtime's count, the very call it makes without the variable.
* :class:`QuietProfiler`: Lightning wraps every hook call (about 70 per step with mlplab's callbacks) in
  its profiler's ``profile()``; the default profiler, which records nothing, does it with a generator
  context manager. This one records nothing with a shared no-op context.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

from lightning.pytorch.profilers import PassThroughProfiler

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"

#: The library torch loads for its NVML-based device count (``torch.cuda._raw_device_count_nvml``).
NVML_LIBRARY = "libnvidia-ml.so.1"


def skip_unusable_nvml_check() -> bool:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` where NVML cannot be loaded; return whether it was unset.

    With NVML unloadable, torch's NVML-based check fails and falls back to ``cudaGetDeviceCount``, which
    is what the check does without the variable: the answers, and whether CUDA is initialised by asking,
    are the same; only the failed ``dlopen`` on every question is gone. Where NVML loads (a machine with
    an NVIDIA driver) nothing is changed.
    """
    if os.environ.get(NVML_CHECK) != "1":
        return False
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        del os.environ[NVML_CHECK]
        return True
    return False


class QuietProfiler(PassThroughProfiler):
    """Lightning's default profiler (records nothing), with a no-op ``profile()`` that costs no generator.

    The trainer's ``profiler`` when none is configured (``--trainer.profiler simple`` and the other
    profilers work as before).
    """

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return self._nothing
