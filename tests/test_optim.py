"""Training defaults: weight-decay groups, the warm-up + cosine schedule, torch's OneCycleLR over the run."""

from __future__ import annotations

import functools
import math
import warnings

import lightning as L
import pytest
import torch
from torch import nn

from mlplab.errors import ConfigError
from mlplab.models import HourglassMLP, Transformer
from mlplab.optim import OneCycle, WarmupCosine, build_optimizer, weight_decay_groups
from mlplab.tasks import ImageRestoration, LanguageModeling


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.pos = nn.Parameter(torch.zeros(1, 3, 4))
        self.norm = nn.LayerNorm(4)
        self.proj = nn.Linear(4, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.frozen = nn.Linear(4, 4, bias=False).requires_grad_(False)

    def no_weight_decay(self) -> set[str]:
        return {"pos"}


def names(module: nn.Module, groups: list) -> list[tuple[set[str], float | None]]:
    by_id = {id(p): n for n, p in module.named_parameters()}
    return [({by_id[id(p)] for p in group["params"]}, group.get("weight_decay")) for group in groups]


def test_weight_decay_leaves_out_norms_biases_and_embeddings_by_default():
    model = Small()
    assert names(model, weight_decay_groups(model)) == [
        ({"proj.weight"}, None),
        ({"embed.weight", "pos", "norm.weight", "norm.bias", "proj.bias"}, 0.0),
    ]
    assert names(model, weight_decay_groups(model, "norms_biases")) == [  # nanoGPT's: tables decay
        ({"embed.weight", "pos", "proj.weight"}, None),
        ({"norm.weight", "norm.bias", "proj.bias"}, 0.0),
    ]
    assert names(model, weight_decay_groups(model, "nothing")) == [
        ({"embed.weight", "pos", "norm.weight", "norm.bias", "proj.weight"} | {"proj.bias"}, None)
    ]
    optimizer = torch.optim.AdamW(weight_decay_groups(model), lr=1e-3, weight_decay=0.1)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]


def test_a_decayed_and_an_exempt_parameter_move_as_adamw_says():
    model = Small()
    optimizer = torch.optim.AdamW(weight_decay_groups(model), lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # zero gradients: only the decoupled weight decay acts
    assert torch.equal(model.norm.weight, before["norm.weight"])
    assert torch.equal(model.embed.weight, before["embed.weight"])
    assert torch.allclose(model.proj.weight, before["proj.weight"] * (1 - 0.1 * 0.5))


def test_the_task_hands_the_groups_to_its_optimizer_and_refuses_an_unknown_choice():
    task = LanguageModeling(functools.partial(Transformer, embed_dim=16, depth=1, num_heads=2),
                            vocab_size=11, context_length=8, vocabulary="abcdefghijk")  # fmt: skip
    task.trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False)
    optimizer = task.configure_optimizers()["optimizer"]
    decayed, exempt = optimizer.param_groups
    assert exempt["weight_decay"] == 0.0 and decayed["weight_decay"] == 0.01  # AdamW's default
    assert all(p.ndim == 2 for p in decayed["params"])
    assert any(p is task.backbone.embedding.weight for p in exempt["params"])
    with pytest.raises(ConfigError, match="exclude_from_weight_decay must be .* got 'biases'"):
        ImageRestoration(HourglassMLP, (1, 8, 8), num_classes=10, exclude_from_weight_decay="biases")


def test_a_checkpoint_with_one_parameter_group_resumes_with_one():
    task = LanguageModeling(functools.partial(Transformer, embed_dim=16, depth=1, num_heads=2),
                            vocab_size=11, context_length=8, vocabulary="abcdefghijk")  # fmt: skip
    task.trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False)
    saved = {"optimizer_states": [{"param_groups": [{"params": list(range(9))}]}]}
    task.on_load_checkpoint({**saved, "state_dict": task.state_dict()})
    with pytest.warns(UserWarning, match="keeps decaying every parameter"):
        optimizer = task.configure_optimizers()["optimizer"]
    assert len(optimizer.param_groups) == 1


