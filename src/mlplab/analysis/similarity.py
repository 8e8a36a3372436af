"""How much each residual block and sub-layer changes its input: the cosine similarity of input and output.

He, Sun, Shen and Li, "What Matters in Transformers? Not All Attention is Needed" (arXiv 2406.15786,
2024; official code github.com/Shwai-He/LLM-Drop, ``compression/prune/layer_drop.py``). A module whose
output is nearly parallel to its input does little: its importance is ``S = 1 - cos(X, Y)``, with ``X``
the residual stream entering the module and ``Y`` the stream after the module's residual addition
(``Y = X + f(LN(X))`` for a pre-norm sub-layer). The paper measures it on calibration data for whole
blocks, attention sub-layers and MLP sub-layers, finds the attention layers (deep ones above all)
much more similar to their inputs than the MLPs, and drops the K most similar ones at once (one-shot;
``mlplab drop-layers``).

Any family with a block layout: the stream around a branch is found by running the block again with
the branches after it replaced by zeros (the layout's promise: a zeroed branch adds nothing). With the
branches ``b_1 .. b_n`` of a block in execution order and ``s_k`` the block's output with ``b_(k+1) ..
b_n`` zeroed (``s_0`` = the block's input, ``s_n`` = its output), the similarity of ``b_k`` is
``cos(s_(k-1), s_k)`` and the block's ``cos(s_0, s_n)``; for a pre-norm block this is exactly the paper's
quantity, for blocks with layer scale or post-processing it is the change the branch makes to the
stream. Each block runs ``n - 1`` extra times per batch.

Deviation: the cosine is taken per sample over all its features (the flattened tensor, or the
concatenated tensors of a block that passes a list), not per token, so that it means the same for
token-last ``(B, N, C)`` and channel-first ``(B, C, H, W)`` blocks; for a sequence model it weights
tokens by their norm where the paper averages tokens equally.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.analysis.layers import indexed_blocks
from mlplab.models.registry import BlockLayout

#: Columns of the similarity table.
COLUMNS = ("index", "block", "part", "sublayer", "similarity", "importance")


def per_sample(value: Any) -> torch.Tensor:
    """``(B, features)`` of a block input or output: a tensor, or a list / tuple of tensors, flattened."""
    if isinstance(value, torch.Tensor):
        return value.reshape(value.shape[0], -1).float()
    parts = [per_sample(item) for item in value if isinstance(item, (torch.Tensor, list, tuple))]
    if len({part.shape[0] for part in parts}) == 1:
        return torch.cat(parts, dim=1)
    return torch.cat([part.reshape(1, -1) for part in parts], dim=1)  # no common batch axis: one vector


def _zeros_like(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.zeros_like(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_zeros_like(item) for item in value)
    return value


class SimilarityRecorder:
    """Forward hooks on a backbone's residual blocks that accumulate input/output cosine similarities.

    Use it around evaluation-mode forward passes (a validation loop); :meth:`rows` gives the mean
    similarity of every block and branch, :meth:`remove` takes the hooks off.

    Args:
        backbone: A built family with a block layout.
        layout: Its :class:`~mlplab.models.registry.BlockLayout`.
    """

    def __init__(self, backbone: nn.Module, layout: BlockLayout):
        self.layout = layout
        indexed = indexed_blocks(backbone, layout)
        self.blocks = [(name, block) for _, name, block in indexed]
        #: Each block's index in the model as built (dropped blocks counted).
        self.index = {name: index for index, name, _ in indexed}
        self.parts: dict[tuple[str, str], str] = {}
        self.order: dict[str, list[str]] = {}
        self.sums: dict[tuple[str, str | None], list[Any]] = {}
        self._branch_modules: dict[tuple[str, str], nn.Module] = {}
        self._recording: str | None = None
        self._busy = False
        self._zeroed: set[int] = set()
        self._handles = []
        for name, block in self.blocks:
            for layout_part, part in (("mixer", "attention"), ("mlp", "mlp")):
                for attribute, branch in layout.branches(block, layout_part):
                    self.parts[(name, attribute)] = part
                    self._branch_modules[(name, attribute)] = branch
                    self._handles.append(branch.register_forward_pre_hook(self._note_order(name, attribute)))
                    self._handles.append(branch.register_forward_hook(self._zero_if_dropped))
            self._handles.append(block.register_forward_pre_hook(self._start(name)))
            self._handles.append(block.register_forward_hook(self._measure(name), with_kwargs=True))

    def _start(self, name: str) -> Callable:
        def start(block: nn.Module, args: tuple) -> None:
            if not self._busy and name not in self.order:
                self._recording = name
                self.order[name] = []

        return start

    def _note_order(self, name: str, attribute: str) -> Callable:
        def note(branch: nn.Module, args: tuple) -> None:
            if self._recording == name and attribute not in self.order[name]:
                self.order[name].append(attribute)

        return note

    def _zero_if_dropped(self, branch: nn.Module, args: tuple, output: Any) -> Any:
        return _zeros_like(output) if id(branch) in self._zeroed else None

    def _add(self, key: tuple[str, str | None], before: Any, after: Any) -> None:
        cosine = F.cosine_similarity(per_sample(before), per_sample(after), dim=1, eps=1e-12)
        total = self.sums.setdefault(key, [torch.zeros((), device=cosine.device), 0])
        total[0] = total[0] + cosine.sum()
        total[1] += cosine.numel()

    def _measure(self, name: str) -> Callable:
        def measure(block: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if self._busy:
                return
            self._recording = None
            order = self.order.get(name, [])
            streams = [args[0]]
            self._busy = True
            try:
                for k in range(1, len(order)):
                    self._zeroed = {id(self._branch_modules[(name, a)]) for a in order[k:]}
                    streams.append(block(*args, **kwargs))
            finally:
                self._zeroed = set()
                self._busy = False
            streams.append(output)
            self._add((name, None), streams[0], streams[-1])
            for k, attribute in enumerate(order):
                self._add((name, attribute), streams[k], streams[k + 1])

        return measure

    def rows(self) -> list[dict[str, Any]]:
        """One row per block and per branch (columns :data:`COLUMNS`), blocks in execution order.

        ``index`` is the block's position in the model as built: a dropped block's number is skipped.
        """
        found = []
        for name, _ in self.blocks:
            index = self.index[name]
            for attribute in [None, *self.order.get(name, [])]:
                total = self.sums.get((name, attribute))
                if total is None or total[1] == 0:
                    continue
                similarity = float(total[0]) / total[1]
                found.append({
                    "index": index,
                    "block": name,
                    "part": "block" if attribute is None else self.parts[(name, attribute)],
                    "sublayer": name if attribute is None else f"{name}.{attribute}",
                    "similarity": similarity,
                    "importance": 1.0 - similarity,
                })  # fmt: skip
        return found

    def remove(self) -> None:
        """Take the hooks off the backbone."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


