"""Schedules that need the length of training, the optimiser's parameter groups, and how it is built.

The tasks build their optimiser with :func:`build_optimizer` (Adam and AdamW fused by default).

A schedule with a ``total_steps`` argument left at ``None`` runs over the whole fit: mlplab's tasks
pass the trainer's ``estimated_stepping_batches`` when they build it. That holds for the schedules
here and for torch's own, such as ``torch.optim.lr_scheduler.OneCycleLR``::

    lr_scheduler:
      class_path: torch.optim.lr_scheduler.OneCycleLR
      init_args: {max_lr: 0.01, pct_start: 0.2}     # total_steps: the run's length
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

#: Which parameters the optimiser's weight decay leaves out (see :func:`weight_decay_groups`).
WeightDecayExclusion = Literal["norms_biases_embeddings", "norms_biases", "nothing"]


def weight_decay_groups(module: nn.Module, exclude: WeightDecayExclusion = "norms_biases_embeddings") -> list:
    """The trainable parameters of ``module`` as optimiser parameter groups, some without weight decay.

    * ``norms_biases_embeddings`` (mlplab's default, as timm's ``param_groups_weight_decay``): no decay
      for parameters of one dimension or fewer (norm scales and shifts, biases, gates, learned scalars),
      for ``nn.Embedding`` tables, and for the names a module lists in its ``no_weight_decay()`` (timm's
      convention: position embeddings, class tokens).
    * ``norms_biases`` (nanoGPT's): no decay for parameters of one dimension or fewer; embedding tables
      decay like every matrix.
    * ``nothing``: every parameter decays (PyTorch's behaviour with ``model.parameters()``).

    Frozen parameters (``requires_grad=False``) are left out altogether. The group without decay sets
    ``weight_decay: 0``; the other keeps the optimiser's own. Empty groups are dropped, so a model
    without norms and biases gets one group.
    """
    embeddings, listed = set(), set()
    if exclude == "norms_biases_embeddings":
        for child in module.modules():
            if isinstance(child, (nn.Embedding, nn.EmbeddingBag)):
                embeddings.add(id(child.weight))
            if callable(getattr(child, "no_weight_decay", None)):
                listed |= {str(name).rsplit(".", 1)[-1] for name in child.no_weight_decay()}
    decay, keep, seen = [], [], set()
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        excluded = exclude != "nothing" and (
            parameter.ndim <= 1
            or name.endswith(".bias")
            or id(parameter) in embeddings
            or name.rsplit(".", 1)[-1] in listed
        )
        (keep if excluded else decay).append(parameter)
    groups = []
    if decay:
        groups.append({"params": decay})
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0})
    return groups


#: The optimisers :func:`build_optimizer` runs with torch's fused implementation unless told otherwise.
FUSED_BY_DEFAULT: tuple[type[Optimizer], ...] = (torch.optim.Adam, torch.optim.AdamW)


def build_optimizer(factory: Callable[..., Optimizer], params: list) -> Optimizer:
    """``factory(params)``; Adam and AdamW with ``fused=True`` where torch has the kernel for the parameters.

    torch's fused Adam and AdamW update each parameter in one pass over its memory instead of about ten
    elementwise operations; it is the same update (its rounding differs in the last bits). torch turns it on
    nowhere by default (on CUDA it picks the ``foreach`` form, on the CPU the per-tensor loop); nanoGPT turns
    it on for CUDA. mlplab builds ``torch.optim.Adam`` and ``AdamW`` fused when the configuration sets
    neither ``fused`` nor ``foreach`` (``fused: false`` or ``foreach: true`` in ``init_args`` keeps torch's
    choice) and every parameter is a plain floating-point tensor on the CPU or a CUDA device (not, e.g.,
    a sharded ``DTensor``). Measured on the quickstart's model (917,504 parameters, one CPU thread):
    AdamW's step 6.0 ms, fused 2.2 ms (``benchmarks/small_runs.py``, docs/results.md).

    A fit resumed from a checkpoint keeps the implementation the checkpoint's optimiser was saved with
    (torch restores each parameter group's ``fused`` with its other settings).

    Args:
        factory: The optimiser class, or a ``functools.partial`` of it with its arguments (what
            LightningCLI's ``OptimizerCallable`` gives).
        params: Parameters or parameter groups, as the optimiser takes them.
    """
    params = list(params)  # a generator would be used up by the check
    if not _fuses_by_default(factory, params):
        return factory(params)
    try:
        return factory(params, fused=True)
    except RuntimeError:  # a parameter the fused kernels do not take (torch checks it when building)
        return factory(params)


def _fuses_by_default(factory: Callable[..., Optimizer], params: list) -> bool:
    """Whether :func:`build_optimizer` asks ``factory`` for its fused implementation."""
    if isinstance(factory, functools.partial):  # LightningCLI's callable holds the class among its args
        classes = [part for part in (factory.func, *factory.args) if isinstance(part, type)]
        options: dict[str, Any] = dict(factory.keywords)
    else:
        classes, options = [factory], {}
    if not classes or classes[0] not in FUSED_BY_DEFAULT:
        return False
    if any(options.get(name) is not None for name in ("fused", "foreach")) or options.get("differentiable"):
        return False
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    return bool(tensors) and all(
        type(p.data) is torch.Tensor and p.device.type in ("cpu", "cuda") and p.is_floating_point()
        for p in tensors
    )


class LinearWarmupDecay(LRScheduler):
    """Linear warm-up from 0, then linear decay to ``final_fraction`` of the base LR at the last step.

    With the defaults (no warm-up, decay to zero) this is the Hourglass paper's schedule, stepped per
    optimiser step instead of per epoch. ``total_steps=None`` means "the whole run": mlplab's tasks fill
    it in with the trainer's ``estimated_stepping_batches`` when they build the scheduler.

    Args:
        optimizer: The wrapped optimiser.
        total_steps: Optimiser steps of the whole run; ``None`` lets the task fill it in.
        warmup_steps: Steps of linear warm-up from 0 to the base LR.
        final_fraction: LR at the last step as a fraction of the base LR.
        last_epoch: Index of the last step when resuming (PyTorch's convention).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        warmup_steps: int = 0,
        final_fraction: float = 0.0,
        last_epoch: int = -1,
    ):
        if warmup_steps < 0 or not 0.0 <= final_fraction <= 1.0:
            raise ValueError(
                f"LinearWarmupDecay: warmup_steps must be >= 0 and final_fraction in [0, 1], got "
                f"{warmup_steps} and {final_fraction}"
            )
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_fraction = final_fraction
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """Multiplier of the base LR at optimiser step ``step`` (counted from 0)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.total_steps is None:
            return 1.0
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        return self.decay(min(1.0, (step - self.warmup_steps) / decay_steps))

    def decay(self, progress: float) -> float:
        """Multiplier of the base LR after the warm-up, ``progress`` going from 0 to 1: a straight line."""
        return 1.0 - (1.0 - self.final_fraction) * progress

    def get_lr(self) -> list[float]:
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]


class WarmupCosine(LinearWarmupDecay):
    """Linear warm-up from 0, then a cosine decay to ``final_fraction`` of the base LR at the last step.

    nanoGPT's schedule (``get_lr`` in its ``train.py``: ``warmup_iters``, then a half cosine down to
    ``min_lr`` at ``lr_decay_iters``), stepped per optimiser step; the arguments are
    :class:`LinearWarmupDecay`'s. ``total_steps=None`` lets the task fill in the run's length.
    """

    def decay(self, progress: float) -> float:
        """Multiplier of the base LR after the warm-up: half a cosine from 1 to ``final_fraction``."""
        return self.final_fraction + (1.0 - self.final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


class OneCycle(LRScheduler):
    """Deprecated: use ``torch.optim.lr_scheduler.OneCycleLR`` (its ``max_lr`` the optimiser's ``lr``).

    Kept, unchanged, so that run directories and checkpoints of earlier versions keep running and
    resuming; it warns once when built. Torch's ``OneCycleLR`` gives the same learning rates and
    momenta (``tests/test_optim.py``), and mlplab's tasks fill in its ``total_steps`` the same way.

    One-cycle schedule (``torch.optim.lr_scheduler.OneCycleLR``'s cosine shape) over the whole run.

    The LR rises from ``base_lr / div_factor`` to the base LR (the optimiser's ``lr``) over the first
    ``pct_start`` of the steps, then anneals to ``base_lr / (div_factor · final_div_factor)``, both on
    cosine curves. Time-Series-Library and TimeMixer's ``lradj: TST`` are this, stepped per optimiser
    step with PyTorch's defaults (``div_factor=25``, ``final_div_factor=1e4``, and Adam's ``beta1``
    cycled inversely between 0.95 and 0.85). ``total_steps=None`` lets the task fill in the run's length.

    Args:
        optimizer: The wrapped optimiser.
        total_steps: Optimiser steps of the whole run; ``None`` lets the task fill it in.
        pct_start: Fraction of the steps spent rising.
        div_factor: Initial LR = base LR / ``div_factor``.
        final_div_factor: Final LR = initial LR / ``final_div_factor``.
        cycle_momentum: Cycle the momentum (``beta1`` of Adam-type optimisers) inversely to the LR.
        base_momentum: Momentum at the LR peak.
        max_momentum: Momentum at the start and the end.
        last_epoch: Index of the last step when resuming (PyTorch's convention).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        last_epoch: int = -1,
    ):
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.cycle_momentum = cycle_momentum
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum
        warnings.warn(
            "mlplab.optim.OneCycle is deprecated: use torch.optim.lr_scheduler.OneCycleLR with max_lr set to "
            "the optimiser's lr (mlplab fills in total_steps as before)",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _cos(start: float, end: float, progress: float) -> float:
        return end + (start - end) / 2.0 * (1.0 + math.cos(math.pi * progress))

    def _phase(self, step: int) -> tuple[int, float]:
        """Phase (0 rising, 1 annealing) and progress in it, as torch's OneCycleLR (two phases)."""
        peak = float(self.pct_start * self.total_steps) - 1
        end = float(self.total_steps) - 1
        if step <= peak:
            return 0, step / max(peak, 1e-9)
        return 1, min(1.0, (step - peak) / max(end - peak, 1e-9))

    def factor(self, step: int) -> float:
        """Multiplier of the base LR at optimiser step ``step`` (counted from 0)."""
        start, final = 1.0 / self.div_factor, 1.0 / (self.div_factor * self.final_div_factor)
        if self.total_steps is None:
            return start
        phase, progress = self._phase(step)
        return self._cos(start, 1.0, progress) if phase == 0 else self._cos(1.0, final, progress)

    def momentum(self, step: int) -> float:
        """Momentum at optimiser step ``step``."""
        if self.total_steps is None:
            return self.max_momentum
        phase, progress = self._phase(step)
        if phase == 0:
            return self._cos(self.max_momentum, self.base_momentum, progress)
        return self._cos(self.base_momentum, self.max_momentum, progress)

    def get_lr(self) -> list[float]:
        if self.cycle_momentum:
            momentum = self.momentum(self.last_epoch)
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (momentum, *group["betas"][1:])
                elif "momentum" in group:
                    group["momentum"] = momentum
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]


class EpochDecay(LRScheduler):
    """Time-Series-Library's per-epoch schedules (``lradj``), stepped once per epoch.

    The LR of epoch ``e`` (counted from 0) is ``base_lr · gamma^max(0, e - hold)``: ``gamma=0.5, hold=1``
    is ``type1`` (DLinear's and most baselines' default: halve after every epoch from the second on);
    ``gamma=0.9, hold=3`` is ``type3`` (PatchTST's default). Use it with
    ``lr_scheduler_interval: epoch``.

    Args:
        optimizer: The wrapped optimiser.
        gamma: Factor per epoch.
        hold: Epochs at the base LR before the decay starts.
        last_epoch: Index of the last epoch when resuming (PyTorch's convention).
    """

    def __init__(self, optimizer: Optimizer, gamma: float = 0.5, hold: int = 1, last_epoch: int = -1):
        self.gamma = gamma
        self.hold = hold
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = self.gamma ** max(0, self.last_epoch - self.hold)
        return [base_lr * factor for base_lr in self.base_lrs]
