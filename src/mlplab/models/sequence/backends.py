"""Optional fused kernels for the sequence mixers, and the choice between them and the PyTorch reference.

A mixer with a kernel library takes ``backend: auto | torch | <library>``:

* ``torch``: the pure-PyTorch path (:mod:`mlplab.models.sequence.scans`), on any device;
* ``<library>``: the library's fused kernel; it must be importable and the inputs on a CUDA device,
  otherwise the run ends with one line naming the backend, the reason and the install command;
* ``auto`` (the default): the kernel when its library is importable and the inputs are on a CUDA
  device, the PyTorch path otherwise; the choice is logged once per mixer class and device.

Libraries (``pip install -e ".[kernels]"`` installs both; neither is ever required):

* ``fla``: flash-linear-attention (``fla.ops.gla.chunk_gla``), for :class:`GatedLinearAttention`;
* ``mamba_ssm``: mamba-ssm's ``selective_scan_fn`` for :class:`Mamba`'s scan, with causal-conv1d's
  ``causal_conv1d_fn`` for its convolution when that package is installed too.

The meta device (parameter and FLOP counting) always takes the PyTorch path. Each kernel is checked
against the PyTorch path in ``tests/models/sequence/test_backends.py`` (GPU tests).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache

import torch

from mlplab.errors import ConfigError


@dataclass(frozen=True)
class KernelLibrary:
    """A kernel library a mixer can use.

    Args:
        name: The backend's name in configs.
        module: The module imported to use it.
        install: The command that installs it.
    """

    name: str
    module: str
    install: str


LIBRARIES = {
    "fla": KernelLibrary(
        "fla", "fla.ops.gla", 'pip install flash-linear-attention (or pip install -e ".[kernels]")'
    ),
    "mamba_ssm": KernelLibrary(
        "mamba_ssm",
        "mamba_ssm.ops.selective_scan_interface",
        'pip install mamba-ssm causal-conv1d --no-build-isolation (or pip install -e ".[kernels]")',
    ),
}


@cache
def import_problem(module: str) -> str | None:
    """Why ``module`` cannot be imported (the exception's first line), or ``None`` when it can."""
    try:
        importlib.import_module(module)
    except Exception as error:  # ImportError, or a compiled extension that fails to load (OSError, ...)
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"{type(error).__name__}: {first_line}"
    return None


_LOGGED: set[tuple[str, str, str]] = set()


def rank_zero_info(message: str) -> None:
    """Lightning's ``rank_zero_info``, imported at the first call (listing families imports no Lightning)."""
    from lightning.pytorch.utilities import rank_zero_info as info

    info(message)


class BackendChoice:
    """A mixer's ``backend`` argument: validated when the mixer is built, resolved at each call.

    Args:
        owner: The family's name, for messages (``"Mamba"``).
        requested: ``"auto"``, ``"torch"`` or the library's name.
        library: The library this mixer can use (a key of :data:`LIBRARIES`).

    Raises:
        ConfigError: For an unknown backend, or a library that cannot be imported.
    """

    def __init__(self, owner: str, requested: str, library: str):
        self.owner = owner
        self.requested = requested
        self.library = LIBRARIES[library]
        self.last: str | None = None  # what the last call on a real device used (benchmarks report it)
        if requested not in ("auto", "torch", library):
            raise ConfigError(f"{owner}: backend must be auto, torch or {library}, got {requested!r}")
        if requested == library:
            problem = import_problem(self.library.module)
            if problem is not None:
                raise ConfigError(
                    f"{owner}: backend {library} cannot be used: {self.library.module} does not import "
                    f"({problem}); install it with {self.library.install}, or set backend: torch"
                )

    def resolve(self, device: torch.device) -> str:
        """``"torch"`` or the library's name for inputs on ``device`` (see the module docs).

        Raises:
            ConfigError: When the library was requested and ``device`` is not a CUDA device.
        """
        if device.type == "meta":
            return "torch"
        self.last = self._resolve(device)
        return self.last

    def _resolve(self, device: torch.device) -> str:
        kernel = self.library.name
        if self.requested == "torch":
            return "torch"
        if self.requested == kernel:
            if device.type != "cuda":
                raise ConfigError(
                    f"{self.owner}: backend {kernel} runs on CUDA devices only, got inputs on {device}: "
                    f"set backend: torch (or auto) for this device"
                )
            return kernel
        usable = device.type == "cuda" and import_problem(self.library.module) is None
        chosen = kernel if usable else "torch"
        key = (self.owner, device.type, chosen)
        if key not in _LOGGED:
            _LOGGED.add(key)
            reason = (
                "the inputs are on a CUDA device and it imports"
                if usable
                else f"{kernel} needs CUDA inputs (these are on {device.type})"
                if device.type != "cuda"
                else f"{self.library.module} does not import ({import_problem(self.library.module)})"
            )
            rank_zero_info(f"{self.owner}: backend auto uses {chosen}: {reason}")
        return chosen

    def __repr__(self) -> str:
        return self.requested


def backends_in_use(model: torch.nn.Module) -> str:
    """The backends ``model``'s mixers used in their last call (``"torch"`` for families without a choice)."""
    used = {
        module.backend.last or "torch"
        for module in model.modules()
        if isinstance(getattr(module, "backend", None), BackendChoice)
    }
    return "+".join(sorted(used)) or "torch"


# ----------------------------------------------------------------------------------- kernels


def mamba_ssm_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """mamba-ssm's ``selective_scan_fn`` on ``(batch, T, channels)`` tensors.

    Same arguments and result as :func:`mlplab.models.sequence.scans.selective_scan_chunked` (without
    ``chunk_size``); the kernel takes time on the last axis.
    """
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    def channels_first(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.transpose(1, 2).contiguous()

    y = selective_scan_fn(
        channels_first(u),
        channels_first(delta),
        A.float(),
        channels_first(B),
        channels_first(C),
        None if D is None else D.float(),
        z=channels_first(z),
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
    )
    return y.transpose(1, 2)


def causal_conv1d_kernel():
    """causal-conv1d's ``causal_conv1d_fn``, or ``None`` when the package does not import."""
    if import_problem("causal_conv1d") is not None:
        return None
    from causal_conv1d import causal_conv1d_fn

    return causal_conv1d_fn


def fla_chunk_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_alpha: torch.Tensor) -> torch.Tensor:
    """flash-linear-attention's ``chunk_gla`` on ``(B, H, T, d)`` tensors with queries already scaled.

    Same arguments and result as :func:`mlplab.models.sequence.gla.gla_recurrent` (in the queries'
    dtype; the gates are cast to it, as fla's own GLA layer computes them). The kernel takes
    ``(B, T, H, d)`` tensors; versions that still have a ``head_first`` switch are told so.
    """
    from fla.ops.gla import chunk_gla

    layout = {"head_first": False} if "head_first" in inspect.signature(chunk_gla).parameters else {}
    q, k, v, log_alpha = (t.transpose(1, 2) for t in (q, k, v, log_alpha.to(q.dtype)))
    output, _ = chunk_gla(q, k, v, log_alpha, scale=1.0, **layout)
    return output.transpose(1, 2)
