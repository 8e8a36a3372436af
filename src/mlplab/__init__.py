"""mlplab: a Lightning training application for MLP-centred architectures.

``mlplab.load_run(DIR)`` loads a trained run (see :mod:`mlplab.runs`); it is imported on first use, so
that ``import mlplab`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_run"]


def __getattr__(name: str) -> Any:
    if name in ("load_run", "Run"):
        from mlplab import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'mlplab' has no attribute {name!r}")
