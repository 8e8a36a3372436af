"""The residual blocks and sub-layers of a built backbone, and the surgery that removes some of them.

Every registered family declares where its residual blocks are and which of their attributes are
residual branches (:class:`mlplab.models.registry.BlockLayout`): the mixing branches (attention and
its replacements: token-mixing MLPs, state-space and convolution mixers) and the channel MLPs. A
branch that outputs zeros leaves the block's input unchanged, so removing a sub-layer is replacing it
by :class:`DroppedBranch`, and removing a whole block is replacing it by :class:`DroppedBlock`. This
is what ``mlplab drop-layers`` does, and what a task built with ``dropped_layers`` (the paths written
into a dropped model's config) does to its backbone before loading the weights.

Parts, as He et al. (2024) name them: ``attention`` (the layout's ``mixer`` branches), ``mlp`` (its
``mlp`` branches) and ``block`` (the whole residual block).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mlplab.errors import ConfigError
from mlplab.models.registry import BlockLayout, FamilySpec, families, find

#: The parts of a residual stack a command can look at or drop.
PARTS = ("attention", "mlp", "block")
#: The layout attribute holding each branch part.
LAYOUT_PART = {"attention": "mixer", "mlp": "mlp"}


def non_residual_families() -> list[str]:
    """The registered families without a block layout (not a plain stack of residual blocks)."""
    return [spec.name for spec in families() if spec.blocks is None]


def family_layout(backbone: nn.Module, what: str) -> tuple[FamilySpec, BlockLayout]:
    """The registry entry and block layout of ``backbone``'s family, or a one-line refusal.

    Args:
        backbone: A built family.
        what: What needs the layout (the command or option), for the message.

    Raises:
        ConfigError: When the family is not registered or declares no block layout.
    """
    spec = find(type(backbone))
    if spec is None:
        raise ConfigError(
            f"{what}: {type(backbone).__name__} is not a registered family, so its residual blocks are "
            "unknown (register it with a BlockLayout, see docs/extending.md)"
        )
    if spec.blocks is None:
        raise ConfigError(
            f"{what}: {spec.name} is not a stack of residual blocks (no block layout; the families without "
            f"one are {', '.join(non_residual_families())})"
        )
    return spec, spec.blocks


@dataclass(frozen=True)
class SubLayer:
    """One residual block, or one residual branch of a block.

    Args:
        index: Position of the block in execution order (0 first), dropped blocks counted.
        block: Module path of the block inside the backbone (``blocks.3``).
        part: ``attention``, ``mlp`` or ``block``.
        attribute: The branch's attribute on the block (``mixer``); ``None`` for the whole block.
    """

    index: int
    block: str
    part: str
    attribute: str | None = None

    @property
    def path(self) -> str:
        """Module path inside the backbone (``blocks.3.mixer``; the block's own for a whole block)."""
        return self.block if self.attribute is None else f"{self.block}.{self.attribute}"


def indexed_blocks(backbone: nn.Module, layout: BlockLayout) -> list[tuple[int, str, nn.Module]]:
    """``(index, name, block)`` of the residual blocks of ``backbone``, in execution order.

    ``index`` is the block's position in the model as built, dropped blocks (:class:`DroppedBlock`)
    counted: after ``blocks.1`` was dropped, ``blocks.2`` keeps index 2. Dropped blocks are not listed.
    """
    found = []
    index = 0
    for name, module in backbone.named_modules():
        if isinstance(module, DroppedBlock):
            index += 1
        elif isinstance(module, layout.block_types):
            found.append((index, name, module))
            index += 1
    return found


def sublayers(backbone: nn.Module, layout: BlockLayout, part: str) -> list[SubLayer]:
    """The blocks (``part="block"``) or the branches of one part of every block, in execution order."""
    if part not in PARTS:
        raise ConfigError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    found = []
    for index, name, block in indexed_blocks(backbone, layout):
        if part == "block":
            found.append(SubLayer(index, name, "block"))
            continue
        for attribute, _ in layout.branches(block, LAYOUT_PART[part]):
            if not isinstance(getattr(block, attribute), (DroppedBranch, DroppedBlock)):
                found.append(SubLayer(index, name, part, attribute))
    return found


class DroppedBranch(nn.Module):
    """A removed residual branch: zeros shaped like its input, so the block adds nothing for it."""

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        return torch.zeros_like(x)


class DroppedBlock(nn.Module):
    """A removed residual block: returns its input (a tensor, or a list of tensors) unchanged."""

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        return x


def drop_layers(backbone: nn.Module, paths: Sequence[str]) -> nn.Module:
    """Remove the residual blocks and branches at ``paths`` from ``backbone`` (in place), and return it.

    A path names a block of the family's layout (``blocks.3``: the block becomes
    :class:`DroppedBlock`) or one of a block's declared branches (``blocks.3.mixer``: it becomes
    :class:`DroppedBranch`). Their weights leave the state dict; the other weights keep their names.

    Raises:
        ConfigError: When the family has no block layout, or a path is neither a block nor a branch.
    """
    if not paths:
        return backbone
    spec, layout = family_layout(backbone, "model.dropped_layers")
    blocks = dict(layout.blocks(backbone))
    branches = set(layout.mixer) | set(layout.mlp)
    for path in paths:
        parent_path, _, attribute = path.rpartition(".")
        if path in blocks:
            replacement: nn.Module = DroppedBlock()
        elif (
            parent_path in blocks and attribute in branches and getattr(blocks[parent_path], attribute, None)
        ):
            replacement = DroppedBranch()
        else:
            names = list(blocks)
            raise ConfigError(
                f"model.dropped_layers: {path!r} is neither a residual block of {spec.name} ({names[0]} .. "
                f"{names[-1]}) nor one of their branches ({', '.join(sorted(branches))})"
            )
        setattr(backbone.get_submodule(parent_path) if parent_path else backbone, attribute, replacement)
    return backbone


__all__ = [
    "PARTS",
    "DroppedBlock",
    "DroppedBranch",
    "SubLayer",
    "drop_layers",
    "family_layout",
    "indexed_blocks",
    "non_residual_families",
    "sublayers",
]
