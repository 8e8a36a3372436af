import functools
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlplab.data import CharTextDataModule
from mlplab.errors import ConfigError
from mlplab.models import GatedLinearAttention, Transformer
from mlplab.nn import ChannelMLP
from mlplab.tasks import LanguageModeling, generate

TINY = functools.partial(Transformer, embed_dim=32, depth=2, num_heads=2)


def pydoc(**kwargs) -> CharTextDataModule:
    return CharTextDataModule(corpus="pydoc_topics", context_length=32, batch_size=16, **kwargs)


def test_learns_characters_logs_bpc_perplexity_and_samples(tmp_path):
    torch.manual_seed(0)
    data = pydoc(batches_per_epoch=25)
    task = LanguageModeling(TINY, data.vocab_size, data.context_length, data.vocabulary, sample_length=30,
                            optimizer=functools.partial(torch.optim.AdamW, lr=3e-3))  # fmt: skip
    quiet = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
    trainer = L.Trainer(max_epochs=2, limit_val_batches=4, logger=TensorBoardLogger(tmp_path), **quiet)
    trainer.fit(task, datamodule=data)
    metrics = trainer.callback_metrics
    loss = metrics["val/loss"].item()
    assert loss < math.log(data.vocab_size) - 0.8  # well below a uniform guess over the vocabulary
    assert metrics["val/bpc"].item() == pytest.approx(loss / math.log(2), rel=1e-5)
    assert metrics["val/ppl"].item() == pytest.approx(math.exp(loss), rel=1e-5)
    assert task.last_sample.startswith("\n") and len(task.last_sample) == 31
    events = EventAccumulator(trainer.logger.log_dir)
    events.Reload()
    assert "val/sample/text_summary" in events.Tags()["tensors"]
    assert (
        len(events.Tensors("val/sample/text_summary")) == 2
    )  # one per validation, none for the sanity check


def test_sampling_is_seeded_and_crops_to_the_context():
    torch.manual_seed(0)
    data = pydoc()
    task = LanguageModeling(TINY, data.vocab_size, data.context_length, data.vocabulary, sample_length=10)
    assert task.sample(seed=3) == task.sample(seed=3)
    long_prompt = data.tokenizer.decode(data.val_tokens[:100])  # longer than the 32-token context
    text = task.sample(prompt=long_prompt, length=5)
    assert text.startswith(long_prompt) and len(text) == 105
    greedy = generate(task.backbone, data.val_tokens[:8], 4, data.context_length, temperature=0)
    logits = task.backbone(data.val_tokens[None, :8])
    assert greedy[0] == logits[0, -1].argmax()


def test_mixture_of_experts_loss_reaches_the_training_loss():
    torch.manual_seed(0)
    data = pydoc()
    moe = ChannelMLP(kind="moe_plus_plus", num_experts=2, aux_loss_weight=0.5)
    backbone = functools.partial(GatedLinearAttention, embed_dim=16, depth=2, num_heads=2, channel_mlp=moe)
    task = LanguageModeling(backbone, data.vocab_size, data.context_length, data.vocabulary)
    batch = next(iter(data.train_dataloader()))
    total = task.training_step(batch, 0)
    task_loss = task.loss(task(batch[0]), batch[1])
    extra = sum(layer.mlp.aux_loss for layer in task.backbone.blocks)
    torch.testing.assert_close(total, task_loss + extra)
    assert extra > 0.5  # weight 0.5 x a balance loss near 1


def test_bad_settings():
    data = pydoc()
    with pytest.raises(ConfigError, match="vocabulary has 3 characters but vocab_size=5"):
        LanguageModeling(TINY, 5, 32, "abc")
    with pytest.raises(ConfigError, match="sample_prompt .* outside the data's vocabulary"):
        LanguageModeling(TINY, data.vocab_size, 32, data.vocabulary, sample_prompt="\u2603")
    # both used to train a whole epoch and then crash in the first sample (topk of 0; an empty sequence)
    for top_k in (0, -3):
        with pytest.raises(ConfigError, match=f"sample_top_k must be .* got {top_k}"):
            LanguageModeling(TINY, data.vocab_size, 32, data.vocabulary, sample_top_k=top_k)
    with pytest.raises(ConfigError, match="sample_prompt is empty"):
        LanguageModeling(TINY, data.vocab_size, 32, data.vocabulary, sample_prompt="")
    one = LanguageModeling(TINY, data.vocab_size, 32, data.vocabulary, sample_top_k=1, sample_length=3)
    assert len(one.sample()) == 4  # top-1 sampling is allowed


def test_sample_takes_its_settings_as_arguments_and_refuses_bad_ones_in_one_line():
    torch.manual_seed(0)
    task = LanguageModeling(TINY, 6, 16, "abcdef", sample_length=6)
    greedy = LanguageModeling(TINY, 6, 16, "abcdef", sample_length=6, sample_temperature=0)
    greedy.load_state_dict(task.state_dict())
    assert task.sample("a", temperature=0) == greedy.sample("a")  # temperature was not an argument
    assert task.sample("a", temperature=0, seed=1) == task.sample("a", temperature=0, seed=2)
    assert task.sample("a", top_k=1, seed=1) == greedy.sample("a")
    # an empty prompt ended in "IndexError: index -1 is out of bounds" from the model's output
    with pytest.raises(ConfigError, match="the prompt is empty"):
        task.sample("")
    for bad in ({"length": -1}, {"temperature": -0.5}, {"top_k": 0}):
        with pytest.raises(ConfigError, match="length and temperature must be >= 0 and top_k >= 1"):
            task.sample("a", **bad)


def test_a_task_built_without_the_vocabulary_takes_the_datamodules(tmp_path):
    # built in Python without vocabulary=data.vocabulary, the task's checkpoints had none: load_run's
    # preprocessing lacked it and run.model.sample() ended with "sampling needs the vocabulary"
    import mlplab

    torch.manual_seed(0)
    data = pydoc(batches_per_epoch=1)
    task = LanguageModeling(TINY, data.vocab_size, data.context_length, sample_length=5)
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    trainer = L.Trainer(max_steps=1, limit_val_batches=1, enable_model_summary=False, **quiet)
    trainer.fit(task, datamodule=data)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    run = mlplab.load_run(tmp_path / "model.ckpt")
    assert run.preprocessing["vocabulary"] == data.vocabulary == run.model.tokenizer.vocabulary
    text = run.model.sample(prompt="def", length=4, seed=1)
    assert (
        text.startswith("def")
        and len(text) == 7
        and text == task.eval().sample(prompt="def", length=4, seed=1)
    )
    tokens = data.val_tokens[:12]
    assert run.model.tokenizer.decode(tokens) == data.tokenizer.decode(tokens)
