"""Global magnitude pruning with ``torch.nn.utils.prune``: one threshold for the whole network.

Gupta, Camci, Keneta, Vaidyanathan, Kanodia, Foo, Wu and Lin, "Is Complexity Required for Neural
Network Pruning? A Case Study on Global Magnitude Pruning" (arXiv 2209.14624; official code
github.com/manasgupta-1/GlobalMP). Global MP ranks the weights of every convolution and linear layer
together by magnitude and zeroes the smallest ones, as many as the target sparsity asks; one-shot or
gradually, followed by fine-tuning. It matches or beats far more complex methods. At high sparsity a
layer can lose all its weights (layer collapse); the *Minimum Threshold* (MT) keeps a fixed number of
the largest weights of every layer whatever the global ranking says.

Here, the *prunable weights* are the parameters that hold the backbone's linear maps, first and last
layer included as in the official code:

* the ``weight`` of torch's linear layers and convolutions (:data:`PRUNABLE`: ``nn.Linear``,
  ``nn.Conv1d/2d/3d`` and their transposes);
* the parameters that a module's class lists in its attribute ``prunable_weights`` (a tuple of
  parameter names, :func:`prunable_parameter_names`): mlplab's own layers declare their linear maps
  this way, whatever the parameters are called: the trainable
  :class:`~mlplab.nn.projection.RandomProjection` (``W_in`` of the Hourglass and conventional MLPs),
  TabM's ensemble layers, FinalMLP's bilinear fusion (``("weight",)``), the mixture-of-experts
  channel MLPs' expert matrices (``("w1", "w2")``, MoE++ included), the Transformer's symmetric
  ``W_QK``. A class attribute overrides the type rule (``()`` opts a subclass of ``nn.Linear`` out);
  a listed name whose parameter is ``None`` is skipped.

A parameter counts as one tensor, whatever its shape: the ``(experts, dim, hidden)`` stack of expert
matrices competes entry by entry with the other layers, and the Minimum Threshold keeps its largest
entries across all experts. The symmetric ``W_QK``
(:class:`~mlplab.models.sequence.transformer.SymmetricLinear`) is stored as its ``d(d+1)/2``
lower-triangular entries, its free parameters: those are ranked, pruned and counted (the sparsity is
a share of the stored entries; a pruned off-diagonal entry zeroes two entries of the ``d x d``
matrix, which stays symmetric).

Not pruned: biases, norms, embeddings, a projection fixed at its random initialisation (no
gradient), a weight that two layers share (a tied language-model head), and any parameter that is not
a linear map's weight (RBF centres, Mamba's ``A_log`` and ``D``, grids and filters, MoE++'s constant
vectors). Not the KAN and S-KAN layers either: their coefficients weigh spline or basis functions of
one input each, and a single coefficient's magnitude says little of its edge (KAN's own pruning
removes whole edges and nodes by the size of their activations), so those families have nothing to
prune here.

Masks are ``torch.nn.utils.prune`` reparametrisations (``<name>_orig`` and ``<name>_mask``, e.g.
``weight_orig`` or ``w1_orig``, the product recomputed before each forward pass), so the pruned weights
stay zero while the model keeps training; :func:`make_permanent` folds them into plain parameters
under their own names, so a pruned model's state dict loads into the unpruned model. The gradual
schedule (:func:`cubic_sparsity`) is Zhu and Gupta's (2017, "To prune, or not to prune"), as used for
gradual pruning in the paper.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils import prune

#: Torch's layer types whose ``weight`` is pruned (when it trains and no other layer shares it).
PRUNABLE = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


class PrunableWeight(NamedTuple):
    """One prunable parameter: ``module``'s parameter ``parameter``, the module at ``module_name``."""

    module_name: str
    module: nn.Module
    parameter: str

    @property
    def name(self) -> str:
        """The parameter's path in the model (``blocks.0.mlp.w1``), the key of :func:`masks`."""
        return f"{self.module_name}.{self.parameter}" if self.module_name else self.parameter

    @property
    def tensor(self) -> torch.Tensor:
        """The effective weight (masked when pruned)."""
        return getattr(self.module, self.parameter)

    @property
    def mask(self) -> torch.Tensor | None:
        """The pruning mask, ``None`` before the first pruning."""
        return getattr(self.module, self.parameter + "_mask", None)


def prunable_parameter_names(module: nn.Module) -> tuple[str, ...]:
    """The names of ``module``'s own parameters that hold linear maps (module docs).

    The class attribute ``prunable_weights`` when the class sets one, else ``("weight",)`` for a
    :data:`PRUNABLE` type, else nothing.
    """
    cls = type(module)
    if hasattr(cls, "prunable_weight"):
        raise TypeError(
            f"{cls.__name__}: the class attribute prunable_weight = True was replaced by "
            "prunable_weights = ('weight',), the names of the parameters to prune"
        )
    declared = getattr(cls, "prunable_weights", None)
    if declared is None:
        return ("weight",) if isinstance(module, PRUNABLE) else ()
    if isinstance(declared, str) or not all(isinstance(name, str) for name in declared):
        raise TypeError(
            f"{cls.__name__}.prunable_weights must be a tuple of parameter names, got {declared!r}"
        )
    return tuple(declared)


