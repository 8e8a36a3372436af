"""The command line on text: a character model end to end, and one-line errors for sequence mistakes."""

from __future__ import annotations

import inspect

import torch
import yaml

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TINY_LM = {
    "trainer": {"max_epochs": 1, "limit_val_batches": 2, "log_every_n_steps": 5},
    "model": {
        "class_path": "LanguageModeling",
        "init_args": {
            "sample_length": 8,
            "backbone": {
                "class_path": "mlplab.models.Transformer",
                "init_args": {"embed_dim": 16, "depth": 1, "num_heads": 2},
            },  # fmt: skip
        },
    },
    "data": {
        "class_path": "CharTextDataModule",
        "init_args": {
            "corpus": "pydoc_topics",
            "context_length": 16,
            "batch_size": 8,
            "batches_per_epoch": 5,
        },
    },
}


def train(cli, tmp_path):
    """Train a tiny character Transformer for 5 steps; return its run directory.

    (Called inside each test, not as a fixture: Lightning's log handlers would keep the fixture's
    closed capture streams.)
    """
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_LM))
    assert cli("fit", "--config", "tiny.yaml", "--trainer.default_root_dir=run", *QUIET) == 0
    return tmp_path / "run" / "lightning_logs" / "version_0"


def test_fit_then_test_from_the_checkpoint(cli, tmp_path):
    trained = train(cli, tmp_path)
    hparams = yaml.safe_load((trained / "hparams.yaml").read_text().replace("!!python/tuple", ""))
    assert hparams["vocab_size"] == len(hparams["vocabulary"]) and hparams["context_length"] == 16
    args = ["--config", str(trained / "config.yaml"), f"--ckpt_path={trained / 'checkpoints' / 'best.ckpt'}"]
    assert cli("test", *args, *QUIET) == 0


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), "\n".join(err)
    return err[-1]


def test_vocabulary_mismatch_with_a_checkpoint(cli, capsys, tmp_path):
    trained = train(cli, tmp_path)
    other = tmp_path / "other.txt"
    other.write_text("the quick brown fox\njumps over the lazy dog; ΑΒΓ " * 20)
    args = ["--config", str(trained / "config.yaml"), f"--ckpt_path={trained / 'checkpoints' / 'best.ckpt'}"]
    capsys.readouterr()
    assert cli("test", *args, f"--data.init_args.text_file={other}", *QUIET) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: the checkpoint was trained on another character vocabulary") and (
        "use the text the checkpoint was trained on" in line
    )


def test_context_longer_than_the_checkpoints_model(cli, capsys, tmp_path):
    trained = train(cli, tmp_path)
    args = ["--config", str(trained / "config.yaml"), f"--ckpt_path={trained / 'checkpoints' / 'best.ckpt'}"]
    capsys.readouterr()
    assert cli("validate", *args, "--data.init_args.context_length=64", *QUIET) == 2
    line = one_error_line(capsys)
    assert "context_length=16; this run's context_length=64 is longer than the model's" in line


def test_empty_text_file(cli, capsys, tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_LM))
    (tmp_path / "empty.txt").write_text("")
    assert cli("fit", "--config", "tiny.yaml", "--data.init_args.text_file=empty.txt", *QUIET) == 2
    assert one_error_line(capsys) == "error: the text file empty.txt is empty: give a file with text to model"


def test_short_class_names_and_linked_dimensions(cli, tmp_path):
    from mlplab.cli import MLPLabCLI

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_LM))
    run = MLPLabCLI(args=["--config", "tiny.yaml", "--model.backbone=Mamba", "--model.backbone.embed_dim=16",
                          "--model.backbone.depth=1"], run=False)  # fmt: skip
    data, task = run.datamodule, run.model
    assert (task.vocab_size, task.context_length) == (data.vocab_size, 16)
    assert task.tokenizer.vocabulary == data.vocabulary
    assert (
        type(task.backbone).__name__ == "Mamba" and task.backbone.embedding.num_embeddings == data.vocab_size
    )


def test_print_config_round_trip_of_a_text_recipe(cli, capsys, tmp_path):
    from tests.conftest import REPO

    recipe = REPO / "configs" / "text" / "transformer_moepp_shakespeare.yaml"
    assert cli("fit", "--config", str(recipe), "--data.init_args.corpus=pydoc_topics", "--print_config") == 0
    printed = capsys.readouterr().out
    backbone = yaml.safe_load(printed)["model"]["init_args"]["backbone"]
    assert backbone["class_path"] == "mlplab.models.Transformer"
    assert backbone["init_args"]["channel_mlp"]["kind"] == "moe_plus_plus"
    (tmp_path / "printed.yaml").write_text(printed)
    assert cli("fit", "--config", "printed.yaml", "--print_config") == 0
    assert capsys.readouterr().out == printed


def test_a_kernel_checkpoint_is_tested_with_the_torch_backend(cli, capsys, tmp_path):
    """``backend``, ``mode`` and ``chunk_size`` choose how GLA computes, not the model (its
    ``computation_arguments``): a GPU run's ``backend: fla`` checkpoint is tested on a CPU by giving
    ``backend: torch``, which the checkpoint rule used to refuse as an architecture change."""
    config = {**TINY_LM, "model": {**TINY_LM["model"], "init_args": {**TINY_LM["model"]["init_args"]}}}
    config["model"]["init_args"]["backbone"] = {
        "class_path": "GatedLinearAttention",
        "init_args": {"embed_dim": 16, "depth": 1, "num_heads": 2, "backend": "torch"},
    }
    (tmp_path / "gla.yaml").write_text(yaml.safe_dump(config))
    assert cli("fit", "--config", "gla.yaml", "--trainer.default_root_dir=run", *QUIET) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["backbone"]["init_args"]["backend"] = "fla"  # as trained on a GPU
    torch.save(checkpoint, tmp_path / "gpu.ckpt")
    args = ["--config", str(run / "config.yaml"), f"--ckpt_path={tmp_path / 'gpu.ckpt'}", *QUIET]
    given = [
        "--model.backbone.backend=torch",
        "--model.backbone.chunk_size=4",
        "--model.backbone.mode=recurrent",
    ]
    assert cli("test", *args, *given, "--trainer.default_root_dir=tested") == 0
    tested = yaml.safe_load(
        (tmp_path / "tested" / "lightning_logs" / "version_0" / "config.yaml").read_text()
    )
    applied = tested["model"]["init_args"]["backbone"]["init_args"]
    assert (applied["backend"], applied["chunk_size"], applied["mode"]) == ("torch", 4, "recurrent")
    capsys.readouterr()
    assert cli("test", *args, "--model.backbone.backend=torch", "--model.backbone.num_heads=4") == 2
    assert "model.backbone.num_heads: the checkpoint gpu.ckpt was trained with 2" in one_error_line(capsys)


def test_computation_arguments_are_arguments_of_their_family():
    from mlplab.models import GatedLinearAttention, Mamba

    for family in (GatedLinearAttention, Mamba):
        assert "backend" in family.computation_arguments
        assert set(family.computation_arguments) <= set(inspect.signature(family).parameters)
