import functools

import lightning as L
import pytest
import torch

from mlplab.data import DigitsDataModule
from mlplab.errors import ConfigError
from mlplab.models import StandardMLP
from mlplab.tasks import ImageClassification

BACKBONE = functools.partial(StandardMLP, embed_dim=64, depth=2)


@pytest.mark.parametrize("mixup_alpha", [0.0, 0.8])
def test_learns_digits_and_logs_top1_top5(mixup_alpha):
    torch.manual_seed(0)
    task = ImageClassification(BACKBONE, (1, 8, 8), 10, label_smoothing=0.1, mixup_alpha=mixup_alpha)
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(task, datamodule=DigitsDataModule(batch_size=64))
    metrics = trainer.callback_metrics
    assert {"val/acc", "val/acc_top5", "val/loss", "train/loss"} <= metrics.keys()
    assert metrics["val/acc"] > 0.5
    assert metrics["val/acc_top5"] >= metrics["val/acc"]


def test_predictions_are_probabilities():
    task = ImageClassification(BACKBONE, (1, 8, 8), 10)
    out = task.predict_step((torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)), 0)
    torch.testing.assert_close(out["probabilities"].sum(-1), torch.ones(4))
    assert out["predictions"].shape == (4,)


def test_bad_settings():
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        ImageClassification(BACKBONE, (1, 8, 8), 10, label_smoothing=1.0)
    with pytest.raises(ConfigError, match="at least 2"):
        ImageClassification(BACKBONE, (1, 8, 8), 1)
    # a negative alpha once switched mixup off silently, and a probability above 1 was taken as 1
    with pytest.raises(ConfigError, match="mixup_alpha and cutmix_alpha must be >= 0"):
        ImageClassification(BACKBONE, (1, 8, 8), 10, mixup_alpha=-1.0)
    with pytest.raises(ConfigError, match="mixup_alpha and cutmix_alpha must be >= 0"):
        ImageClassification(BACKBONE, (1, 8, 8), 10, cutmix_alpha=-0.5)
    with pytest.raises(ConfigError, match=r"mixup_prob must be in \[0, 1\], got 3"):
        ImageClassification(BACKBONE, (1, 8, 8), 10, mixup_alpha=0.8, mixup_prob=3.0)


class CountingEvaluations(ImageClassification):
    evaluated = 0

    def validation_step(self, batch, batch_idx):
        self.evaluated += 1
        super().validation_step(batch, batch_idx)


def test_mixup_with_an_odd_batch_size_is_refused_before_anything_runs():
    # it was refused at the first training step, after loading the data and the sanity check
    task = CountingEvaluations(BACKBONE, (1, 8, 8), 10, mixup_alpha=0.8)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match="need an even data.batch_size, got 63"):
        trainer.fit(task, datamodule=DigitsDataModule(batch_size=63))
    assert task.evaluated == 0 and trainer.global_step == 0
