"""GlobalMagnitudePruning: one-shot and scheduled pruning while training, plain checkpoints, resumption."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch

from mlplab.analysis import pruning
from mlplab.callbacks import BestCheckpoint, GlobalMagnitudePruning
from mlplab.data import DigitsDataModule
from mlplab.errors import ConfigError
from mlplab.models import HourglassMLP
from mlplab.tasks import ImageRestoration

BACKBONE = functools.partial(HourglassMLP, embed_dim=64, mlp_dim=16, depth=2)


def fit(tmp_path, callbacks, ckpt_path=None, **trainer_args):
    torch.manual_seed(0)
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    trainer = L.Trainer(default_root_dir=tmp_path, callbacks=callbacks, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=2, **trainer_args)  # fmt: skip
    data = DigitsDataModule(normalize=False, batch_size=64)
    trainer.fit(task, datamodule=data, ckpt_path=ckpt_path, weights_only=False)  # hparams hold a partial
    return trainer, task


def test_one_shot_pruning_then_training_keeps_the_zeros_and_writes_plain_checkpoints(tmp_path):
    pruner = GlobalMagnitudePruning(sparsity=0.7, start_step=3)
    checkpoint = BestCheckpoint(filename="best", save_last=True)
    trainer, task = fit(tmp_path, [pruner, checkpoint], max_epochs=2)
    layers = pruning.prunable_weights(task.backbone)
    zeros, total = pruning.sparsity(layers)
    assert zeros == round(0.7 * total)  # exactly the target, kept through the steps after it
    assert trainer.callback_metrics["prune/sparsity"] == pytest.approx(0.7, abs=1e-4)
    saved = torch.load(checkpoint.last_model_path, weights_only=False)  # hparams hold a partial
    assert not any(key.endswith(("weight_orig", "weight_mask")) for key in saved["state_dict"])
    plain = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    plain.load_state_dict(saved["state_dict"])  # the unpruned model takes the checkpoint as it is
    pruned = {w.name: w.tensor for w in layers}
    for w in pruning.prunable_weights(plain.backbone):
        assert torch.equal(w.tensor == 0, pruned[w.name] == 0)


def test_a_schedule_rises_to_the_target_and_a_resumed_fit_keeps_its_masks(tmp_path):
    schedule = dict(sparsity=0.8, start_step=2, end_step=30, every_n_steps=4)
    trainer, task = fit(tmp_path, [GlobalMagnitudePruning(**schedule)], max_steps=12, limit_train_batches=21)
    zeros, total = pruning.sparsity(pruning.prunable_weights(task.backbone))
    reached = zeros / total
    assert 0.0 < reached < 0.8  # part-way up the cubic schedule at step 12 (its last pruning: step 10)
    assert reached == pytest.approx(pruning.cubic_sparsity(10, 0.8, 2, 30), abs=1e-4)
    path = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(path)
    earlier = {w.name: w.tensor == 0 for w in pruning.prunable_weights(task.backbone)}
    _, resumed = fit(tmp_path / "again", [GlobalMagnitudePruning(**schedule)], ckpt_path=path, max_steps=40,
                     limit_train_batches=21)  # fmt: skip
    layers = pruning.prunable_weights(resumed.backbone)
    zeros, total = pruning.sparsity(layers)
    assert zeros == round(0.8 * total)
    for w in layers:
        assert (w.tensor[earlier[w.name]] == 0).all()  # the masks of the first part came back


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(
        ConfigError, match=r"^GlobalMagnitudePruning: sparsity must lie between 0 and 1, got 1.2"
    ):
        GlobalMagnitudePruning(sparsity=1.2)
    with pytest.raises(ConfigError, match=r"need 0 <= start_step < end_step, got 10 and 5"):
        GlobalMagnitudePruning(sparsity=0.5, start_step=10, end_step=5)
    with pytest.raises(ConfigError, match=r"every_n_steps must be positive"):
        GlobalMagnitudePruning(sparsity=0.5, every_n_steps=0)


def test_schedule_holds_between_pruning_steps():
    pruner = GlobalMagnitudePruning(sparsity=0.8, start_step=10, end_step=110, every_n_steps=20)
    assert pruner.target_at(9) == 0.0 and pruner.target_at(10) == 0.0
    assert (
        pruner.target_at(35)
        == pruner.target_at(30)
        == pytest.approx(pruning.cubic_sparsity(30, 0.8, 10, 110))
    )
    assert pruner.target_at(110) == pruner.target_at(1000) == 0.8
    assert GlobalMagnitudePruning(sparsity=0.5, start_step=7).target_at(7) == 0.5


def test_checkpoints_and_resumption_cover_parameters_not_named_weight():
    # the MoE experts' w1 / w2 are pruned too: the checkpoint must hold them plain (w1, not w1_orig and
    # w1_mask) and the callback's state must restore their masks, as for an nn.Linear's weight
    from mlplab.models import registry
    from mlplab.nn import ChannelMLP

    def task() -> torch.nn.Module:
        torch.manual_seed(0)
        module = torch.nn.Module()
        module.backbone = registry.build("Transformer", 23, 16, embed_dim=8, depth=1, num_heads=1,
                                         channel_mlp=ChannelMLP(kind="moe", num_experts=4))  # fmt: skip
        return module

    pruned = task()
    pruner = GlobalMagnitudePruning(sparsity=0.5)
    pruner.setup(None, pruned, "fit")
    layers = pruning.prunable_weights(pruned.backbone)
    pruning.global_magnitude_prune(layers, 0.5)
    checkpoint = {"state_dict": pruned.state_dict()}
    pruner.on_save_checkpoint(None, pruned, checkpoint)
    state = checkpoint["state_dict"]
    assert not any(key.endswith(("_orig", "_mask")) for key in state)
    assert torch.equal(state["backbone.blocks.0.mlp.w1"], pruned.backbone.blocks[0].mlp.w1)
    plain = task()
    plain.load_state_dict(state)  # the unpruned model takes it
    assert (plain.backbone.blocks[0].mlp.w1 == 0).any()
    resumed = GlobalMagnitudePruning(sparsity=0.5)
    resumed.load_state_dict(pruner.state_dict())
    resumed.on_train_start(None, plain)
    for w in pruning.prunable_weights(plain.backbone):
        assert w.mask is not None and torch.equal(w.tensor == 0, dict(pruning.masks(layers))[w.name] == 0)