def test_adam_and_adamw_run_fused_unless_the_config_says_otherwise():
    task = LanguageModeling(functools.partial(Transformer, embed_dim=16, depth=1, num_heads=2),
                            vocab_size=11, context_length=8, vocabulary="abcdefghijk")  # fmt: skip
    task.trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False)
    optimizer = task.configure_optimizers()["optimizer"]
    assert type(optimizer) is torch.optim.AdamW
    assert [group["fused"] for group in optimizer.param_groups] == [True, True]

    model = Small()
    # as LightningCLI's OptimizerCallable hands them: the class's every argument, unset ones None
    for kind, given, fused in [
        (torch.optim.Adam, {}, True),
        (torch.optim.AdamW, {"fused": None, "foreach": None, "differentiable": False}, True),
        (torch.optim.AdamW, {"fused": False}, False),  # said: torch's own choice
        (torch.optim.AdamW, {"foreach": True}, None),
        (torch.optim.AdamW, {"differentiable": True}, None),
    ]:
        built = build_optimizer(functools.partial(kind, lr=1e-3, **given), weight_decay_groups(model))
        assert type(built) is kind and built.param_groups[0]["fused"] is fused, (kind, given)
    assert build_optimizer(torch.optim.AdamW, iter(model.parameters())).param_groups[0]["fused"] is True
    sgd = build_optimizer(functools.partial(torch.optim.SGD, lr=0.1), weight_decay_groups(model))
    assert sgd.param_groups[0]["fused"] is None


def test_fused_adamw_takes_the_steps_torchs_own_takes():
    torch.manual_seed(0)
    models = [Small(), Small()]
    models[1].load_state_dict(models[0].state_dict())
    fused, plain = (build_optimizer(functools.partial(torch.optim.AdamW, lr=0.01, fused=choice),
                                    weight_decay_groups(model))
                    for choice, model in zip([None, False], models))  # fmt: skip
    assert fused.param_groups[0]["fused"] is True and plain.param_groups[0]["fused"] is False
    tokens = torch.randint(0, 10, (8, 3))
    for _ in range(5):
        for model, optimizer in zip(models, (fused, plain)):
            out = model.norm(model.embed(tokens) + model.pos)
            loss = model.head(model.proj(out)).logsumexp(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def nanogpt_lr(it: int, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=5000) -> float:
    """nanoGPT's get_lr (train.py), with its warm-up counted as mlplab counts it ((it + 1) / warmup)."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (learning_rate - min_lr)


def test_warmup_cosine_is_nanogpts_schedule():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = WarmupCosine(optimizer, total_steps=5000, warmup_steps=100, final_fraction=0.1)
    for step in range(5001):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(nanogpt_lr(step), rel=1e-9, abs=1e-12)
        optimizer.step()
        schedule.step()


def test_torch_one_cycle_over_the_run_matches_the_hand_written_one():
    def run(factory) -> list[tuple[float, float]]:
        task = ImageRestoration(functools.partial(HourglassMLP, embed_dim=16, mlp_dim=4, depth=1),
                                image_shape=(1, 4, 4), num_classes=2, lr_scheduler=factory,
                                optimizer=functools.partial(torch.optim.Adam, lr=0.01))  # fmt: skip
        task.trainer = L.Trainer(max_steps=40, logger=False, enable_checkpointing=False)
        config = task.configure_optimizers()
        optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
        seen = []
        for _ in range(40):
            seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"][0]))
            optimizer.step()
            scheduler.step()
        return seen

    keywords = {"total_steps": None, "epochs": None, "steps_per_epoch": None, "pct_start": 0.2}
    torch_lrs = run(functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01, **keywords))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ours = run(functools.partial(OneCycle, pct_start=0.2))
    assert [value for pair in torch_lrs for value in pair] == pytest.approx(
        [value for pair in ours for value in pair], rel=1e-9
    )
    assert max(lr for lr, _ in torch_lrs) == pytest.approx(0.01)


def test_a_schedule_that_cannot_span_the_run_is_one_line():
    # torch's OneCycleLR divides by pct_start * total_steps - 1: zero for a 5-step smoke run at 0.2
    # (the TimeMixer recipes' pct_start), which ended in a ZeroDivisionError traceback.
    schedule = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01, pct_start=0.2)
    task = ImageRestoration(functools.partial(HourglassMLP, embed_dim=16, mlp_dim=4, depth=1),
                            image_shape=(1, 4, 4), num_classes=2, lr_scheduler=schedule)  # fmt: skip
    task.trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False)
    message = (
        "model.lr_scheduler: OneCycleLR cannot be built for a run of 5 optimiser steps (float division by "
        "zero); run more (or fewer) steps, or set its total_steps"
    )
    with pytest.raises(ConfigError, match=f"^{message}$".replace("(", "\\(").replace(")", "\\)")):
        task.configure_optimizers()


def test_the_hand_written_one_cycle_says_it_is_deprecated():
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.01)
    with pytest.warns(FutureWarning, match="torch.optim.lr_scheduler.OneCycleLR"):
        OneCycle(optimizer, total_steps=10)