# ------------------------------------------------------------------------------------------ outputs
def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The table as CSV (columns :data:`COLUMNS`)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table in Markdown: one line per block, the similarity of the block and of each part."""
    parts = [part for part in ("block", "attention", "mlp") if any(row["part"] == part for row in rows)]
    lines = ["| block | " + " | ".join(f"cos {part}" for part in parts) + " |", "|---|" + "---|" * len(parts)]
    for index in sorted({row["index"] for row in rows}):
        mine = [row for row in rows if row["index"] == index]
        cells = []
        for part in parts:
            values = [f"{row['similarity']:.4f}" for row in mine if row["part"] == part]
            cells.append(", ".join(values) or "—")
        lines.append(f"| {mine[0]['block']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(rows: list[dict[str, Any]], title: str) -> Any:
    """Similarity against block index, a line per part (the paper's figures 2-4 in one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for part, marker in (("block", "o"), ("attention", "s"), ("mlp", "^")):
        mine = [row for row in rows if row["part"] == part]
        if mine:
            ax.plot(
                [row["index"] for row in mine], [row["similarity"] for row in mine], marker=marker, label=part
            )
    ax.set_xlabel("block")
    ax.set_ylabel("cos(input, output)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


#: The ending of the TensorBoard events files :func:`write_tensorboard` writes.
EVENTS_SUFFIX = ".similarity"


def write_tensorboard(rows: list[dict[str, Any]], fig: Any, folder: Path) -> None:
    """The similarities as scalars (``similarity/<part>``, step = block index) and the figure.

    The events go to a file ending in :data:`EVENTS_SUFFIX`; such files from an earlier measurement in
    ``folder`` are removed first, so a rerun replaces its curves instead of adding a second set
    (TensorBoard reads every events file of a folder). Other events files in ``folder`` stay.
    """
    from torch.utils.tensorboard import SummaryWriter

    for earlier in folder.glob(f"events.out.tfevents.*{EVENTS_SUFFIX}"):
        earlier.unlink()
    writer = SummaryWriter(str(folder), filename_suffix=EVENTS_SUFFIX)
    try:
        for row in rows:
            writer.add_scalar(f"similarity/{row['part']}", row["similarity"], global_step=row["index"])
        writer.add_figure("similarity", fig, close=False)
    finally:
        writer.close()


__all__ = [
    "COLUMNS",
    "EVENTS_SUFFIX",
    "SimilarityRecorder",
    "figure",
    "markdown",
    "per_sample",
    "write_csv",
    "write_tensorboard",
]