def prunable_weights(model: nn.Module) -> list[PrunableWeight]:
    """The parameters of ``model`` that global magnitude pruning ranks, in module order.

    Those of :func:`prunable_parameter_names`; weights that do not train (fixed random projections),
    weights shared between layers and listed names whose parameter is ``None`` are left out.
    """
    uses: dict[int, int] = {}
    for _, parameter in model.named_parameters(remove_duplicate=False):
        uses[id(parameter)] = uses.get(id(parameter), 0) + 1
    found = []
    for module_name, module in model.named_modules():
        for name in prunable_parameter_names(module):
            weight = getattr(module, name + "_orig", None)
            if weight is None:
                weight = getattr(module, name, None)
            if isinstance(weight, nn.Parameter) and weight.requires_grad and uses.get(id(weight), 0) == 1:
                found.append(PrunableWeight(module_name, module, name))
    return found


def sparsity(weights: Iterable[PrunableWeight]) -> tuple[int, int]:
    """``(zeros, total)`` of the effective (masked) entries of ``weights``."""
    zeros = total = 0
    for weight in weights:
        tensor = weight.tensor
        zeros += int((tensor == 0).sum())
        total += tensor.numel()
    return zeros, total


def global_magnitude_prune(
    weights: list[PrunableWeight], target: float, min_weights_per_layer: int = 0
) -> tuple[int, int]:
    """Prune ``weights`` together by magnitude until a share ``target`` of their entries is masked.

    Already-masked entries stay masked (a later call with a higher target prunes further). With
    ``min_weights_per_layer`` (the Minimum Threshold), the largest that many entries of each prunable
    parameter are never pruned; when they make the target unreachable, as many as possible are pruned.

    Returns:
        ``(masked, total)`` after pruning.
    """
    total = sum(weight.tensor.numel() for weight in weights)
    masked = sum(int((weight.mask == 0).sum()) for weight in weights if weight.mask is not None)
    wanted = round(target * total) - masked
    if wanted <= 0:
        return masked, total
    scores = {}
    protected = 0
    for weight in weights:
        score = weight.tensor.detach().abs().float()
        mask = weight.mask
        if min_weights_per_layer > 0:
            alive = score if mask is None else score.masked_fill(mask == 0, -1.0)
            keep = min(min_weights_per_layer, score.numel())
            top = alive.flatten().topk(keep).indices
            score = score.flatten().index_fill(0, top, float("inf")).view_as(score)
            protected += int((alive.flatten()[top] >= 0).sum())
        scores[(weight.module, weight.parameter)] = score
    prunable_now = total - masked - protected
    wanted = min(wanted, prunable_now)
    if wanted <= 0:
        return masked, total
    prune.global_unstructured(
        [(weight.module, weight.parameter) for weight in weights],
        pruning_method=prune.L1Unstructured,
        importance_scores=scores,
        amount=int(wanted),
    )
    return masked + int(wanted), total


def make_permanent(weights: Iterable[PrunableWeight]) -> None:
    """Fold the masks into plain parameters (``prune.remove``): the zeros stay, the reparametrisation goes."""
    for weight in weights:
        if weight.mask is not None:
            prune.remove(weight.module, weight.parameter)


def masks(weights: Iterable[PrunableWeight]) -> dict[str, torch.Tensor]:
    """The boolean masks of the pruned parameters by :attr:`PrunableWeight.name` (what a checkpoint keeps)."""
    return {weight.name: weight.mask.bool() for weight in weights if weight.mask is not None}


def apply_masks(weights: Iterable[PrunableWeight], saved: dict[str, torch.Tensor]) -> None:
    """Re-apply saved masks (a resumed fit): each named parameter gets its mask as a reparametrisation.

    Masks saved before the parameters were named (keyed by the module's name) still apply to ``weight``.
    """
    for weight in weights:
        mask = saved.get(weight.name)
        if mask is None and weight.parameter == "weight":
            mask = saved.get(weight.module_name)
        if mask is not None and weight.mask is None:
            prune.custom_from_mask(weight.module, weight.parameter, mask.to(weight.tensor.device))


def cubic_sparsity(step: int, target: float, start_step: int, end_step: int) -> float:
    """Zhu and Gupta's gradual schedule: ``s_t = s_f (1 - (1 - (t - t0) / (t1 - t0))³)`` between t0 and t1."""
    if step < start_step:
        return 0.0
    if step >= end_step:
        return target
    progress = (step - start_step) / (end_step - start_step)
    return target * (1.0 - (1.0 - progress) ** 3)


__all__ = [
    "PRUNABLE",
    "PrunableWeight",
    "apply_masks",
    "cubic_sparsity",
    "global_magnitude_prune",
    "make_permanent",
    "masks",
    "prunable_parameter_names",
    "prunable_weights",
    "sparsity",
]
