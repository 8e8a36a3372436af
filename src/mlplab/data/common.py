"""Pieces every DataModule uses: where data lives, downloads with checksums, in-memory batching."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mlplab.errors import DataCorruptError, DataNotFoundError

if TYPE_CHECKING:
    import lightning as L

DATA_ENV_VAR = "MLPLAB_DATA"
DEFAULT_DATA_DIR = "data"


def resolve_data_dir(data_dir: str | None) -> Path:
    """The folder datasets are read from and downloaded into.

    Args:
        data_dir: An explicit folder; ``None`` means ``$MLPLAB_DATA`` if set, else ``./data``.
    """
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV_VAR, DEFAULT_DATA_DIR)
    return Path(chosen).expanduser()


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str | None, algorithm: str = "sha256") -> None:
    """Raise :class:`DataCorruptError` when ``path``'s digest differs from ``expected`` (if given)."""
    if expected is None:
        return
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataCorruptError(
            f"{path} fails its {algorithm} check (expected {expected[:12]}…, got {actual[:12]}…): "
            "the file is damaged or a different version; delete it and download it again"
        )


def missing_data_message(
    what: str, folder: Path, files: Sequence[str], source: str, reason: str = "", hint: str = ""
) -> str:
    """The one-line error for a dataset that is not on disk and could not be downloaded.

    Args:
        what: Name of the dataset.
        folder: Where the files were expected.
        files: The missing file names.
        source: Where to get them (URLs).
        reason: Why the download failed; only its last line is kept.
        hint: A sentence appended to the message (starting with "; ").
    """
    listed = ", ".join(files)
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    why = f" ({lines[-1]})" if lines else ""
    return (
        f"{what} not found: expected {listed} in {folder}; download failed{why}. "
        f"Get it from {source} into that folder, or point MLPLAB_DATA / data_dir at a folder with it{hint}"
    )


