"""Next-token language modelling: cross-entropy, bits per character, perplexity, generated samples."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from mlplab.data.tokenizer import CharTokenizer
from mlplab.errors import CheckpointError, ConfigError
from mlplab.loggers import log_text
from mlplab.tasks.sequence import BitsPerToken, Perplexity, SequenceBackbone, SequenceTask


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    new_tokens: int,
    context_length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample ``new_tokens`` tokens after ``prompt`` ``(P,)`` from a causal model, one at a time.

    The model sees the last ``context_length`` tokens at each step (the whole sequence is recomputed,
    so any family works). ``temperature`` 0 is greedy decoding; ``top_k`` keeps the k most likely tokens.

    Returns:
        The new tokens ``(new_tokens,)``.
    """
    tokens = prompt[None]
    for _ in range(new_tokens):
        logits = model(tokens[:, -context_length:])[:, -1].float()
        if temperature == 0:
            token = logits.argmax(-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
        tokens = torch.cat([tokens, token], dim=1)
    return tokens[0, len(prompt) :]


class LanguageModeling(SequenceTask):
    """Predict each next token of ``(B, T)`` sequences; the backbone returns logits ``(B, T, V)``.

    Loss: mean cross-entropy over every position (see :meth:`loss`). Metrics, one set per evaluation
    stage, averaged over all evaluated tokens: ``<stage>/loss`` (nats per token), ``<stage>/bpc``
    (bits per token: bits per character for character data) and ``<stage>/ppl`` (perplexity). The
    evaluation windows do not overlap and each holds ``context_length`` tokens (the mean over tokens
    is the mean over windows); a window's first tokens are predicted from a short context;
    ``train/loss`` per step. After every validation a sample of ``sample_length`` tokens generated
    from ``sample_prompt`` (seeded by ``sample_seed``) is written to the run's loggers as the text
    ``val/sample`` (:mod:`mlplab.loggers`).

    The vocabulary (the characters of the tokenizer) comes from the DataModule and is kept in the
    hyper-parameters, hence in every checkpoint: :meth:`sample` decodes with it, and a checkpoint
    trained on another vocabulary is refused with one line. A task built in Python without it takes the
    DataModule's at :meth:`setup` (when it has one of ``vocab_size`` characters), so its checkpoints
    carry it as the command line's do (``mlplab.load_run(DIR).preprocessing["vocabulary"]``).

    Args:
        backbone: The sequence family: its class path and arguments.
        vocab_size: Vocabulary size; filled in from the DataModule.
        context_length: Longest sequence; filled in from the DataModule.
        vocabulary: The tokenizer's characters in token order; filled in from a character DataModule
            (``None``: no samples).
        sample_length: Tokens generated after each validation (0: none).
        sample_prompt: Text the samples start from; ``None`` means a newline (nanoGPT's ``sample.py``),
            or the first character of the vocabulary when it has no newline.
        sample_temperature: Sampling temperature (0: greedy).
        sample_top_k: Sample among the k most likely tokens only (``None``: all).
        sample_seed: Seed of the sampling.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/loss"
    monitor_mode = "min"
    evaluation_neutral_arguments = (
        *SequenceTask.evaluation_neutral_arguments,
        "sample_length", "sample_prompt", "sample_temperature", "sample_top_k", "sample_seed",
    )  # fmt: skip

    def __init__(
        self,
        backbone: SequenceBackbone,
        vocab_size: int,
        context_length: int,
        vocabulary: str | None = None,
        sample_length: int = 200,
        sample_prompt: str | None = None,
        sample_temperature: float = 1.0,
        sample_top_k: int | None = None,
        sample_seed: int = 1234,
        **kwargs: Any,
    ):
        super().__init__(backbone, vocab_size, context_length, **kwargs)
        self.save_hyperparameters()
        if vocabulary is not None and len(vocabulary) != vocab_size:
            raise ConfigError(
                f"LanguageModeling: the vocabulary has {len(vocabulary)} characters but "
                f"vocab_size={vocab_size}"
            )
        if sample_length < 0 or sample_temperature < 0:
            raise ConfigError(
                "LanguageModeling: sample_length and sample_temperature must be >= 0, got "
                f"{sample_length} and {sample_temperature}"
            )
        if sample_top_k is not None and sample_top_k < 1:
            raise ConfigError(
                "LanguageModeling: sample_top_k must be a positive integer or null (all tokens), got "
                f"{sample_top_k}"
            )
        if sample_prompt == "":
            raise ConfigError(
                "LanguageModeling: sample_prompt is empty; give at least one character, or null for a newline"
            )
        self.tokenizer = CharTokenizer(vocabulary) if vocabulary else None
        if sample_prompt is None:
            sample_prompt = "\n" if not vocabulary or "\n" in vocabulary else vocabulary[0]
        self.sample_length = sample_length
        self.sample_prompt = sample_prompt
        self.sample_temperature = sample_temperature
        self.sample_top_k = sample_top_k
        self.sample_seed = sample_seed
        if self.tokenizer is not None and self.tokenizer.unknown(sample_prompt):
            raise ConfigError(
                f"LanguageModeling: sample_prompt {sample_prompt!r} has characters outside the data's "
                "vocabulary"
            )
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")
        self.last_sample: str | None = None

    @staticmethod
    def _metrics(stage: str) -> MetricCollection:
        return MetricCollection(
            {"loss": MeanMetric(), "bpc": BitsPerToken(), "ppl": Perplexity()}, prefix=f"{stage}/"
        )

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all positions; override it in a subclass to train with another."""
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def update_metrics(self, metrics: MetricCollection, logits: torch.Tensor, targets: torch.Tensor) -> None:
        metrics.update(self.loss(logits, targets).float(), weight=targets.numel())

    # --------------------------------------------------------------------------------- samples
    def sample(
        self,
        prompt: str | None = None,
        length: int | None = None,
        seed: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
    ) -> str:
        """Text generated by the model after ``prompt``.

        Each argument left ``None`` takes the task's sample setting (``sample_prompt``,
        ``sample_length``, ``sample_seed``, ``sample_temperature``, ``sample_top_k``).

        Raises:
            ConfigError: No vocabulary, an empty prompt or one with characters outside the vocabulary,
                a negative length or temperature, or a ``top_k`` below 1.
        """
        if self.tokenizer is None:
            raise ConfigError("LanguageModeling: sampling needs the vocabulary (a character DataModule)")
        prompt = self.sample_prompt if prompt is None else prompt
        length = self.sample_length if length is None else length
        temperature = self.sample_temperature if temperature is None else temperature
        top_k = self.sample_top_k if top_k is None else top_k
        if prompt == "":
            raise ConfigError("LanguageModeling.sample: the prompt is empty; give at least one character")
        if length < 0 or temperature < 0 or (top_k is not None and top_k < 1):
            raise ConfigError(
                "LanguageModeling.sample: length and temperature must be >= 0 and top_k >= 1, got "
                f"length={length}, temperature={temperature}, top_k={top_k}"
            )
        ids = self.tokenizer.encode(prompt).to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(
            self.sample_seed if seed is None else seed
        )
        new = generate(self.backbone, ids, length, self.context_length, temperature, top_k, generator)
        return prompt + self.tokenizer.decode(new)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.trainer.sanity_checking or self.tokenizer is None or self.sample_length == 0:
            return
        if not self.trainer.is_global_zero:  # the same text on every process; rank 0 writes it
            return
        if not self.loggers:
            return
        self.last_sample = self.sample()
        log_text(self.loggers, "val/sample", self.last_sample, self.global_step)

    def setup(self, stage: str) -> None:
        """Take the DataModule's vocabulary when the task was built without one (see the class docs).

        Raises:
            ConfigError: The ``sample_prompt`` given has characters outside that vocabulary.
        """
        super().setup(stage)
        vocabulary = getattr(getattr(self._trainer, "datamodule", None), "vocabulary", None)
        usable = isinstance(vocabulary, str) and len(vocabulary) == self.vocab_size
        if self.tokenizer is not None or not usable:
            return
        self.hparams["vocabulary"] = vocabulary  # kept in the checkpoints, as the command line's
        self.tokenizer = CharTokenizer(vocabulary)
        if self.hparams.get("sample_prompt") is None:  # the default, now for this vocabulary
            self.sample_prompt = "\n" if "\n" in vocabulary else vocabulary[0]
        elif self.tokenizer.unknown(self.sample_prompt):
            raise ConfigError(
                f"LanguageModeling: sample_prompt {self.sample_prompt!r} has characters outside the data's "
                "vocabulary"
            )

    # ------------------------------------------------------------------------------ checkpoints
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint trained on another character vocabulary."""
        theirs = checkpoint.get("hyper_parameters", {}).get("vocabulary")
        ours = self.tokenizer.vocabulary if self.tokenizer is not None else None
        if theirs is not None and ours is not None and theirs != ours:
            differ = sorted(set(theirs) ^ set(ours))
            example = f"e.g. {''.join(differ[:10])!r} in only one of them" if differ else "in another order"
            raise CheckpointError(
                f"the checkpoint was trained on another character vocabulary ({len(theirs)} characters) than "
                f"this data's ({len(ours)} characters, {example}): use the text the checkpoint was trained on"
            )
        super().on_load_checkpoint(checkpoint)
