"""Activation density of the channel MLPs and DEFT's density loss (Runwal et al. 2024)."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch

from mlplab.analysis.density import ActivationDensity, DensityProbe, hidden_activations
from mlplab.errors import ConfigError
from mlplab.models import registry


def counting_hooks(modules):
    counts = {"active": 0, "size": 0, "terms": []}

    def hook(module, args, output):
        counts["active"] += int((output != 0).sum())
        counts["size"] += output.numel()
        squared = output.detach().float().square()
        counts["terms"].append((squared / (squared + 1e-7)).mean().item())

    return counts, [m.register_forward_hook(hook) for m in modules]


def test_the_hidden_activations_are_the_channel_mlps_per_block():
    model = registry.build("Transformer", 23, 24, embed_dim=16, depth=3, num_heads=2)
    found = hidden_activations(model)
    assert [(group, path) for group, path, _ in found] == [
        ("block0", "blocks.0.mlp.act"), ("block1", "blocks.1.mlp.act"), ("block2", "blocks.2.mlp.act")
    ]  # fmt: skip
    flat = hidden_activations(registry.build("StandardMLP"))  # no layout: every activation, its own group
    assert flat and all(group == path for group, path, _ in flat)


def test_eval_counts_and_training_loss_follow_deft():
    torch.manual_seed(0)
    model = registry.build("HourglassMLP")  # ReLU: exact zeros
    probe = DensityProbe(model, ActivationDensity(weight=1.0))
    counts, hooks = counting_hooks([module for _, _, module in probe.activations])
    images = torch.rand(8, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        model(images)
    measured = {group: (float(active), size) for group, active, size in probe.pop_counts()}
    assert measured[""] == (counts["active"], counts["size"])
    assert set(measured) == {"", "block0", "block1"} and 0 < counts["active"] < counts["size"]
    assert probe.pop_loss() is None  # evaluation leaves no loss
    model.train()
    counts["terms"].clear()
    model(images)
    loss = probe.pop_loss()
    # DEFT's compute_l0_penalty: mean over layers (and samples) of mean(a^2 / (a^2 + eps))
    assert loss.item() == pytest.approx(sum(counts["terms"]) / len(counts["terms"]), rel=1e-5)
    assert loss.requires_grad and probe.pop_loss() is None
    assert list(probe.pop_counts()) == []  # training mode counts nothing
    for hook in hooks:
        hook.remove()
    probe.remove()
    assert not any(m._forward_hooks for m in model.modules())


def test_a_threshold_counts_only_large_activations():
    torch.manual_seed(0)
    model = registry.build("HourglassMLP").eval()
    images = torch.rand(8, 1, 8, 8)
    shares = []
    for threshold in (0.0, 0.05, 1e9):
        probe = DensityProbe(model, ActivationDensity(threshold=threshold))
        with torch.no_grad():
            model(images)
        _, active, size = list(probe.pop_counts())[-1]
        shares.append(float(active) / size)
        probe.remove()
    assert shares[0] > shares[1] > shares[2] == 0.0


def test_the_density_loss_lowers_the_density():
    # eps sets the scale below which an activation counts as zero: the loss's gradient, 2 a eps / (a^2 +
    # eps)^2, acts on activations within a few sqrt(eps) of zero; DEFT's 1e-7 needs far longer than 40 steps
    def trained_density(weight: float) -> float:
        torch.manual_seed(0)
        model = registry.build("HourglassMLP")
        probe = DensityProbe(model, ActivationDensity(weight=weight, eps=1e-2))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        images = torch.rand(32, 1, 8, 8)
        for _ in range(40):
            loss = torch.nn.functional.mse_loss(model(images), images)
            extra = probe.pop_loss()
            loss = loss + weight * extra if extra is not None else loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            model(images)
        *_, (_, active, size) = probe.pop_counts()
        return float(active) / size

    assert trained_density(0.1) < trained_density(0.0) - 0.1  # 0.29 against 0.45


def test_settings_and_families_it_cannot_measure_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^model.density.weight must be 0 or positive, got -1"):
        ActivationDensity(weight=-1)
    with pytest.raises(ConfigError, match=r"^model.density.eps must be positive"):
        ActivationDensity(eps=0)
    with pytest.raises(ConfigError, match=r"^model.density.threshold must be 0 or positive"):
        ActivationDensity(threshold=-0.1)
    with pytest.raises(ConfigError) as error:
        DensityProbe(registry.build("Mamba"), ActivationDensity())  # mixer-only blocks: no channel MLP
    assert str(error.value) == (
        "model.density: Mamba has no channel-MLP hidden activation to measure (no ReLU / GELU / ... module "
        "in its channel MLPs)"
    )
    with pytest.raises(ConfigError, match="DLinear has no channel-MLP hidden activation"):
        DensityProbe(registry.build("DLinear"), ActivationDensity())


def test_a_task_logs_density_per_block_and_adds_the_loss():
    from mlplab.data import DigitsDataModule
    from mlplab.models import HourglassMLP
    from mlplab.tasks import ImageRestoration

    backbone = functools.partial(HourglassMLP, embed_dim=64, mlp_dim=16, depth=2)
    task = ImageRestoration(backbone, (1, 8, 8), 10, density=ActivationDensity(weight=0.5))
    data = DigitsDataModule(batch_size=64, normalize=False)
    quiet = dict(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=3, limit_val_batches=2, num_sanity_val_steps=0, **quiet
    )
    trainer.fit(task, datamodule=data)
    logged = trainer.callback_metrics
    assert {"train/density_loss", "val/density", "val/density/block0", "val/density/block1"} <= set(logged)
    # the logged share is the exact share over the evaluated batches (weighted by their sizes)
    counts, hooks = counting_hooks([module for _, _, module in task.density_probe.activations])
    metrics = trainer.validate(task, datamodule=data, verbose=False)[0]
    for hook in hooks:
        hook.remove()
    assert metrics["val/density"] == pytest.approx(counts["active"] / counts["size"], rel=1e-6)
    tested = trainer.test(task, datamodule=data, verbose=False)[0]
    assert 0 < tested["test/density/block1"] < 1