def download_file(
    url: str, destination: Path, checksum: str | None = None, algorithm: str = "sha256"
) -> Path:
    """Download ``url`` to ``destination`` (atomically) and verify its checksum.

    Raises:
        OSError: When the network is unreachable (callers turn this into a :class:`DataNotFoundError`).
        DataCorruptError: When the downloaded file fails its checksum.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as handle:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                handle.write(chunk)
        verify_checksum(partial, checksum, algorithm)
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def fetch_file(
    folder: Path, filename: str, url: str, checksum: str | None, what: str, download: bool = True
) -> Path:
    """Return ``folder/filename``, downloading it from ``url`` first when it is missing.

    Args:
        folder: Where the file is expected.
        filename: The file's name.
        url: Canonical public location.
        checksum: Expected sha256 (checked after a download and, when given, on existing files too).
        what: Human name of the dataset, for messages.
        download: Whether a missing file may be downloaded.

    Raises:
        DataNotFoundError: The file is missing and cannot be downloaded.
        DataCorruptError: The file fails its checksum.
    """
    path = folder / filename
    if path.is_file():
        verify_checksum(path, checksum)
        return path
    if not download:
        raise DataNotFoundError(missing_data_message(what, folder, [filename], url, "downloads are disabled"))
    try:
        return download_file(url, path, checksum)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataNotFoundError(missing_data_message(what, folder, [filename], url, str(reason))) from error


class ResumableLoader:
    """Epoch and position bookkeeping of a loader whose batches are a function of (seed, rank, epoch, index).

    A loader that can resume mid-epoch must know which epoch it is in and how many of its batches were
    delivered; both are its ``state_dict()``. Lightning saves that state in every checkpoint written
    during ``fit`` and hands it back through ``load_state_dict()`` when a fit resumes mid-epoch, and it
    calls ``loader.sampler.set_epoch(epoch)`` with the trainer's epoch before every epoch (the hook of
    ``DistributedSampler``; the loader is its own sampler). The batches of an epoch are computed when
    the first one is asked for, after ``set_epoch``, so a resumed run sees exactly the batches an
    uninterrupted run would. Used without a trainer, each new iteration moves on to the next epoch.

    Subclasses implement :meth:`epoch_batches` and ``__len__``.
    """

    #: Lightning looks for a batch sampler beside ``sampler``; batches are made here instead.
    batch_sampler = None

    def __init__(self) -> None:
        #: The epoch being (or last) iterated.
        self.epoch = 0
        #: Batches of that epoch delivered so far.
        self.position = 0
        self._next_epoch = 0
        self._resume: tuple[int, int] | None = None

    @property
    def sampler(self) -> ResumableLoader:
        """The object Lightning calls ``set_epoch`` on: the loader itself."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration deliver the batches of ``epoch``."""
        self._next_epoch = epoch

    def state_dict(self) -> dict[str, int]:
        """Where the loader stands: ``{"epoch": ..., "position": batches delivered in it}``."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration resumes that epoch at that position."""
        self._next_epoch = int(state["epoch"])
        self._resume = (int(state["epoch"]), int(state["position"]))

    def epoch_batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """The batches of ``epoch`` from the ``start``-th on."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        epoch = self._next_epoch
        start = self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0
        self._resume = None
        self.epoch, self.position, self._next_epoch = epoch, start, epoch + 1
        for batch in self.epoch_batches(epoch, start):
            self.position += 1
            yield batch


class TensorBatchLoader(ResumableLoader):
    """Batches of in-memory tensors taken by index: no per-sample Python work, no worker processes.

    The tensors may live on the CPU or on the accelerator; on the accelerator the batches never leave
    it. Shuffling draws a fresh permutation each epoch from ``seed + epoch``, so the order is
    reproducible, and a fit resumed mid-epoch continues the same order (see :class:`ResumableLoader`).
    With ``world_size > 1`` each process takes every ``world_size``-th sample of the epoch's
    permutation, like ``DistributedSampler``.

    Args:
        tensors: Tensors sharing their first dimension (e.g. images and labels).
        batch_size: Samples per batch.
        shuffle: Whether to permute the samples every epoch.
        drop_last: Whether to drop the last, smaller batch.
        seed: Base seed of the shuffling.
        rank: This process's index among ``world_size`` processes.
        world_size: Number of processes that share the data.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors must share their first dimension, got sizes {sorted(sizes)}")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    @property
    def num_samples(self) -> int:
        """Samples this process sees per epoch."""
        total = len(self.tensors[0])
        return len(range(self.rank, total, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def epoch_batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        total = len(self.tensors[0])
        device = self.tensors[0].device
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(total, generator=generator)[self.rank :: self.world_size].to(device)
        elif self.world_size > 1:
            order = torch.arange(self.rank, total, self.world_size, device=device)
        else:
            order = None
        for batch in range(start, len(self)):
            first, stop = batch * self.batch_size, (batch + 1) * self.batch_size
            if order is None:
                yield tuple(t[first:stop] for t in self.tensors)
            else:
                index = order[first:stop]
                yield tuple(t[index] for t in self.tensors)


def process_rank(trainer: L.Trainer | None) -> tuple[int, int]:
    """``(global rank, world size)`` of the process running ``trainer``; ``(0, 1)`` without a trainer."""
    return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)


def split_loader(
    tensors: Sequence[torch.Tensor], batch_size: int, train: bool, seed: int, trainer: L.Trainer | None
) -> TensorBatchLoader:
    """The loader of one split, shared among the trainer's processes.

    Training shuffles and drops its last, smaller batch (it can hold a single sample, which
    batch-normalised families cannot train on) unless that batch is all there is; validation, test and
    prediction keep the order and never drop a sample.

    Args:
        tensors: The split's tensors, sharing their first dimension.
        batch_size: Samples per batch.
        train: Whether this is the training split.
        seed: Base seed of the shuffling.
        trainer: The trainer the DataModule is attached to, if any (for the process rank).
    """
    rank, world_size = process_rank(trainer)
    return TensorBatchLoader(
        tensors,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(tensors[0]) // world_size > batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
