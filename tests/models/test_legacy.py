"""What mlplab saved before the family registry still loads: old argument names, old state-dict keys.

``legacy_checkpoints.json`` records, for a tiny model of every family, the arguments (under their names
then) and the state-dict keys and shapes that mlplab saved at commit 4b8e984, before the registry.
Renamed arguments must map onto today's through the registry, and the saved keys (after
:func:`mlplab.models.registry.upgrade_state_dict`) must be exactly today's, with the same shapes, but
for the weights of a layout change the family declares (``CHANGED_LAYOUT``); a checkpoint in the old
layout loads into a task. (The same snapshot, with its weights, gave the same
outputs before and after the restructuring; the weights are not kept in the repository.)
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from mlplab.models import registry
from mlplab.nn import ChannelMLP

LEGACY = json.loads((Path(__file__).parent / "legacy_checkpoints.json").read_text())["families"]


def current(name: str) -> tuple[registry.FamilySpec, tuple, dict]:
    """The family, its data shapes and its arguments under today's names."""
    spec, saved = registry.get(name), LEGACY[name]
    args = {spec.renamed.get(key, key): value for key, value in saved["args"].items()}
    if saved["conventional_channel_mlp"]:
        args["channel_mlp"] = ChannelMLP()
    shapes = tuple(tuple(s) if isinstance(s, list) else s for s in saved["shapes"])
    return spec, shapes, args


#: The weights whose layout changed since the snapshot in a way no key rule maps (the family declares it in
#: ``layout_changes``, and a checkpoint holding them is refused with that line): left out of the comparison.
CHANGED_LAYOUT = {"HopfieldLM": r"\.mixer\.lookup\."}


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_old_state_dict_keys_load_into_todays_family(name):
    spec, shapes, args = current(name)
    with torch.device("meta"):
        model = spec.cls(*shapes, **args)
    old = {key: torch.empty(shape, device="meta") for key, shape in LEGACY[name]["state_dict"].items()}
    upgraded = registry.upgrade_state_dict(model, old)
    now = model.state_dict()
    if name in CHANGED_LAYOUT:
        assert spec.layout_changes, f"{name}: a layout change the refusal of old checkpoints does not name"
        changed = re.compile(CHANGED_LAYOUT[name])
        assert any(changed.search(key) for key in upgraded) and any(changed.search(key) for key in now)
        upgraded = {key: value for key, value in upgraded.items() if not changed.search(key)}
        now = {key: value for key, value in now.items() if not changed.search(key)}
    assert sorted(upgraded) == sorted(now)
    assert all(tuple(upgraded[key].shape) == tuple(now[key].shape) for key in now)


def test_an_old_transformer_checkpoint_loads_into_the_language_model_task():
    from mlplab.tasks import LanguageModeling

    spec, (vocab, context), args = current("Transformer")
    task = LanguageModeling(functools.partial(spec.cls, **args), vocab_size=vocab, context_length=context)
    state = {
        f"backbone.{key}": torch.zeros(shape) for key, shape in LEGACY["Transformer"]["state_dict"].items()
    }
    assert any(".attn." in key for key in state)  # the old layout
    checkpoint = {"state_dict": state, "hyper_parameters": {"vocab_size": vocab, "context_length": context}}
    task.on_load_checkpoint(checkpoint)
    task.load_state_dict(checkpoint["state_dict"])
    assert torch.count_nonzero(task.backbone.blocks[0].mixer.qkv.weight) == 0


def test_an_old_config_uses_the_new_argument_names_with_a_warning():
    old = {
        "class_path": "mlplab.models.Transformer",
        "init_args": {"d_model": 32, "n_layers": 2, "n_heads": 4},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        new = registry.expand_config({"backbone": old}, where="model.init_args")
    assert new["backbone"]["init_args"] == {"embed_dim": 32, "depth": 2, "num_heads": 4}
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert (
        "model.init_args.backbone: Transformer's argument 'd_model' is now called 'embed_dim'" in messages[0]
    )


def test_an_old_run_config_parses(tmp_path):
    from mlplab.cli import MLPLabCLI

    config = {
        "model": {
            "class_path": "mlplab.tasks.AssociativeRecall",
            "init_args": {
                "backbone": {
                    "class_path": "mlplab.models.Transformer",
                    "init_args": {"d_model": 16, "n_layers": 1, "n_heads": 2, "channel_mlp": None},
                }
            },
        },
        "data": {
            "class_path": "mlplab.data.MQARDataModule",
            "init_args": {"preset": "64x4", "num_train_examples": 8, "num_test_examples": 8},
        },
    }
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(config))
    with pytest.warns(FutureWarning, match="'n_heads' is now called 'num_heads'"):
        built = MLPLabCLI(args=["--config", "old.yaml"], run=False).model
    assert built.backbone.embed_dim == 16 and len(built.backbone.blocks) == 1


def test_an_old_argument_on_the_command_line_is_one_line_that_names_the_new_one(cli, capsys, tmp_path):
    args = ["fit", "--model=AssociativeRecall", "--model.backbone=Transformer", "--model.backbone.d_model=16"]
    assert cli(*args, "--data=MQARDataModule") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: model.backbone: Transformer has no argument 'd_model' (it is now called 'embed_dim') "
        "(see --help)"
    )
