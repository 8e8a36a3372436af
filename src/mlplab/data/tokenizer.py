"""The character tokenizer of the language-modelling data: one token per distinct character."""

from __future__ import annotations

import torch

from mlplab.errors import ConfigError


class CharTokenizer:
    """Maps each character of ``vocabulary`` to its index, and back.

    The vocabulary is a string of distinct characters, sorted (as built by :meth:`from_text`), so the
    string alone reproduces the tokenizer: the language-modelling task keeps it in its hyper-parameters
    and therefore in every checkpoint.

    Args:
        vocabulary: The characters, each once; token ``i`` is ``vocabulary[i]``.
    """

    def __init__(self, vocabulary: str):
        if not vocabulary:
            raise ConfigError("the character vocabulary is empty")
        if len(set(vocabulary)) != len(vocabulary):
            raise ConfigError("the character vocabulary repeats a character")
        self.vocabulary = vocabulary
        self.index = {char: i for i, char in enumerate(vocabulary)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer of the sorted distinct characters of ``text``."""
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.vocabulary)

    def unknown(self, text: str) -> set[str]:
        """Characters of ``text`` outside the vocabulary."""
        return set(text) - self.index.keys()

    def encode(self, text: str) -> torch.Tensor:
        """int64 token ids ``(len(text),)``; raises :class:`ConfigError` on unknown characters."""
        missing = self.unknown(text)
        if missing:
            shown = "".join(sorted(missing))[:20]
            raise ConfigError(f"text holds {len(missing)} characters outside the vocabulary: {shown!r}")
        return torch.tensor([self.index[char] for char in text], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The text of token ids (any integer sequence)."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.vocabulary[i] for i in values)
