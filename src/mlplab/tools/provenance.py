"""Which code produced a result (the checkout's commit, marked when the code differs) and where it is kept."""

from __future__ import annotations

import csv
import platform
import subprocess
from pathlib import Path
from typing import Any

#: The folders whose changes alter what a benchmark measures.
CODE_FOLDERS = ("src", "configs", "benchmarks")


def _git(folder: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def code_version(path: Path | str) -> str:
    """Short commit of the git checkout holding ``path``, as benchmarks record it beside their numbers.

    Args:
        path: A file or folder inside the checkout.

    Returns:
        ``<commit>`` when ``src/``, ``configs/`` and ``benchmarks/`` match the commit;
        ``<commit>+uncommitted`` when a file there is changed, added or deleted (tracked or not, unless
        git ignores it), so a result measured on uncommitted code says so; ``unknown`` outside a git
        checkout or without git.
    """
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    commit = _git(folder, "rev-parse", "--short", "HEAD")
    root = _git(folder, "rev-parse", "--show-toplevel")
    if not commit or not root:
        return "unknown"
    changes = _git(Path(root), "status", "--porcelain", "--", *CODE_FOLDERS)
    return f"{commit}+uncommitted" if changes else commit


def append_row(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    """Append one result row to the CSV table ``path`` (its header first when the file is new).

    Benchmarks write each result the moment they have it, so an interrupted run keeps what it measured
    and a rerun can skip the rows already there. Missing columns are left empty; a key that is not a
    column is an error (``csv.DictWriter``'s), so a renamed field cannot be dropped silently.
    """
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the CSV table ``path`` that :func:`append_row` wrote (none when it does not exist yet)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def device_label() -> str:
    """What benchmarks record as the device: the CUDA device's name, or ``CPU (<machine>)``."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})"
