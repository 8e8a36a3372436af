"""Every YAML under configs/ parses and runs one training and one validation batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require_data

RECIPES = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name not in ("trainer", "sweeps"))
PRESETS = sorted((REPO / "configs" / "trainer").glob("*.yaml"))
TINY = ["--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu", "--data.init_args.batch_size", "8"]


def data_overrides(recipe: Path) -> list[str]:
    """Point a recipe at the real data in $MLPLAB_DATA (or skip); the CI machine has only some files."""
    data = yaml.safe_load(recipe.read_text())["data"]["class_path"]
    if data == "MNISTDataModule":
        require_data("mnist/t10k-images-idx3-ubyte.gz")
        return ["--data.source_split", "test"]  # only the official test split is available here
    if data == "CIFAR10DataModule":
        archive = require_data("cifar10-jpg.tar.gz") / "cifar10-jpg.tar.gz"
        return ["--data", "ImageFolderDataModule", f"--data.root={archive}", "--data.max_images_per_class=20",
                "--data.num_val=20"]  # fmt: skip
    if data == "CharTextDataModule":
        require_data("tinyshakespeare.txt")
        # a 32-character context and a 4-character sample keep the 10M-parameter models quick on a CPU
        return ["--data.init_args.context_length=32", "--model.init_args.sample_length=4"]
    if data == "MQARDataModule":
        return ["--data.init_args.preset=64x4", "--data.init_args.num_train_examples=64",
                "--data.init_args.num_test_examples=16"]  # fmt: skip
    return []


def test_every_recipe_is_tested():
    assert len(RECIPES) >= 8 and len(PRESETS) >= 3


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_recipe_runs_one_batch(recipe, cli):
    assert cli("fit", "--config", str(recipe), *data_overrides(recipe), *TINY) == 0


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_trainer_preset_composes_with_a_recipe(preset, cli):
    recipe = REPO / "configs" / "quickstart.yaml"
    assert cli("fit", "--config", str(preset), "--config", str(recipe), *TINY) == 0
