"""Pieces every DataModule uses: where data lives, downloads with checksums and locks, in-memory batching."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
from filelock import FileLock
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from mlplab.errors import CheckpointError, DataCorruptError, DataNotFoundError

if TYPE_CHECKING:
    import lightning as L

DATA_ENV_VAR = "MLPLAB_DATA"
DEFAULT_DATA_DIR = "data"


def run_seed() -> int:
    """The seed of the run, as ``seed_everything`` set it (``PL_GLOBAL_SEED``); 0 when none was set.

    Every process of a multi-process run has the same one (Lightning hands the variable on to them).
    """
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


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


def download_lock(target: Path) -> FileLock:
    """The lock a process holds while it downloads ``target``: a file ``.<name>.lock`` beside it.

    The processes of a multi-GPU run (or of several runs) that all miss a dataset download it once:
    the first takes the lock, the others wait for it and then find the file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(target.parent / f".{target.name}.lock"))


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

    Several processes that miss the file at once download it once (:func:`download_lock`).

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
        with download_lock(path):
            if path.is_file():  # another process downloaded it while this one waited
                verify_checksum(path, checksum)
                return path
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
        """Where the loader stands: ``{"epoch": ..., "position": batches delivered in it}``.

        With the batches of the epoch and the samples a step takes over all processes (``global_batch``).
        """
        state = {"epoch": self.epoch, "position": self.position, "batches": len(self)}
        return {**state, "global_batch": self.global_batch} if self.global_batch else state

    @property
    def global_batch(self) -> int | None:
        """Samples per step over all processes (``batch_size`` x ``world_size``), when the loader has them."""
        batch_size = getattr(self, "batch_size", None)
        return batch_size * getattr(self, "world_size", 1) if batch_size else None

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration resumes that epoch at that position.

        Raises:
            CheckpointError: The state is inside an epoch of steps of another size (another
                ``batch_size`` or number of processes): its position would skip or repeat samples.
        """
        epoch, position = int(state["epoch"]), int(state["position"])
        saved, batches = state.get("global_batch"), state.get("batches")
        inside = batches is None or 0 < position < batches
        if saved and self.global_batch and saved != self.global_batch and inside:
            raise CheckpointError(
                f"data.batch_size: the checkpoint was written {position} batches into epoch {epoch} with "
                f"steps of {saved} samples (batch_size x processes), this fit takes {self.global_batch}: "
                "its place in the epoch would skip or repeat samples; resume with the checkpoint's "
                "batch_size and processes, or from a checkpoint written at the end of an epoch"
            )
        self._next_epoch = epoch
        self._resume = (epoch, position)

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


class BatchSamples(NamedTuple):
    """Which samples of its split a batch holds.

    Attributes:
        indices: The split index of every row of the batch, int64 ``(B,)``, on the CPU.
        count: How many rows, from the first, are real; the rest pad a process's share of an
            evaluation split to the length of the others' and must not be counted in metrics.
    """

    indices: torch.Tensor
    count: int


def per_sample_normal(
    indices: torch.Tensor, shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Standard normal noise ``(len(indices), *shape)``: the row of sample ``i`` depends on seed and i only.

    Evaluation noise drawn this way is the same whatever the batch a sample lands in, the evaluation
    batch size, the number of processes and the device: each row comes from a CPU generator seeded
    with a mix of ``seed`` and the sample's index (distinct for every index below 2³²).

    Args:
        indices: The samples' indices in their split, ``(B,)`` (on the CPU, for no device round trip).
        shape: The shape of one sample's noise.
        seed: The evaluation seed.
        dtype: Floating type of the noise.
    """
    noise = torch.empty(len(indices), *shape, dtype=dtype)
    generator = torch.Generator()
    for row, index in enumerate(indices.tolist()):
        generator.manual_seed((seed * 0x9E3779B1 + index * 0x85EBCA77 + 0x632BE5AB) & 0xFFFFFFFF)
        torch.randn(tuple(shape), generator=generator, dtype=dtype, out=noise[row])
    return noise


#: How the shares of ``world_size > 1`` processes are cut (see :class:`TensorBatchLoader`).
Shards = Literal["cut", "pad", "uneven"]


