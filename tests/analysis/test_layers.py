"""Removing residual blocks and branches: the ``dropped_layers`` surgery and its refusals."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from mlplab.analysis.layers import DroppedBlock, DroppedBranch, drop_layers, non_residual_families, sublayers
from mlplab.errors import ConfigError
from mlplab.models import registry
from tests.models.domains import HARNESSES
from tests.models.test_registry import LAYOUTS, tiny


def test_the_families_without_a_block_layout():
    # named in README.md and docs/analysis.md: keep them in step
    assert sorted(non_residual_families()) == [
        "CAM", "CoordinateMLP", "DLinear", "FinalMLP", "GaussianRBFNet", "KAN", "MAXIM", "PatchTST",
        "SIREN", "SKAN", "StandardMLP", "TabM", "TabularMLP",
    ]  # fmt: skip


@pytest.mark.parametrize("name", LAYOUTS)
def test_a_dropped_branch_adds_nothing_and_its_weights_leave(name):
    spec = registry.get(name)
    domain = spec.domains[0]
    model, shapes, data_args = tiny(name, domain)
    model.eval()
    batch = HARNESSES[domain].batch(shapes, data_args)
    part = (
        "attention"
        if any(s.part == "attention" for s in sublayers(model, spec.blocks, "attention"))
        else "mlp"
    )
    target = sublayers(model, spec.blocks, part)[0]
    branch = model.get_submodule(target.path)
    zeroing = branch.register_forward_hook(lambda module, args, output: torch.zeros_like(output))
    with torch.no_grad():
        expected = model(*batch.args, **batch.kwargs)
    zeroing.remove()
    keys = set(model.state_dict())
    drop_layers(model, [target.path])
    assert isinstance(model.get_submodule(target.path), DroppedBranch)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch.args, **batch.kwargs), expected)
    left = set(model.state_dict())
    assert keys - left == {key for key in keys if key.startswith(target.path + ".")}  # PoolFormer's: none
    assert target not in sublayers(model, spec.blocks, part)


def test_a_dropped_block_is_skipped():
    torch.manual_seed(0)
    model = registry.build("Transformer", 23, 24, embed_dim=16, depth=3, num_heads=2).eval()
    tokens = torch.randint(0, 23, (2, 24))
    with torch.no_grad():
        x = model.embed(tokens)
        x = model.blocks[2](model.blocks[0](x))
        expected = model.head(model.norm(x))
        drop_layers(model, ["blocks.1"])
        assert isinstance(model.blocks[1], DroppedBlock)
        torch.testing.assert_close(model(tokens), expected)
    assert not any(key.startswith("blocks.1.") for key in model.state_dict())


def test_a_path_that_is_not_a_block_or_branch_is_refused_in_one_line():
    model = registry.build("Transformer", 23, 24, embed_dim=16, depth=2, num_heads=2)
    with pytest.raises(ConfigError) as error:
        drop_layers(model, ["blocks.0.norm1"])
    assert str(error.value) == (
        "model.dropped_layers: 'blocks.0.norm1' is neither a residual block of Transformer (blocks.0 .. "
        "blocks.1) nor one of their branches (mixer, mlp)"
    )
    with pytest.raises(ConfigError, match="'blocks.7' is neither"):
        drop_layers(model, ["blocks.7"])


def test_families_without_a_layout_are_refused_in_one_line():
    model = registry.build("DLinear")
    with pytest.raises(ConfigError) as error:
        drop_layers(model, ["linear"])
    assert str(error.value).startswith(
        "model.dropped_layers: DLinear is not a stack of residual blocks (no block layout; the families "
        "without one are "
    )
    with pytest.raises(ConfigError, match=r"Sequential is not a registered family"):
        drop_layers(nn.Sequential(nn.Linear(2, 2)), ["0"])
    assert drop_layers(model, []) is model  # nothing to drop: no layout needed


def test_a_task_built_with_dropped_layers_has_them_removed():
    from mlplab.models import Transformer
    from mlplab.tasks import LanguageModeling

    backbone = functools.partial(Transformer, embed_dim=16, depth=2, num_heads=2)
    full = LanguageModeling(backbone, vocab_size=11, context_length=8)
    dropped = LanguageModeling(backbone, vocab_size=11, context_length=8, dropped_layers=["blocks.1.mixer"])
    assert isinstance(dropped.backbone.blocks[1].mixer, DroppedBranch)
    missing = set(full.state_dict()) - set(dropped.state_dict())
    assert missing and all(key.startswith("backbone.blocks.1.mixer.") for key in missing)
    assert dropped.hparams["dropped_layers"] == ["blocks.1.mixer"]
    assert "dropped_layers" in LanguageModeling.architecture_arguments
    tokens = torch.randint(0, 11, (2, 8))
    assert dropped.measure_flops(tokens) < full.measure_flops(tokens)  # FLOPs are counted without them
