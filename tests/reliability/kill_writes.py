"""Kill checkpoint writes at chosen points; print what each kill left behind as JSON lines.

Run as ``python -m tests.reliability.kill_writes FOLDER``. The process writes a good checkpoint
``FOLDER/last.ckpt`` (step 0), then for every kill point forks a child that writes the next step's
checkpoint with :func:`mlplab.callbacks.checkpoint.atomic_save` and is killed with SIGKILL at that
point (by itself, so the point is exact). The parent (single-threaded, so forking is safe) then checks
``last.ckpt``: it must verify and hold either the step before or the step written.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

from mlplab.callbacks import checkpoint as checkpoint_module
from mlplab.callbacks.checkpoint import atomic_save, verify_checkpoint_file

#: 4M float32 weights: a 16 MB checkpoint, written in many chunks.
WEIGHTS = 4_000_000


def payload(step: int) -> dict:
    return {"state_dict": {"w": torch.full((WEIGHTS,), float(step))}, "global_step": step}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def write_and_die_at(point: str, fraction: float, target: Path, step: int) -> None:
    """In the child: write ``step``'s checkpoint and kill this process at ``point``."""
    total = (WEIGHTS * 4) * fraction
    real_fdopen, real_replace, real_fsync = os.fdopen, os.replace, checkpoint_module._fsync_folder

    class Dying:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            if point == "write" and self.written + len(data) >= total:
                self.handle.write(bytes(data)[: max(0, int(total - self.written))])
                self.handle.flush()
                die()
            self.written += len(data)
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            if point == "before-fsync":
                self.handle.flush()
                die()
            return self.handle.__exit__(*exc)

    os.fdopen = lambda *a, **k: Dying(real_fdopen(*a, **k))
    if point == "before-rename":
        os.replace = lambda *a, **k: die()
    if point == "after-rename":
        checkpoint_module._fsync_folder = lambda folder: die()
    atomic_save(payload(step), target)
    os.replace, checkpoint_module._fsync_folder = real_replace, real_fsync
    os._exit(0)


def main(folder: Path) -> None:
    target = folder / "checkpoints" / "last.ckpt"
    atomic_save(payload(0), target)
    points = [("write", 0.0), ("write", 0.1), ("write", 0.5), ("write", 0.999), ("before-fsync", 1.0),
              ("before-rename", 1.0), ("after-rename", 1.0), ("none", 1.0)]  # fmt: skip
    step = 0
    for point, fraction in points:
        pid = os.fork()
        if pid == 0:
            write_and_die_at(point, fraction, target, step + 1)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        try:
            verify_checkpoint_file(target)
            held = int(torch.load(target, weights_only=True)["global_step"])
            readable = True
        except Exception as error:  # reported, not raised: the test asserts
            held, readable = repr(error), False
        if readable and held == step + 1:
            step += 1
        partial = sorted(p.name for p in target.parent.iterdir() if p.name != target.name)
        outside = sorted(p.name for p in folder.iterdir() if p.name != "checkpoints")
        print(json.dumps({"point": point, "fraction": fraction, "killed": killed, "readable": readable,
                          "held": held, "partial": partial, "outside": outside}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
