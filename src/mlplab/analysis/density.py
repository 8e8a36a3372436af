"""Activation density of the channel MLPs, and DEFT's density loss (the task option ``density``).

Runwal, Pedapati and Chen, "From PEFT to DEFT: Parameter Efficient Finetuning for Reducing Activation
Density in Transformers" (arXiv 2402.01911, AAAI 2024; official code github.com/IBM/DEFT). The
*activation density* of a layer is the share of the intermediate outputs of its MLP (the activation
function's output, ``intermediate_act_fn`` in the official code) that are non-zero; low density lets
sparsity-aware hardware skip work. DEFT adds a *density loss* to the training loss that pushes it down:
the number of non-zeros is approximated smoothly by ``a² / (a² + ε)`` for each activation ``a``, averaged
over the tokens and units of a layer and over the layers (``compute_l0_penalty`` in the official
``GLUE/adapter.py``: the mean over layers and samples of the per-sample mean; ``ε = 1e-7``), and added
with weight λ (1.0 in the official scripts)::

    L = L_task + λ · mean_layers mean_(tokens, units) a² / (a² + ε)

The density itself is measured as the official evaluation does, ``count_nonzero / numel``, or, with a
``threshold``, as the share of activations with ``|a| > threshold`` (GELU is exactly zero only at 0 and
far below it, so a small threshold says more there than the exact count).

Which activations: in a family with a block layout, the outputs of the activation-function modules
(ReLU, GELU, SiLU, ... from torch or timm) inside each block's channel-MLP branches, grouped per block;
a family without a layout (MAXIM, PatchTST, StandardMLP) gets every activation-function module of the
backbone, one group each. mlplab trains the whole model with the loss (DEFT trains PEFT modules of a
frozen pre-trained model; the loss is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from mlplab.errors import ConfigError
from mlplab.models.registry import find

#: Elementwise activation functions that are not hidden activations (gates, attention weights).
_NOT_HIDDEN = {"Sigmoid", "Tanh", "Softmax", "Softmin", "LogSoftmax", "Softmax2d", "MultiheadAttention",
               "GLU", "Threshold", "Hardsigmoid", "LogSigmoid", "Identity"}  # fmt: skip
_ACTIVATION_MODULES = ("torch.nn.modules.activation", "timm.layers.activations", "timm.layers.activations_me")


def is_hidden_activation(module: nn.Module) -> bool:
    """Whether ``module`` is an elementwise activation function of torch or timm (ReLU, GELU, SiLU, ...)."""
    cls = type(module)
    return cls.__module__ in _ACTIVATION_MODULES and cls.__name__ not in _NOT_HIDDEN


def hidden_activations(backbone: nn.Module) -> list[tuple[str, str, nn.Module]]:
    """``(group, module path, activation)`` of the channel-MLP hidden activations of ``backbone``.

    Groups are ``block{i}`` (the i-th residual block of the family's layout) or, for a family without
    one, the activation's own module path.
    """
    spec = find(type(backbone))
    found = []
    if spec is not None and spec.blocks is not None:
        for index, (block_name, block) in enumerate(spec.blocks.blocks(backbone)):
            for attribute, branch in spec.blocks.branches(block, "mlp"):
                for name, module in branch.named_modules():
                    if is_hidden_activation(module):
                        path = ".".join(p for p in (block_name, attribute, name) if p)
                        found.append((f"block{index}", path, module))
    if not found and (spec is None or spec.blocks is None):
        found = [(name, name, m) for name, m in backbone.named_modules() if is_hidden_activation(m)]
    return found


@dataclass
class ActivationDensity:
    """DEFT's density loss on the channel-MLP hidden activations, and their density logged per block.

    With this section a task logs ``val/density`` and ``val/density/block{i}`` (and ``test/...``): the
    share of active hidden activations; with ``weight > 0`` it also adds DEFT's density loss to the
    training loss (logged as ``train/density_loss``, unweighted). See :mod:`mlplab.analysis.density`.

    Args:
        weight: λ, the weight of the density loss (0: measure only; DEFT's scripts use 1.0).
        eps: ε of the smooth non-zero count ``a² / (a² + ε)`` (DEFT's default 1e-7).
        threshold: An activation counts as active when ``|a| > threshold`` (0: when non-zero, as DEFT
            counts).
    """

    weight: float = 0.0
    eps: float = 1e-7
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ConfigError(f"model.density.weight must be 0 or positive, got {self.weight}")
        if not self.eps > 0:
            raise ConfigError(f"model.density.eps must be positive, got {self.eps}")
        if not self.threshold >= 0:
            raise ConfigError(f"model.density.threshold must be 0 or positive, got {self.threshold}")


class DensityProbe:
    """Forward hooks on a backbone's hidden activations: DEFT's loss in training, the density otherwise.

    In training mode with grad enabled and ``weight > 0``, each hooked activation leaves its term
    ``mean(a² / (a² + ε))`` (:meth:`pop_loss` averages and clears them). In evaluation mode each leaves
    its count of active values and its size per group (:meth:`pop_counts`), on the device, without a
    host synchronisation.

    Args:
        backbone: The built family.
        config: The ``density`` section.
        what: Who asks (for the message when there is nothing to measure).

    Raises:
        ConfigError: When ``backbone`` has no hidden activation to measure.
    """

    def __init__(self, backbone: nn.Module, config: ActivationDensity, what: str = "model.density"):
        self.config = config
        self.activations = hidden_activations(backbone)
        if not self.activations:
            raise ConfigError(
                f"{what}: {type(backbone).__name__} has no channel-MLP hidden activation to measure (no "
                "ReLU / GELU / ... module in its channel MLPs)"
            )
        self.groups = list(dict.fromkeys(group for group, _, _ in self.activations))
        self._terms: list[torch.Tensor] = []
        self._counts: dict[str, list[tuple[torch.Tensor, int]]] = {group: [] for group in self.groups}
        self._handles = [
            module.register_forward_hook(self._hook(group)) for group, _, module in self.activations
        ]

    def _hook(self, group: str) -> Callable:
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor) or output.device.type == "meta":
                return
            if module.training:
                if self.config.weight > 0 and torch.is_grad_enabled():
                    squared = output.float().square()
                    self._terms.append((squared / (squared + self.config.eps)).mean())
                return
            active = (output.abs() > self.config.threshold).sum()
            self._counts[group].append((active, output.numel()))

        return record

    def pop_loss(self) -> torch.Tensor | None:
        """DEFT's density loss of the last training forward pass (unweighted), or ``None``; clears it."""
        terms, self._terms = self._terms, []
        return torch.stack(terms).mean() if terms else None

    def pop_counts(self) -> Iterator[tuple[str, torch.Tensor, int]]:
        """``(group, active count, size)`` of each group measured since the last call, then ``("", all)``."""
        counts, self._counts = self._counts, {group: [] for group in self.groups}
        total_active: list[torch.Tensor] = []
        total_size = 0
        for group, seen in counts.items():
            if not seen:
                continue
            active = torch.stack([a for a, _ in seen]).sum()
            size = sum(n for _, n in seen)
            total_active.append(active)
            total_size += size
            yield group, active, size
        if total_active:
            yield "", torch.stack(total_active).sum(), total_size

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


__all__ = ["ActivationDensity", "DensityProbe", "hidden_activations", "is_hidden_activation"]
