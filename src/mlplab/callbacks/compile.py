"""Opt-in ``torch.compile`` of the backbone."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from mlplab.errors import ConfigError


class CompileBackbone(Callback):
    """Compile the task's backbone with ``torch.compile`` before training or evaluation.

    Uses ``nn.Module.compile``, which compiles in place, so checkpoints keep the same keys and load
    into uncompiled models. Off by default; the GPU presets and benchmarks turn it on.

    Args:
        enabled: Whether to compile.
        mode: ``torch.compile`` mode (``None``, ``reduce-overhead``, ``max-autotune``).
        fullgraph: Require a single graph (fails loudly on graph breaks).
        dynamic: Whether to compile for dynamic shapes (``None`` lets torch decide).
    """

    def __init__(
        self,
        enabled: bool = False,
        mode: str | None = None,
        fullgraph: bool = False,
        dynamic: bool | None = None,
    ):
        self.enabled = enabled
        self.mode = mode
        self.fullgraph = fullgraph
        self.dynamic = dynamic

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        backbone = getattr(pl_module, "backbone", None)
        if self.enabled and backbone is not None and getattr(backbone, "_compiled_call_impl", None) is None:
            try:  # torch.compile checks its options here and compiles lazily, at the first call
                backbone.compile(mode=self.mode, fullgraph=self.fullgraph, dynamic=self.dynamic)
            except RuntimeError as error:
                raise ConfigError(f"compile: {str(error).strip().splitlines()[0]}") from error
