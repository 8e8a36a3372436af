"""Shared fixtures: the real datasets of $MLPLAB_DATA, a CLI runner, and small helpers."""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
import runpy
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

# Lightning and torchmetrics give their loggers a StreamHandler on sys.stderr when first imported: imported
# here, before any test, that is the session's stream, not the (later closed) capture of the first test
# that imports them ("--- Logging error --- ... I/O operation on closed file" in a later test)
import lightning.pytorch  # noqa: F401
import pytest
import torchmetrics  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The folder $MLPLAB_DATA points at, when it is set and exists."""
    value = os.environ.get("MLPLAB_DATA")
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = (REPO / path).resolve()
    return path if path.is_dir() else None


def require_data(*relative: str) -> Path:
    """The $MLPLAB_DATA folder, skipping the test (with the reason) when it lacks the named files."""
    folder = shared_data_dir()
    if folder is None:
        pytest.skip("needs the real datasets: set MLPLAB_DATA (CI uses ../shared/data)")
    missing = [name for name in relative if not (folder / name).exists()]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} in MLPLAB_DATA={folder}")
    return folder


@functools.cache
def cifar10_jpeg_subset(archive: Path, per_class: int = 20) -> Path:
    """The first ``per_class`` images (by file name) of every class and split, unpacked once per session.

    ``ImageFolderDataModule`` keeps the same images when it reads the archive with ``max_images_per_class``;
    unpacking them once saves every CIFAR-10 recipe (tests/test_configs.py) and tests/data a pass over
    the archive.
    """
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile() and m.name.endswith(".jpg")}
    by_folder: dict[str, list[str]] = {}
    for name in sorted(files):
        by_folder.setdefault(name.rsplit("/", 1)[0], []).append(name)
    folder = Path(tempfile.mkdtemp(prefix="mlplab-cifar10-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for names in by_folder.values():
        for name in names[:per_class]:
            parts = Path(name).parts
            target = folder.joinpath(*(parts[1:] if parts[0] == "." else parts))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[name])
    return folder


@pytest.fixture
def data_dir() -> Path:
    """The real-data folder (skips when absent)."""
    return require_data()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Each test runs in a temporary directory (nothing lands in the repo), with MLPLAB_DATA made
    absolute and ``sys.argv`` free of pytest's own arguments (the CLI reads it)."""
    folder = shared_data_dir()
    if folder is not None:
        monkeypatch.setenv("MLPLAB_DATA", str(folder))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mlplab"])
    # what mlplab says once a process (data.common.say_once) is said again in each test, as in each run
    said_once = sys.modules.get("mlplab.data.common")
    if said_once is not None:
        monkeypatch.setattr(said_once, "_said", set())


def run_cli(*args: str) -> int:
    """Run ``mlplab`` in this process; return its exit status (0 when it returns normally)."""
    from mlplab.__main__ import main

    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def run_script(path: Path, *args: str) -> str:
    """Run the script ``path`` (a benchmark) as ``python path ARGS`` does, in this process; its stdout.

    Imports already made by pytest's process are not paid again (a fresh process spent 4-5 s on them);
    what a script changes for the whole process (``sys.argv``, ``sys.path``, the float32 matmul
    precision, torch's thread count) is restored afterwards. A script that exits with a non-zero status
    fails the test.
    """
    argv, path_entries = sys.argv[:], sys.path[:]
    torch = __import__("torch")
    precision, threads = torch.get_float32_matmul_precision(), torch.get_num_threads()
    out = io.StringIO()
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.parent))  # as `python path` does: the script's folder comes first
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"{path.name} exited with {exit_.code}: {out.getvalue()[-2000:]}"
    finally:
        sys.argv, sys.path[:] = argv, path_entries
        torch.set_float32_matmul_precision(precision)
        torch.set_num_threads(threads)
    return out.getvalue()


@pytest.fixture
def cli():
    """The in-process CLI runner."""
    return run_cli


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n N``), each worker gets its share of the CPU cores for torch's threads,
    and so do the processes it starts (``OMP_NUM_THREADS``): N workers of all the cores each would
    oversubscribe the machine."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        threads = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
