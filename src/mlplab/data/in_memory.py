"""Base of the DataModules whose splits live in memory: built once, on the accelerator when they fit."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_deprecation

from mlplab.data.common import Shards, TensorBatchLoader, run_seed, split_loader
from mlplab.errors import ConfigError, require_positive


def shuffle_seed_or_alias(name: str, shuffle_seed: int | None, seed: int | None) -> int | None:
    """``shuffle_seed``, or the deprecated ``seed`` that named it before (old run folders' configs).

    A run folder written before ``shuffle_seed`` existed has ``seed: 0`` in its ``config.yaml``: read
    back (``mlplab test --config``, a resumed ``fit``, :func:`mlplab.load_run`), it keeps its old order.

    Args:
        name: The DataModule's class name, for the message.
        shuffle_seed: The seed of the training batch order as given.
        seed: The old name's value as given (``None``: not given).

    Raises:
        ConfigError: Both are given, with different values.
    """
    if seed is None:
        return shuffle_seed
    if shuffle_seed is not None and shuffle_seed != seed:
        raise ConfigError(
            f"{name}: seed (the old name of shuffle_seed) is {seed} and shuffle_seed is {shuffle_seed}; "
            "give shuffle_seed only"
        )
    rank_zero_deprecation(f"{name}: seed is the old name of shuffle_seed; give shuffle_seed instead")
    return seed


class InMemoryDataModule(L.LightningDataModule):
    """A dataset held as tensors and batched by index (images, windows of series, tokens, MQAR examples).

    Subclasses build their splits in :meth:`build_splits` (a mapping from split name to tensors that
    share their first dimension) and say which split each loader serves (``loader_splits``); this class
    builds them once, moves them to the accelerator when they fit (``on_device``), serves every loader
    through :func:`mlplab.data.common.split_loader` (shuffled, last small batch dropped, for training
    only; among several processes, equal shares: cut for training, padded for evaluation) and prints
    itself without touching the data (``summary``: jsonargparse prints the DataModule when it skips a
    data -> task link, and Lightning's own ``__str__`` iterates the loaders).

    The training batch order comes from :meth:`train_seed`: ``shuffle_seed`` when given, else the run's
    seed (``--seed_everything``, or a sweep's ``seeds``), so that runs that differ only in their seed
    see the batches in different orders, while the data itself stays the same.

    Args:
        batch_size: Training batch size.
        eval_batch_size: Validation / test / prediction batch size; ``None`` means ``batch_size``.
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        on_device: Keep the splits on the accelerator and batch them there; ``None``: on a GPU, when
            they take under a quarter of its free memory.
    """

    #: The split each loader serves.
    loader_splits: dict[str, str] = {"train": "train", "val": "val", "test": "test", "predict": "test"}
    #: The attributes ``__str__`` shows.
    summary: tuple[str, ...] = ()
    #: Arguments whose value does not change what a test measures (batch sizes, where the data lives,
    #: what only training uses, such as its batch order); see
    #: :attr:`mlplab.tasks.Task.evaluation_neutral_arguments`.
    evaluation_neutral_arguments: tuple[str, ...] = (
        "batch_size", "eval_batch_size", "on_device", "shuffle_seed"
    )  # fmt: skip

    def __init__(
        self, batch_size: int, eval_batch_size: int | None, shuffle_seed: int | None, on_device: bool | None
    ):
        super().__init__()
        name = type(self).__name__
        require_positive(name, batch_size=batch_size)
        if eval_batch_size is not None:
            require_positive(name, eval_batch_size=eval_batch_size)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.shuffle_seed = shuffle_seed
        self.on_device = on_device
        self.splits: dict[str, tuple[torch.Tensor, ...]] | None = None

    def __str__(self) -> str:
        shown = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.summary if hasattr(self, key))
        return f"{type(self).__name__}({shown})"

    def build_splits(self) -> dict[str, tuple[torch.Tensor, ...]]:
        """The splits' tensors, by split name (called once, by :meth:`setup`)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.build_splits()
        if self.trainer is not None and self.keep_on(self.trainer.strategy.root_device):
            device = self.trainer.strategy.root_device
            self.splits = {name: tuple(t.to(device) for t in split) for name, split in self.splits.items()}

    def keep_on(self, device: torch.device) -> bool:
        """Whether the splits should live on ``device``: as set, or on a GPU where they fit easily."""
        if device.type == "cpu":
            return False
        if self.on_device is not None:
            return bool(self.on_device)
        if device.type != "cuda":
            return False
        size = sum(t.numel() * t.element_size() for split in self.splits.values() for t in split)
        free, _ = torch.cuda.mem_get_info(device)
        return size < free / 4

    def train_seed(self) -> int:
        """The seed of the training batch order: ``shuffle_seed``, else the run's seed (``PL_GLOBAL_SEED``).

        Read when a training loader is made, so every process of a multi-process run (all seeded alike)
        shuffles alike and their shares stay disjoint.
        """
        return run_seed() if self.shuffle_seed is None else self.shuffle_seed

    def split_tensors(self, split: str) -> tuple[torch.Tensor, ...]:
        """The tensors a loader of ``split`` batches (the split itself unless a subclass derives them)."""
        return self.splits[split]

    def loader(self, split: str, train: bool = False, shards: Shards | None = None) -> TensorBatchLoader:
        """The batches of ``split``: shuffled (and the last small batch dropped) when ``train``.

        Among several processes, ``shards`` says how their shares are made equal (by default cut for
        training, padded for evaluation; see :class:`~mlplab.data.common.TensorBatchLoader`).
        """
        if self.splits is None:
            self.setup()
        batch_size = self.batch_size if train else self.eval_batch_size
        tensors = self.split_tensors(split)
        seed = self.train_seed() if train else 0  # evaluation keeps the split's order
        return split_loader(tensors, batch_size, train, seed, self.trainer, shards)

    def train_dataloader(self) -> TensorBatchLoader:
        return self.loader(self.loader_splits["train"], train=True)

    def val_dataloader(self) -> TensorBatchLoader:
        return self.loader(self.loader_splits["val"])

    def test_dataloader(self) -> TensorBatchLoader:
        return self.loader(self.loader_splits["test"])

    def predict_dataloader(self) -> TensorBatchLoader:
        # prediction waits for no other process: each writes its own share, unpadded
        return self.loader(self.loader_splits["predict"], shards="uneven")
