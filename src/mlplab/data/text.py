"""Character-level language modelling on a text file: Tiny Shakespeare by default, offline corpora too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn

from mlplab.data.common import ResumableLoader, fetch_file, process_rank, resolve_data_dir
from mlplab.data.in_memory import InMemoryDataModule, shuffle_seed_or_alias
from mlplab.data.tokenizer import CharTokenizer
from mlplab.errors import ConfigError, DataCorruptError, DataNotFoundError, require_positive

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_FILE = "tinyshakespeare.txt"

Corpus = Literal["tinyshakespeare", "pydoc_topics"]


def pydoc_topics_text() -> str:
    """CPython's English help topics (``pydoc_data.topics``, about 0.5 MB), sorted by topic: offline text."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


class RandomWindowLoader(ResumableLoader):
    """Batches of random windows of a token stream, drawn on the stream's device.

    Each batch holds ``batch_size`` windows of ``context_length + 1`` consecutive tokens starting at
    uniformly random offsets (nanoGPT's sampling), split into inputs ``(B, T)`` and next-token targets
    ``(B, T)``. Offsets come from a generator seeded with ``seed`` and the epoch, so runs are
    reproducible and a fit resumed mid-epoch draws the same windows as an uninterrupted one (see
    :class:`~mlplab.data.common.ResumableLoader`). An "epoch" is ``batches`` batches.

    Among ``world_size`` processes, every process draws the offsets of the whole step (``world_size``
    x ``batch_size`` windows, the same on every process) and keeps every ``world_size``-th from its
    rank on: the processes see different windows, and together exactly those one process would draw
    with a ``world_size`` times larger batch (the draws of a single process are unchanged).

    Args:
        tokens: The token stream, int64 ``(N,)``.
        context_length: Tokens per input window T.
        batch_size: Windows per batch (per process).
        batches: Batches per epoch (per process).
        seed: Base seed.
        rank: This process's index among ``world_size``.
        world_size: Number of processes that share the steps.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        context_length: int,
        batch_size: int,
        batches: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        self.tokens = tokens
        self.context_length = context_length
        self.batch_size = batch_size
        self.batches = batches
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self._offsets = torch.arange(context_length + 1, device=tokens.device)

    def __len__(self) -> int:
        return self.batches

    def epoch_batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.tokens.device
        generator = torch.Generator(device=device).manual_seed(self.seed + epoch)
        high = len(self.tokens) - self.context_length
        step = (self.batch_size * self.world_size, 1)
        for batch in range(self.batches):
            starts = torch.randint(0, high, step, device=device, generator=generator)
            if batch < start:
                continue  # drawn and skipped: the generator stays where an uninterrupted epoch has it
            windows = self.tokens[starts[self.rank :: self.world_size] + self._offsets]
            yield windows[:, :-1], windows[:, 1:]


class CharTextDataModule(InMemoryDataModule):
    """Character-level language modelling on one text: next-character prediction.

    The text is Tiny Shakespeare by default (``corpus: tinyshakespeare``: ``tinyshakespeare.txt`` in
    the data folder, downloaded from karpathy/char-rnn and checked by sha256 when missing and online),
    CPython's bundled help topics (``corpus: pydoc_topics``, offline, for smoke runs), or any UTF-8 file
    (``text_file``). The first ``1 - val_fraction`` of the characters are the training split and the
    rest the validation split (nanoGPT's 90/10 cut of Tiny Shakespeare: 1,003,854 / 111,540); the test
    split is the validation split. The vocabulary is the sorted set of characters of the training
    split (65 for Tiny Shakespeare); validation characters outside it are dropped, with a warning.

    The file is read in ``__init__``, so ``vocab_size``, ``vocabulary`` and ``context_length`` are known
    there and linked to the task. Training batches are random windows (:class:`RandomWindowLoader`).
    Evaluation uses the non-overlapping windows of the validation split (the last partial window is
    left out): ``test`` (and ``predict``) every one of them; validation during ``fit`` (and ``validate``)
    at most ``val_windows`` of them, evenly spaced over the split and the same at every validation, so
    that validation costs the same for a long text as for a short one (Tiny Shakespeare has 435
    windows of 256 characters: all of them). Batches are ``(inputs, targets)``, int64 ``(B, T)``,
    targets shifted by one. On a GPU the token streams live on the device (``on_device``).

    Args:
        corpus: Built-in text used when ``text_file`` is not given.
        text_file: A UTF-8 text file to model instead (absolute, or relative to the working directory).
        data_dir: Folder of the corpus file; ``None`` means ``$MLPLAB_DATA`` if set, else ``./data``.
        context_length: Characters per training window T (the model's context).
        batch_size: Training windows per batch.
        eval_batch_size: Validation / test windows per batch; ``None`` means ``batch_size``.
        batches_per_epoch: Training batches of ``batch_size`` windows per epoch, counted over all
            processes: each of W processes draws ``batches_per_epoch // W`` (at least one), so an epoch
            holds the same tokens whatever W. ``None`` means one pass's worth of characters,
            ``len(train) // (batch_size * context_length)``.
        val_fraction: Fraction of the text (its end) held out for validation.
        val_windows: Validation windows during fit, evenly spaced over the validation split; ``None``:
            every window (``test`` always uses every window).
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        on_device: Keep the token streams on the accelerator; ``None``: on a GPU, when they fit easily.
        download: Download Tiny Shakespeare when it is missing.
        seed: Deprecated name of ``shuffle_seed`` (run folders written before it keep their order).
    """

    loader_splits = {"train": "train", "val": "val", "test": "test", "predict": "test"}
    summary = ("source", "split_characters", "vocab_size", "context_length")
    evaluation_neutral_arguments = (
        *InMemoryDataModule.evaluation_neutral_arguments, "seed", "batches_per_epoch", "download"
    )  # fmt: skip

    def __init__(
        self,
        corpus: Corpus = "tinyshakespeare",
        text_file: str | None = None,
        data_dir: str | None = None,
        context_length: int = 256,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        batches_per_epoch: int | None = None,
        val_fraction: float = 0.1,
        val_windows: int | None = 512,
        shuffle_seed: int | None = None,
        on_device: bool | None = None,
        download: bool = True,
        seed: int | None = None,
    ):
        shuffle_seed = shuffle_seed_or_alias(type(self).__name__, shuffle_seed, seed)
        super().__init__(batch_size, eval_batch_size, shuffle_seed, on_device)
        name = type(self).__name__
        require_positive(name, context_length=context_length)
        if batches_per_epoch is not None:
            require_positive(name, batches_per_epoch=batches_per_epoch)
        if val_windows is not None:
            require_positive(name, val_windows=val_windows)
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"{name}: val_fraction must be between 0 and 1, got {val_fraction}")
        if corpus not in ("tinyshakespeare", "pydoc_topics"):
            raise ConfigError(f"{name}: corpus must be tinyshakespeare or pydoc_topics, got {corpus!r}")
        self.corpus = corpus
        self.text_file = text_file
        self.data_dir = resolve_data_dir(data_dir)
        self.context_length = context_length
        self.val_fraction = val_fraction
        self.val_windows = val_windows
        self.download = download

        text, self.source = self._read_text()
        cut = int(len(text) * (1.0 - val_fraction))
        train_text, val_text = text[:cut], text[cut:]
        self.tokenizer = CharTokenizer.from_text(train_text) if train_text else None
        self._check_length(len(train_text), "training")
        unknown = self.tokenizer.unknown(val_text)
        if unknown:
            dropped = sum(val_text.count(char) for char in unknown)
            rank_zero_warn(
                f"{name}: {dropped} validation characters ({''.join(sorted(unknown))[:20]!r}) are not in "
                "the training vocabulary and were dropped"
            )
            val_text = "".join(char for char in val_text if char not in unknown)
        self._check_length(len(val_text), "validation")
        #: The characters of the vocabulary, in token order (linked to the task, kept in checkpoints).
        self.vocabulary: str = self.tokenizer.vocabulary
        #: Number of distinct tokens.
        self.vocab_size: int = len(self.vocabulary)
        self.train_tokens = self.tokenizer.encode(train_text)
        self.val_tokens = self.tokenizer.encode(val_text)
        self.batches_per_epoch = batches_per_epoch or max(
            1, len(self.train_tokens) // (batch_size * context_length)
        )

    # ---------------------------------------------------------------------------------- reading
    def _read_text(self) -> tuple[str, str]:
        """The whole text and a description of where it came from."""
        if self.text_file is not None:
            path = Path(self.text_file).expanduser()
            if not path.is_file():
                raise DataNotFoundError(f"text_file not found: {path} (give the path of a UTF-8 text file)")
            return self._decode(path), str(path)
        if self.corpus == "pydoc_topics":
            return pydoc_topics_text(), "pydoc_data.topics"
        path = fetch_file(
            self.data_dir,
            TINY_SHAKESPEARE_FILE,
            TINY_SHAKESPEARE_URL,
            TINY_SHAKESPEARE_SHA256,
            "Tiny Shakespeare",
            download=self.download,
        )
        return self._decode(path), str(path)

    @staticmethod
    def _decode(path: Path) -> str:
        data = path.read_bytes()
        if not data.strip():
            raise DataCorruptError(f"the text file {path} is empty: give a file with text to model")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataCorruptError(
                f"the text file {path} is not UTF-8 ({error.reason} at byte {error.start}): "
                "convert it to UTF-8"
            ) from error

    def _check_length(self, characters: int, split: str) -> None:
        needed = self.context_length + 1
        if characters < needed:
            raise ConfigError(
                f"{type(self).__name__}: the {split} split of {self.source} has {characters} characters, "
                f"fewer than context_length + 1 = {needed}: lower data.init_args.context_length or give a "
                "longer text"
            )

    @property
    def split_characters(self) -> tuple[int, int]:
        """Characters in the training and the validation split."""
        return len(self.train_tokens), len(self.val_tokens)

    # ---------------------------------------------------------------------------------- loaders
    def build_splits(self) -> dict[str, tuple[torch.Tensor, ...]]:
        """The training token stream; the validation split's windows: all (``test``) and the fit's subset."""
        inputs, targets = self.eval_windows()
        chosen = self.validation_subset(len(inputs))
        return {
            "train": (self.train_tokens,),
            "val": (inputs[chosen], targets[chosen]),
            "test": (inputs, targets),
        }

    def validation_subset(self, count: int) -> torch.Tensor:
        """Indices of the windows validated during fit: ``val_windows`` of ``count``, evenly spaced."""
        if self.val_windows is None or self.val_windows >= count:
            return torch.arange(count)
        return torch.linspace(0, count - 1, self.val_windows).round().long()

    def eval_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every non-overlapping validation window: inputs and targets ``(W, T)``."""
        length = self.context_length
        count = (len(self.val_tokens) - 1) // length
        inputs = self.val_tokens[: count * length].view(count, length)
        targets = self.val_tokens[1 : count * length + 1].view(count, length)
        return inputs, targets

    def train_dataloader(self) -> RandomWindowLoader:
        if self.splits is None:
            self.setup()
        rank, world_size = process_rank(self.trainer)
        (tokens,) = self.splits["train"]
        batches = max(1, self.batches_per_epoch // world_size)
        return RandomWindowLoader(
            tokens, self.context_length, self.batch_size, batches, self.train_seed(), rank, world_size
        )
