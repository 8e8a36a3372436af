"""Multi-query associative recall (MQAR), the synthetic recall task of Zoology (Arora et al., ICLR 2024)."""

from __future__ import annotations

from typing import Literal

import torch

from mlplab.data.in_memory import InMemoryDataModule
from mlplab.errors import ConfigError, require_positive

#: Zoology's figure-2 settings (``zoology/experiments/paper_configs/iclr24_zoology_figure2/configs.py``):
#: name -> (sequence length, key-value pairs, batch size).
MQAR_PRESETS: dict[str, tuple[int, int, int]] = {
    "64x4": (64, 4, 512),
    "128x8": (128, 8, 512),
    "256x16": (256, 16, 256),
    "512x64": (512, 64, 128),
}
IGNORE_INDEX = -100


def _distinct_uniform(rows: int, low: int, high: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct integers per row, uniform from ``[low, high)`` in uniformly random order.

    Rows are drawn with replacement and redrawn while they repeat a value (rejection sampling), which
    leaves every ordered tuple of distinct values equally likely.
    """
    out = torch.randint(low, high, (rows, count), generator=generator)
    while True:
        ordered = out.sort(dim=1).values
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
        bad = torch.nonzero(repeated).flatten()
        if len(bad) == 0:
            return out
        out[bad] = torch.randint(low, high, (len(bad), count), generator=generator)


def _distinct_weighted(
    rows: int, probs: torch.Tensor, count: int, generator: torch.Generator
) -> torch.Tensor:
    """``count`` distinct indices per row, drawn one after another with probabilities ``probs``.

    Each draw renormalises ``probs`` over the indices left, as NumPy's ``choice(replace=False, p=probs)``;
    done here by the Gumbel top-k trick.
    """
    uniform = torch.rand(rows, len(probs), generator=generator).clamp_(1e-12, 1.0 - 1e-7)
    scores = probs.float().log() - (-uniform.log()).log()
    return scores.topk(count, dim=1).indices


def power_law_gap_probabilities(space: int, power_a: float) -> torch.Tensor:
    """Zoology's gap distribution ``p_i ∝ a * i^(a-1)`` for ``i = 1..space`` (gap ``i - 1``)."""
    i = torch.arange(1, space + 1, dtype=torch.float64)
    p = power_a * i ** (power_a - 1)
    return p / p.sum()


def multiquery_ar(
    vocab_size: int,
    num_examples: int,
    sequence_length: int,
    num_kv_pairs: int,
    seed: int,
    power_a: float = 0.01,
    random_non_queries: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MQAR examples exactly as Zoology's ``multiquery_ar`` builds them (``zoology/data/multiquery_ar.py``).

    Each example starts with ``num_kv_pairs`` key-value pairs ``k1 v1 k2 v2 ...``: distinct keys from
    ``[1, V/2)``, distinct values from ``[V/2, V)``. Every key is queried once afterwards: key ``i`` is
    placed at position ``2 n + 2 g_i`` (``n`` pairs), with distinct gaps ``g_i`` drawn without
    replacement from ``0 .. (T - 2n)/2 - 1`` with the power-law probabilities
    :func:`power_law_gap_probabilities`. The label at a query's position is its key's value; every other
    label is -100 (ignored). Other positions hold 0, or uniform random tokens of ``[0, V)`` when
    ``random_non_queries``. Sampling is vectorised with a torch generator seeded with ``seed``; the
    distribution is Zoology's, the random stream is not NumPy's.

    Returns:
        ``inputs`` and ``labels``, int64 ``(num_examples, sequence_length)``.
    """
    context = 2 * num_kv_pairs
    space = (sequence_length - context) // 2
    generator = torch.Generator().manual_seed(seed)
    half = vocab_size // 2
    keys = _distinct_uniform(num_examples, 1, half, num_kv_pairs, generator)
    values = _distinct_uniform(num_examples, half, vocab_size, num_kv_pairs, generator)
    gaps = _distinct_weighted(
        num_examples, power_law_gap_probabilities(space, power_a), num_kv_pairs, generator
    )
    inputs = torch.zeros(num_examples, sequence_length, dtype=torch.int64)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    query_positions = context + 2 * gaps
    inputs.scatter_(1, query_positions, keys)
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels.scatter_(1, query_positions, values)
    if random_non_queries:
        noise = torch.randint(vocab_size, inputs.shape, generator=generator)
        inputs = torch.where(inputs == 0, noise, inputs)
    return inputs, labels


def _row_hashes(rows: torch.Tensor) -> torch.Tensor:
    """A 64-bit hash per row ``(N,)`` (multiply-add with fixed odd multipliers, wrapping)."""
    generator = torch.Generator().manual_seed(12345)
    multipliers = torch.randint(1, 2**62, (rows.shape[1],), generator=generator, dtype=torch.int64) | 1
    return (rows * multipliers).sum(-1)


def rows_also_in(rows: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``(N,)``: which rows of ``rows`` occur (exactly) among the rows of ``reference``."""
    row_h, ref_h = _row_hashes(rows), _row_hashes(reference)
    found = torch.zeros(len(rows), dtype=torch.bool)
    for i in torch.nonzero(torch.isin(row_h, ref_h)).flatten().tolist():  # hash matches: check exactly
        found[i] = bool((reference[ref_h == row_h[i]] == rows[i]).all(-1).any())
    return found


class MQARDataModule(InMemoryDataModule):
    """Zoology's multi-query associative recall: train on 100k examples, evaluate on 3k held-out ones.

    The examples come from :func:`multiquery_ar` (Zoology's generator): the training set with ``seed``,
    the test set with ``seed + 10`` (as Zoology), and test examples that also occur in the training set
    are removed, so the two are disjoint (at Zoology's sizes none do). Validation and test both use the
    test set, as Zoology does. Batches are ``(inputs, labels)``, int64 ``(B, T)``, labels -100 except at
    the query positions; the task scores only those.

    ``preset`` picks one of Zoology's settings ``"<sequence length>x<key-value pairs>"``:
    ``64x4``, ``128x8``, ``256x16`` (batch 512, 512, 256) and ``512x64`` (batch 128), with vocabulary
    8192; ``sequence_length``, ``num_kv_pairs`` and ``batch_size``, when given, override it. Zoology's
    figure 2 trains without random filler tokens (``random_non_queries: false``), power-law gaps with
    a = 0.01, for up to 64 epochs.

    Args:
        preset: Zoology setting, or ``None`` to give every size explicitly.
        sequence_length: Tokens per example T (even); overrides the preset.
        num_kv_pairs: Key-value pairs per example; overrides the preset (4 * pairs <= T).
        vocab_size: Vocabulary V (keys from the lower half, values from the upper half; V > T).
        num_train_examples: Training examples.
        num_test_examples: Test (= validation) examples before removing those also in training.
        power_a: Exponent of the power-law gap distribution (1.0: uniform gaps).
        random_non_queries: Fill non-key, non-query positions with random tokens instead of 0.
        batch_size: Training batch size; overrides the preset's.
        eval_batch_size: Evaluation batch size; ``None`` means the training batch size.
        seed: Seed of the training examples (the test set uses ``seed + 10``): the data, which the run's
            seed does not change.
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        on_device: Keep the examples on the accelerator; ``None``: on a GPU, when they fit easily.
    """

    loader_splits = {"train": "train", "val": "test", "test": "test", "predict": "test"}
    summary = ("sequence_length", "num_kv_pairs", "vocab_size", "num_train_examples", "num_test_examples")

    def __init__(
        self,
        preset: Literal["64x4", "128x8", "256x16", "512x64"] | None = "256x16",
        sequence_length: int | None = None,
        num_kv_pairs: int | None = None,
        vocab_size: int = 8192,
        num_train_examples: int = 100_000,
        num_test_examples: int = 3_000,
        power_a: float = 0.01,
        random_non_queries: bool = False,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        seed: int = 0,
        shuffle_seed: int | None = None,
        on_device: bool | None = None,
    ):
        name = type(self).__name__
        if preset is not None and preset not in MQAR_PRESETS:
            raise ConfigError(f"{name}: preset must be one of {', '.join(MQAR_PRESETS)}, got {preset!r}")
        preset_length, preset_pairs, preset_batch = MQAR_PRESETS[preset] if preset else (None, None, None)
        # an explicit 0 is refused below, not replaced by the preset's value
        sequence_length = preset_length if sequence_length is None else sequence_length
        num_kv_pairs = preset_pairs if num_kv_pairs is None else num_kv_pairs
        batch_size = preset_batch if batch_size is None else batch_size
        if sequence_length is None or num_kv_pairs is None or batch_size is None:
            raise ConfigError(f"{name}: without a preset, give sequence_length, num_kv_pairs and batch_size")
        super().__init__(batch_size, eval_batch_size, shuffle_seed, on_device)
        require_positive(
            name,
            sequence_length=sequence_length,
            num_kv_pairs=num_kv_pairs,
            vocab_size=vocab_size,
            num_train_examples=num_train_examples,
            num_test_examples=num_test_examples,
        )
        if eval_batch_size is not None:
            require_positive(name, eval_batch_size=eval_batch_size)
        if sequence_length % 2:
            raise ConfigError(f"{name}: sequence_length must be even, got {sequence_length}")
        if 4 * num_kv_pairs > sequence_length:
            raise ConfigError(
                f"{name}: {num_kv_pairs} key-value pairs and their queries need sequence_length >= "
                f"{4 * num_kv_pairs}, got {sequence_length}"
            )
        if vocab_size <= sequence_length or vocab_size // 2 - 1 < num_kv_pairs:
            raise ConfigError(
                f"{name}: vocab_size must exceed sequence_length and hold {num_kv_pairs} distinct keys in "
                f"its lower half, got vocab_size={vocab_size} with sequence_length={sequence_length}"
            )
        if power_a <= 0:
            raise ConfigError(f"{name}: power_a must be positive, got {power_a}")
        self.preset = preset
        #: Tokens per example (the model's context), linked to the task.
        self.context_length: int = sequence_length
        #: Vocabulary size, linked to the task.
        self.vocab_size: int = vocab_size
        self.num_kv_pairs = num_kv_pairs
        self.num_train_examples = num_train_examples
        self.num_test_examples = num_test_examples
        self.power_a = power_a
        self.random_non_queries = random_non_queries
        self.seed = seed

    @property
    def sequence_length(self) -> int:
        """Tokens per example (the ``context_length`` the task gets)."""
        return self.context_length

    def build_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self.generate()

    def generate(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The training and test sets (test rows that also occur in training removed)."""
        common = dict(
            vocab_size=self.vocab_size,
            sequence_length=self.context_length,
            num_kv_pairs=self.num_kv_pairs,
            power_a=self.power_a,
            random_non_queries=self.random_non_queries,
        )
        train = multiquery_ar(num_examples=self.num_train_examples, seed=self.seed, **common)
        test_inputs, test_labels = multiquery_ar(
            num_examples=self.num_test_examples, seed=self.seed + 10, **common
        )
        keep = ~rows_also_in(test_inputs, train[0])
        if not keep.any():
            raise ConfigError(
                f"{type(self).__name__}: every test example also occurs in the training set; use a larger "
                "vocab_size or sequence_length"
            )
        return {"train": train, "test": (test_inputs[keep], test_labels[keep])}
