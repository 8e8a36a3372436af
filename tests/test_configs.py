"""Every YAML under configs/ parses and runs one training and one validation batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from mlplab.callbacks import leading_batch_size
from mlplab.tasks.base import Task
from tests.conftest import REPO, cifar10_jpeg_subset, require_data

RECIPES = sorted(
    p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name not in ("trainer", "sweeps", "logger")
)  # the logger presets are run by tests/test_loggers.py
#: Presets that start a process group: each run in processes of its own by tests/ddp (in pytest's process
#: the group would outlive the test).
DISTRIBUTED_PRESETS = ("ddp.yaml",)
PRESETS = sorted(
    p for p in (REPO / "configs" / "trainer").glob("*.yaml") if p.name not in DISTRIBUTED_PRESETS
)
TINY = ["--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu", "--data.init_args.batch_size", "8"]


def data_overrides(recipe: Path) -> list[str]:
    """Point a recipe at the real data in $MLPLAB_DATA (or skip); the CI machine has only some files."""
    loaded = yaml.safe_load(recipe.read_text())["data"]
    data = loaded["class_path"]
    if data == "MNISTDataModule":
        require_data("mnist/t10k-images-idx3-ubyte.gz")
        return ["--data.source_split", "test"]  # only the official test split is available here
    if data == "CIFAR10DataModule":
        archive = require_data("cifar10-jpg.tar.gz") / "cifar10-jpg.tar.gz"
        return ["--data", "ImageFolderDataModule", f"--data.root={cifar10_jpeg_subset(archive)}",
                "--data.max_images_per_class=20", "--data.num_val=20"]  # fmt: skip
    if data == "ETTDataModule":
        require_data("ETTh1.csv")  # every ETT recipe is an ETTh1 one
    if data == "CharTextDataModule":
        require_data("tinyshakespeare.txt")
        # a 32-character context and a 4-character sample keep the 10M-parameter models quick on a CPU
        return ["--data.init_args.context_length=32", "--model.init_args.sample_length=4"]
    if data == "TabularDataModule":
        # the downloaded benchmarks are replaced by offline tables of the same kind (regression; classes
        # with categorical columns)
        offline = {"california_housing": "diabetes", "adult": "penguins"}
        dataset = loaded["init_args"].get("dataset")
        return [f"--data.init_args.dataset={offline[dataset]}"] if dataset in offline else []
    if data == "ImageFittingDataModule":  # the bundled images, fitted at 16 pixels
        from mlplab.data.fields import bundled_image

        image = loaded["init_args"].get("image")
        # scikit-image's images come with the fields extra; without it, scikit-learn's china stands in
        substitute = [] if bundled_image(image) is not None else ["--data.init_args.image=china"]
        return ["--data.init_args.size=16", *substitute]
    if data == "FunctionDataModule":
        return [
            "--data.init_args.num_train=64",
            "--data.init_args.num_val=16",
            "--data.init_args.num_test=16",
        ]
    if data == "MQARDataModule":
        return ["--data.init_args.preset=64x4", "--data.init_args.num_train_examples=64",
                "--data.init_args.num_test_examples=16"]  # fmt: skip
    return []


def test_every_recipe_is_tested():
    assert len(RECIPES) >= 8 and len(PRESETS) >= 3


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_recipe_runs_one_batch(recipe, cli, monkeypatch):
    trained, summarised = [], []  # (task, the backbone's input of the first training batch); counts
    record, count = Task.record_flops, Task.forward_flops
    monkeypatch.setattr(Task, "record_flops", lambda task, x: trained.append((task, x)) or record(task, x))
    monkeypatch.setattr(Task, "forward_flops", lambda task: summarised.append(count(task)) or summarised[-1])
    assert cli("fit", "--config", str(recipe), *data_overrides(recipe), *TINY) == 0
    # the model summary counted FLOPs, with inputs of the shapes and types the training batches have
    # (FLOPs depend on nothing else; counting the training FLOPs again took a MAXIM recipe 4 s more)
    assert summarised and summarised[0]["backbone"] > 0
    task, backbone_input = trained[0]
    example = task.example_backbone_input(leading_batch_size(backbone_input))
    assert task.flops_per_batch > 0
    assert layout(example) == layout(backbone_input)


def layout(inputs: object) -> object:
    """The shapes and dtypes of a backbone input (a tensor, or a tuple of tensors and ``None``)."""
    if isinstance(inputs, (tuple, list)):
        return tuple(layout(item) for item in inputs)
    if isinstance(inputs, torch.Tensor):
        return tuple(inputs.shape), inputs.dtype
    return inputs


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_trainer_preset_composes_with_a_recipe(preset, cli):
    recipe = REPO / "configs" / "quickstart.yaml"
    assert cli("fit", "--config", str(preset), "--config", str(recipe), *TINY) == 0


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_a_trainer_preset_keeps_the_callbacks_of_a_recipe_in_either_order(preset, cli, capsys):
    # gpu-bf16.yaml listed a progress bar under trainer.callbacks: composed after a recipe it replaced the
    # recipe's list (S-KAN's ActivationSelection, the forecasters' EarlyStopping) without a word
    recipe = str(REPO / "configs" / "kan" / "skan_exp_sin.yaml")
    for order in ([str(preset), recipe], [recipe, str(preset)]):
        capsys.readouterr()
        assert cli("fit", "--config", order[0], "--config", order[1], "--print_config") == 0
        callbacks = yaml.safe_load(capsys.readouterr().out)["trainer"]["callbacks"]
        assert [c["class_path"] for c in callbacks] == ["mlplab.callbacks.ActivationSelection"], order


@pytest.mark.parametrize("profile_first", [True, False], ids=["profile-first", "recipe-first"])
def test_the_profile_preset_validates_by_batches_in_either_order(cli, tmp_path, caplog, profile_first):
    # Composed before a recipe with an epoch cadence (KAN's check_val_every_n_epoch: 10), the recipe's
    # value won, and Lightning refused val_check_interval 10 with the 7 training batches of an epoch
    # ("`val_check_interval` (10) must be less than or equal to the number of the training batches").
    # Now the preset's null is kept in either order, and that is said in one line.
    import logging

    profile = str(REPO / "configs" / "trainer" / "profile.yaml")
    recipe = str(REPO / "configs" / "kan" / "kan_exp_sin.yaml")
    files = [profile, recipe] if profile_first else [recipe, profile]
    caplog.set_level(logging.INFO)
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    args = ["--config", files[0], "--config", files[1], *quiet, f"--trainer.default_root_dir={tmp_path}"]
    assert cli("fit", *args) == 0
    run = tmp_path / "lightning_logs" / "version_0"
    trainer = yaml.safe_load((run / "config.yaml").read_text())["trainer"]
    assert (trainer["val_check_interval"], trainer["check_val_every_n_epoch"]) == (10, None)
    assert list(run.glob("fit-profile-*validation_step*.pt.trace.json"))  # validated within the 20 steps
    # KAN validates on one batch: under Lightning's PyTorchProfiler that stage replaced the schedule for
    # the whole run and no training_step trace was written. StepProfiler records steps 3-5 of training.
    (trace,) = run.glob("fit-profile-*training_step*.pt.trace.json")
    events = json.loads(trace.read_text())["traceEvents"]
    steps = [e for e in events if e.get("name", "").endswith("SingleDeviceStrategy.training_step")]
    assert len(steps) == 3
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trainer.check_val_every")]
    assert said == (
        [
            f"trainer.check_val_every_n_epoch: null from {profile} (validation every 10 training batches, "
            f"across epochs) is kept over 10 from {recipe}, composed after it, as in the other order; "
            "--trainer.check_val_every_n_epoch sets it"
        ]
        if profile_first
        else []
    )


def test_the_command_line_still_sets_check_val_every_n_epoch_over_the_profile_preset(cli, capsys):
    profile = str(REPO / "configs" / "trainer" / "profile.yaml")
    recipe = str(REPO / "configs" / "kan" / "kan_exp_sin.yaml")
    given = ["--config", profile, "--config", recipe, "--trainer.check_val_every_n_epoch=3", "--print_config"]
    assert cli("fit", *given) == 0
    assert yaml.safe_load(capsys.readouterr().out)["trainer"]["check_val_every_n_epoch"] == 3


def test_profile_preset_writes_the_summary_and_a_chrome_trace(cli, tmp_path):
    # fast_dev_run (the smoke tests above) turns the logger off, so nothing is written there; a real
    # run writes the summary table and the trace into the run's log folder.
    args = ["--config", str(REPO / "configs" / "trainer" / "profile.yaml"),
            "--config", str(REPO / "configs" / "quickstart.yaml"),
            "--trainer.accelerator", "cpu", "--model.init_args.backbone.init_args.embed_dim", "64",
            "--model.init_args.backbone.init_args.mlp_dim", "16",
            "--data.init_args.batch_size", "8", "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    assert cli("fit", *args) == 0
    run = tmp_path / "lightning_logs" / "version_0"
    summary = (run / "fit-profile.txt").read_text()
    assert summary.startswith("FIT Profiler Report") and "Self CPU time total" in summary
    traces = list(run.glob("fit-profile-*training_step*.pt.trace.json"))
    assert traces and traces[0].stat().st_size > 1000
    # its 20 steps ended before the first validation of an epoch of more than 20 batches (as here):
    # the header's promise of profiled validation steps was never kept
    assert list(run.glob("fit-profile-*validation_step*.pt.trace.json"))


EARLY_STOPPING_RECIPES = [recipe for recipe in RECIPES if "callbacks.EarlyStopping" in recipe.read_text()]


@pytest.mark.parametrize("recipe", EARLY_STOPPING_RECIPES, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_the_recipes_stop_early_after_validation(recipe):
    # EarlyStopping checked at the end of each training epoch by default: a fit that max_steps ends in
    # the middle of an epoch (no validation) ended with Lightning's RuntimeError "Early stopping
    # conditioned on metric `val/acc` which is not available" and its traceback (MQAR, then the
    # forecasting and tabular recipes)
    callbacks = (yaml.safe_load(recipe.read_text()).get("trainer") or {}).get("callbacks") or []
    [stopping] = [c for c in callbacks if c["class_path"].endswith("EarlyStopping")]
    assert stopping["init_args"]["check_on_train_epoch_end"] is False


def test_a_forecasting_recipe_cut_by_max_steps_mid_epoch_finishes(cli):
    require_data("ETTh1.csv")
    recipe = REPO / "configs" / "timeseries" / "dlinear_etth1_96.yaml"
    quiet = ["--trainer.max_steps=2", "--trainer.enable_progress_bar=false", "--trainer.logger=false",
             "--trainer.enable_model_summary=false", "--data.init_args.batch_size=8"]  # fmt: skip
    assert cli("fit", "--config", str(recipe), *data_overrides(recipe), *quiet) == 0


def test_an_mqar_recipe_cut_by_max_steps_mid_epoch_finishes(cli):
    recipe = REPO / "configs" / "text" / "transformer_mqar.yaml"
    backbone = "--model.init_args.backbone.init_args"
    tiny = [f"{backbone}.embed_dim=16", f"{backbone}.depth=1",
            "--trainer.max_steps=2", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.logger=false",
            "--data.init_args.batch_size=8", "--data.init_args.vocab_size=128"]  # fmt: skip
    assert cli("fit", "--config", str(recipe), *data_overrides(recipe), *tiny) == 0  # 8 batches per epoch
