"""Base of the DataModules whose splits live in memory: built once, on the accelerator when they fit."""

from __future__ import annotations

import lightning as L
import torch

from mlplab.data.common import Shards, TensorBatchLoader, split_loader
from mlplab.errors import require_positive


class InMemoryDataModule(L.LightningDataModule):
    """A dataset held as tensors and batched by index (images, windows of series, tokens, MQAR examples).

    Subclasses build their splits in :meth:`build_splits` (a mapping from split name to tensors that
    share their first dimension) and say which split each loader serves (``loader_splits``); this class
    builds them once, moves them to the accelerator when they fit (``on_device``), serves every loader
    through :func:`mlplab.data.common.split_loader` (shuffled, last small batch dropped, for training
    only; among several processes, equal shares: cut for training, padded for evaluation) and prints
    itself without touching the data (``summary``: jsonargparse prints the DataModule when it skips a
    data -> task link, and Lightning's own ``__str__`` iterates the loaders).

    Args:
        batch_size: Training batch size.
        eval_batch_size: Validation / test / prediction batch size; ``None`` means ``batch_size``.
        seed: Base seed of the training loader's shuffling.
        on_device: Keep the splits on the accelerator and batch them there; ``None``: on a GPU, when
            they take under a quarter of its free memory.
    """

    #: The split each loader serves.
    loader_splits: dict[str, str] = {"train": "train", "val": "val", "test": "test", "predict": "test"}
    #: The attributes ``__str__`` shows.
    summary: tuple[str, ...] = ()
    #: Arguments whose value does not change what a test measures (batch sizes, where the data lives,
    #: what only training uses); see :attr:`mlplab.tasks.Task.evaluation_neutral_arguments`.
    evaluation_neutral_arguments: tuple[str, ...] = ("batch_size", "eval_batch_size", "on_device")

    def __init__(self, batch_size: int, eval_batch_size: int | None, seed: int, on_device: bool | None):
        super().__init__()
        name = type(self).__name__
        require_positive(name, batch_size=batch_size)
        if eval_batch_size is not None:
            require_positive(name, eval_batch_size=eval_batch_size)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.loader_seed = seed
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
        return split_loader(tensors, batch_size, train, self.loader_seed, self.trainer, shards)

    def train_dataloader(self) -> TensorBatchLoader:
        return self.loader(self.loader_splits["train"], train=True)

    def val_dataloader(self) -> TensorBatchLoader:
        return self.loader(self.loader_splits["val"])

    def test_dataloader(self) -> TensorBatchLoader:
        return self.loader(self.loader_splits["test"])

    def predict_dataloader(self) -> TensorBatchLoader:
        # prediction waits for no other process: each writes its own share, unpadded
        return self.loader(self.loader_splits["predict"], shards="uneven")