class TensorBatchLoader(ResumableLoader):
    """Batches of in-memory tensors taken by index: no per-sample Python work, no worker processes.

    The tensors may live on the CPU or on the accelerator; on the accelerator the batches never leave
    it. Shuffling draws a fresh permutation each epoch from ``seed + epoch``, so the order is
    reproducible, and a fit resumed mid-epoch continues the same order (see :class:`ResumableLoader`).

    With ``world_size > 1`` every process takes every ``world_size``-th sample of the epoch's order,
    starting at its rank, and the shares are made equal in length, so that every process runs the same
    number of batches (a process with one batch more would wait forever for the others at its
    gradient all-reduce):

    * ``shards="cut"`` (training): each share is cut to ⌊N/W⌋ samples. Batch ``k`` of the W processes
      together then holds exactly the samples of batch ``k`` of one process with a W times larger
      batch, which is what makes a W-process fit follow the 1-process trajectory.
    * ``shards="pad"`` (evaluation): each share is padded to ⌈N/W⌉ samples with samples from the start
      of the order, as ``DistributedSampler`` does; :meth:`batch_samples` says which rows are padding
      (at most the last row of a process's last batch), so metrics count every sample exactly once.
    * ``shards="uneven"`` (prediction, which waits for no other process): the shares as they fall.

    Args:
        tensors: Tensors sharing their first dimension (e.g. images and labels).
        batch_size: Samples per batch (per process).
        shuffle: Whether to permute the samples every epoch.
        drop_last: Whether to drop the last, smaller batch.
        seed: Base seed of the shuffling.
        rank: This process's index among ``world_size`` processes.
        world_size: Number of processes that share the data.
        shards: How the processes' shares are made equal (see above); ``None``: ``cut`` when shuffling
            (training), ``pad`` otherwise.
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
        shards: Shards | None = None,
    ):
        super().__init__()
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors must share their first dimension, got sizes {sorted(sizes)}")
        shards = shards or ("cut" if shuffle else "pad")
        if shards not in ("cut", "pad", "uneven"):
            raise ValueError(f"shards must be cut, pad or uneven, got {shards!r}")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shards = shards
        self._order_cache: tuple[int, torch.Tensor | None, torch.Tensor | None] | None = None

    @property
    def total(self) -> int:
        """Samples in the split."""
        return len(self.tensors[0])

    @property
    def real_samples(self) -> int:
        """Samples of the split this process covers per epoch (padding not counted)."""
        if self.world_size == 1:
            return self.total
        if self.shards == "cut":
            return self.total // self.world_size
        return len(range(self.rank, self.total, self.world_size))

    @property
    def num_samples(self) -> int:
        """Rows this process delivers per epoch (padding included)."""
        if self.world_size > 1 and self.shards == "pad":
            return -(-self.total // self.world_size)
        return self.real_samples

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def order(self, epoch: int, device: bool = True) -> torch.Tensor | None:
        """This process's sample indices for ``epoch``, padding included (``None``: all, in order).

        On the data's device, or on the CPU when ``device`` is false.
        """
        if self._order_cache is None or self._order_cache[0] != epoch:
            self._order_cache = (epoch, *self._compute_order(epoch))
        return self._order_cache[1] if device else self._order_cache[2]

    def _compute_order(self, epoch: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        total, world_size = self.total, self.world_size
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(total, generator=generator)
        elif world_size > 1:
            order = torch.arange(total)
        else:
            return None, None
        if world_size > 1:
            share = order[self.rank :: world_size]
            if self.shards == "cut":
                share = share[: total // world_size]
            elif self.shards == "pad":
                missing = self.num_samples - len(share)
                share = torch.cat([share, order[torch.arange(missing) % total]])
            order = share
        return order.to(self.tensors[0].device), order

    def batch_samples(self, batch: int, epoch: int | None = None) -> BatchSamples:
        """The split indices of the rows of batch number ``batch`` (of ``epoch``, else the current one)."""
        first = batch * self.batch_size
        stop = min(first + self.batch_size, self.num_samples)
        order = self.order(self.epoch if epoch is None else epoch, device=False)
        indices = torch.arange(first, stop) if order is None else order[first:stop]
        real = max(0, min(stop, self.real_samples) - first)
        return BatchSamples(indices, real)

    def epoch_batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.order(epoch)
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
    tensors: Sequence[torch.Tensor],
    batch_size: int,
    train: bool,
    seed: int,
    trainer: L.Trainer | None,
    shards: Shards | None = None,
) -> TensorBatchLoader:
    """The loader of one split, shared among the trainer's processes.

    Training shuffles and drops its last, smaller batch (it can hold a single sample, which
    batch-normalised families cannot train on) unless that batch is all there is; validation, test and
    prediction keep the order and never drop a sample. Among several processes, training shares are
    cut to equal length, evaluation shares padded (see :class:`TensorBatchLoader`).

    Args:
        tensors: The split's tensors, sharing their first dimension.
        batch_size: Samples per batch.
        train: Whether this is the training split.
        seed: Base seed of the shuffling.
        trainer: The trainer the DataModule is attached to, if any (for the process rank).
        shards: How the processes' shares are made equal; ``None``: ``cut`` for training, ``pad``
            otherwise.
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
        shards=shards or ("cut" if train else "pad"),
    )


#: Notes said once per process (a sweep builds a run's DataModule several times).
_said: set[str] = set()


def say_once(message: str, warning: bool = False) -> None:
    """Log ``message`` (as a warning with ``warning``) unless this process has said it already."""
    if message not in _said:
        _said.add(message)
        (rank_zero_warn if warning else rank_zero_info)(message)


def require_trained_setting(option: str, trained: object, now: bool, seen: str) -> None:
    """Refuse, in one line, a checkpoint trained with another boolean data ``option`` (``data.scale``).

    Args:
        option: The option's name under ``data.``.
        trained: The checkpoint's value (``None``: not recorded, nothing to check).
        now: The DataModule's value.
        seen: What the model would see otherwise, in words (``pixels``, ``values``).

    Raises:
        CheckpointError: When ``trained`` is recorded and differs from ``now``.
    """
    if trained is not None and bool(trained) != now:
        raise CheckpointError(
            f"data.{option}: the checkpoint's model was trained with {option} {bool(trained)}, the data now "
            f"gives {now}; leave data.{option} as it was trained (the model would see {seen} on another "
            "scale)"
        )
