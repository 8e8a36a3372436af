import functools

import lightning as L
import pytest
import torch

from mlplab.data import MQARDataModule
from mlplab.models import Transformer
from mlplab.tasks import AssociativeRecall

ATTENTION = functools.partial(Transformer, embed_dim=64, depth=2, num_heads=1, channel_mlp=None, bias=True)


def test_loss_and_accuracy_count_answer_positions_only():
    task = AssociativeRecall(ATTENTION, 16, 6)
    labels = torch.tensor([[-100, -100, 9, -100, 3, -100]])
    logits = torch.randn(1, 6, 16) * 5  # garbage everywhere ...
    logits[0, 2, 9] = logits[0, 4, 3] = 100.0  # ... except at the two answers
    assert task.loss(logits, labels).item() == pytest.approx(0.0, abs=1e-4)
    accuracy, count = task.answer_accuracy(logits, labels)
    assert accuracy.item() == 1.0 and count.item() == 2
    logits[0, 4, 3] = -100.0
    assert task.answer_accuracy(logits, labels)[0].item() == 0.5


def test_attention_starts_to_recall_on_a_small_mqar():
    # a small Zoology setting (vocabulary 64, length 32, 4 pairs); chance is 1/32 among the values
    torch.manual_seed(0)
    data = MQARDataModule(preset=None, sequence_length=32, num_kv_pairs=4, vocab_size=64, batch_size=64,
                          num_train_examples=1024, num_test_examples=256)  # fmt: skip
    adamw = functools.partial(torch.optim.AdamW, lr=3e-3)
    task = AssociativeRecall(
        ATTENTION, data.vocab_size, data.context_length, optimizer=adamw, lr_scheduler=None
    )
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.fit(task, datamodule=data)
    metrics = trainer.callback_metrics
    assert {"val/acc", "val/loss", "train/acc", "train/loss"} <= metrics.keys()
    assert metrics["val/acc"] > 0.1
