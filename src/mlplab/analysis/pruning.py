"""Global magnitude pruning with ``torch.nn.utils.prune``: one threshold for the whole network.

Gupta, Camci, Keneta, Vaidyanathan, Kanodia, Foo, Wu and Lin, "Is Complexity Required for Neural
Network Pruning? A Case Study on Global Magnitude Pruning" (arXiv 2209.14624; official code
github.com/manasgupta-1/GlobalMP). Global MP ranks the weights of every convolution and linear layer
together by magnitude and zeroes the smallest ones, as many as the target sparsity asks; one-shot or
gradually, followed by fine-tuning. It matches or beats far more complex methods. At high sparsity a
layer can lose all its weights (layer collapse); the *Minimum Threshold* (MT) keeps a fixed number of
the largest weights of every layer whatever the global ranking says.

Here: the weights of the backbone's linear layers (``nn.Linear``, and a trainable
:class:`~mlplab.nn.projection.RandomProjection`: the input layer ``W_in`` of the Hourglass and
conventional MLPs) and convolutions (``nn.Conv1d/2d/3d`` and their transposes), first and last included
as in the official code, and the ``weight`` of any module whose class sets ``prunable_weight = True``:
a family's own layer whose ``weight`` is used as a linear map (TabM's ensemble layers, FinalMLP's
bilinear fusion). Not biases, norms or embeddings, not a projection fixed at its random
initialisation, not a weight that two layers share (a tied language-model head), and no parameter that
is not a linear map's weight (RBF centres, Mamba's ``A_log``, grids and filters). Not the KAN and S-KAN
layers either: their coefficients weigh spline or basis functions of one input each, and a single
coefficient's magnitude says little of its edge (KAN's own pruning removes whole edges and nodes by the
size of their activations), so those families have nothing to prune here.
Masks are ``torch.nn.utils.prune`` reparametrisations (``weight_orig``
and ``weight_mask``, the product recomputed before each forward pass), so the pruned weights stay zero
while the model keeps training; :func:`make_permanent` folds them into plain weights. The gradual
schedule (:func:`cubic_sparsity`) is Zhu and Gupta's (2017, "To prune, or not to prune"), as used for
gradual pruning in the paper.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils import prune

from mlplab.nn.projection import RandomProjection

#: Layer types whose ``weight`` is pruned (when it trains and no other layer shares it).
PRUNABLE = (
    nn.Linear,
    RandomProjection,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def is_prunable_type(layer: nn.Module) -> bool:
    """Whether ``layer``'s ``weight`` is pruned: a :data:`PRUNABLE` type, or ``prunable_weight = True``."""
    return isinstance(layer, PRUNABLE) or getattr(type(layer), "prunable_weight", False) is True


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of the linear and convolution layers of ``model`` whose weight may be pruned.

    The layers of :func:`is_prunable_type`; weights that do not train (fixed random projections) and
    weights shared between layers are left out.
    """
    uses: dict[int, int] = {}
    for _, parameter in model.named_parameters(remove_duplicate=False):
        uses[id(parameter)] = uses.get(id(parameter), 0) + 1
    found = []
    for name, layer in model.named_modules():
        if not is_prunable_type(layer):
            continue
        weight = getattr(layer, "weight_orig", None)
        if weight is None:
            weight = layer.weight
        if isinstance(weight, nn.Parameter) and weight.requires_grad and uses.get(id(weight), 0) == 1:
            found.append((name, layer))
    return found


def sparsity(layers: Iterable[tuple[str, nn.Module]]) -> tuple[int, int]:
    """``(zeros, total)`` of the effective (masked) weights of ``layers``."""
    zeros = total = 0
    for _, layer in layers:
        weight = layer.weight
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros, total


def global_magnitude_prune(
    layers: list[tuple[str, nn.Module]], target: float, min_weights_per_layer: int = 0
) -> tuple[int, int]:
    """Prune ``layers`` together by magnitude until a share ``target`` of their weights is masked.

    Already-masked weights stay masked (a later call with a higher target prunes further). With
    ``min_weights_per_layer`` (the Minimum Threshold), the largest that many weights of each layer are
    never pruned; when they make the target unreachable, as many as possible are pruned.

    Returns:
        ``(masked, total)`` after pruning.
    """
    total = sum(layer.weight.numel() for _, layer in layers)
    masked = sum(int((layer.weight_mask == 0).sum()) for _, layer in layers if hasattr(layer, "weight_mask"))
    wanted = round(target * total) - masked
    if wanted <= 0:
        return masked, total
    scores = {}
    protected = 0
    for _, layer in layers:
        score = layer.weight.detach().abs().float()
        mask = getattr(layer, "weight_mask", None)
        if min_weights_per_layer > 0:
            alive = score if mask is None else score.masked_fill(mask == 0, -1.0)
            keep = min(min_weights_per_layer, score.numel())
            top = alive.flatten().topk(keep).indices
            score = score.flatten().index_fill(0, top, float("inf")).view_as(score)
            protected += int((alive.flatten()[top] >= 0).sum())
        scores[(layer, "weight")] = score
    prunable_now = total - masked - protected
    wanted = min(wanted, prunable_now)
    if wanted <= 0:
        return masked, total
    prune.global_unstructured(
        [(layer, "weight") for _, layer in layers],
        pruning_method=prune.L1Unstructured,
        importance_scores=scores,
        amount=int(wanted),
    )
    return masked + int(wanted), total


def make_permanent(layers: Iterable[tuple[str, nn.Module]]) -> None:
    """Fold the masks into plain weights (``prune.remove``): the zeros stay, the reparametrisation goes."""
    for _, layer in layers:
        if prune.is_pruned(layer) and hasattr(layer, "weight_mask"):
            prune.remove(layer, "weight")


def masks(layers: Iterable[tuple[str, nn.Module]]) -> dict[str, torch.Tensor]:
    """The boolean masks of the pruned layers by name (what a checkpoint keeps to restore them)."""
    return {name: layer.weight_mask.bool() for name, layer in layers if hasattr(layer, "weight_mask")}


def apply_masks(layers: Iterable[tuple[str, nn.Module]], saved: dict[str, torch.Tensor]) -> None:
    """Re-apply saved masks (a resumed fit): each named layer gets its mask as a reparametrisation."""
    for name, layer in layers:
        if name in saved and not hasattr(layer, "weight_mask"):
            prune.custom_from_mask(layer, "weight", saved[name].to(layer.weight.device))


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
    "apply_masks",
    "cubic_sparsity",
    "global_magnitude_prune",
    "is_prunable_type",
    "make_permanent",
    "masks",
    "prunable_layers",
    "sparsity",
]
