"""The command line: config round trips, output locations, checkpoints, and one-line errors."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlplab.cli import MLPLabCLI, condense_parser_error
from tests.conftest import REPO, run_cli

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def short_fit(cli, root, *extra: str) -> int:
    return cli(
        "fit",
        "--config",
        QUICKSTART,
        "--trainer.max_epochs",
        "2",
        f"--trainer.default_root_dir={root}",
        *QUIET,
        *extra,
    )


def test_print_config_reproduces_the_run(cli, capsys, tmp_path):
    assert cli("fit", "--config", QUICKSTART, "--print_config") == 0
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["init_args"]["backbone"]["class_path"].endswith("HourglassMLP")
    assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.001
    assert config["seed_everything"] == 0
    (tmp_path / "printed.yaml").write_text(printed)
    assert cli("fit", "--config", "printed.yaml", "--print_config") == 0
    assert capsys.readouterr().out == printed


def test_outputs_go_under_default_root_dir_with_config_seed_and_counts(cli, tmp_path):
    assert short_fit(cli, "out") == 0
    created = {p.relative_to(tmp_path).parts[0] for p in tmp_path.iterdir()}
    assert created == {"out"}
    run = tmp_path / "out" / "lightning_logs" / "version_0"
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["seed_everything"] == 0
    hparams = yaml.safe_load((run / "hparams.yaml").read_text().replace("!!python/tuple", ""))
    assert (
        hparams["params_total"] == hparams["params_trainable"] == 64 * 1024 + 3 * 2 * 1024 * 128 + 1024 * 64
    )
    events = EventAccumulator(str(run))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/psnr", "val/ssim", "val/psnr_input", "train/device/samples_per_sec",
            "train/device/flops_per_sec"} <= scalars  # fmt: skip
    assert events.Scalars("train/device/flops_per_sec")[-1].value > 0


def test_data_dimensions_reach_the_backbone(cli, tmp_path):
    cli_run = MLPLabCLI(args=["--config", QUICKSTART, "--data.init_args.batch_size=16"], run=False)
    assert cli_run.model.image_shape == (1, 8, 8) and cli_run.model.backbone.input_shape == (1, 8, 8)
    assert cli_run.model.prototypes.shape == (10, 1, 8, 8)


def test_checkpoint_test_and_validate_reproduce_the_metrics(cli, tmp_path):
    assert short_fit(cli, "run") == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    best = run / "checkpoints" / "best.ckpt"
    events = EventAccumulator(str(run))
    events.Reload()
    best_val_psnr = max(e.value for e in events.Scalars("val/psnr"))
    assert torch.load(best, weights_only=True)["callbacks"]

    args = ["--config", str(run / "config.yaml"), f"--ckpt_path={best}", *QUIET]
    validated = MLPLabCLI(args=["validate", *args])
    assert validated.trainer.callback_metrics["val/psnr"].item() == pytest.approx(best_val_psnr, abs=1e-4)
    tested = MLPLabCLI(args=["test", *args])
    first = tested.trainer.callback_metrics["test/psnr"].item()
    tested_again = MLPLabCLI(args=["test", *args])
    assert tested_again.trainer.callback_metrics["test/psnr"].item() == first


def tree_digest(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


BAD_INPUTS = [
    (["--model.backbone.mlp_dim", "2048"], "HourglassMLP needs a narrow bottleneck, mlp_dim < embed_dim"),
    (["--model.backbone.embed_dim", "-5"], "embed_dim must be a positive integer, got -5"),
    (["--model.backbone.depth", "0"], "depth must be a positive integer, got 0"),
    (["--model.backbone", "NoSuchFamily"], "unknown class 'NoSuchFamily'"),
    (["--model", "mlplab.tasks.NoSuchTask"], "unknown class 'mlplab.tasks.NoSuchTask'"),
    (["--model.backbone.dz", "5"], "HourglassMLP has no argument 'dz'"),
    (["--trainer.max_epochs", "many"], "trainer.max_epochs: expected int, got 'many'"),
    (["--model.mode", "super_resolution", "--model.scale", "3"], "super-resolution ×3 needs"),
    (
        ["--data", "MNISTDataModule", "--data.data_dir", "nowhere", "--data.download", "false"],
        "MNIST not found",
    ),
    (["--data.normalize", "true"], "set data.init_args.normalize: false"),
    (["--data.num_val", "5000"], "must be positive and leave training images"),
]


def test_a_variant_given_alone_on_the_command_line_is_one_line_naming_the_form_that_works(cli, capsys):
    assert cli("fit", "--config", QUICKSTART, "--model.backbone.variant", "785/115/L4") == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: model.backbone: HourglassMLP has no argument 'variant'; a variant (tiny, ")
    suggestion = line.split(" is chosen together with the class: ")[1].removesuffix(" (see --help)")
    suggested = shlex.split(suggestion)
    assert suggested == ["--model.backbone", "{class_path: HourglassMLP, init_args: {variant: 785/115/L4}}"]
    run = MLPLabCLI(args=["--config", QUICKSTART, *suggested], run=False)
    built = run.model.backbone
    assert (built.embed_dim, built.mlp_dim, built.depth) == (785, 115, 4)


@pytest.fixture(scope="module")
def earlier_runs(tmp_path_factory) -> Path:
    """The folder of one short fit, trained once for the module: the run each failing command must leave
    untouched (each case checks its own digest, taken just before it runs)."""
    root = tmp_path_factory.mktemp("earlier")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(sys, "argv", ["mlplab"])
        assert short_fit(run_cli, str(root / "runs")) == 0
    return root / "runs"


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_user_errors_end_with_one_clear_line_and_leave_runs_untouched(
    cli, capsys, earlier_runs, args, message
):
    tmp_run = earlier_runs / "lightning_logs" / "version_0"
    before = tree_digest(tmp_run)
    capsys.readouterr()
    assert short_fit(cli, str(earlier_runs), *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)
    assert tree_digest(tmp_run) == before  # a failed run never touches an earlier one


def test_bad_checkpoints(cli, capsys, tmp_path, earlier_runs):
    run = earlier_runs / "lightning_logs" / "version_0"  # read only
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    cases = {
        "missing.ckpt": "checkpoint not found: missing.ckpt",
        "junk.ckpt": "cannot read the checkpoint junk.ckpt",
    }
    for name, message in cases.items():
        capsys.readouterr()
        assert cli("test", "--config", str(run / "config.yaml"), f"--ckpt_path={name}", *QUIET) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_checkpoint_from_another_architecture(cli, capsys, data_dir, earlier_runs):
    run = earlier_runs / "lightning_logs" / "version_0"  # read only
    best = run / "checkpoints" / "best.ckpt"
    before = best.read_bytes()
    capsys.readouterr()
    config = str(run / "config.yaml")
    status = cli(
        "test",
        "--config",
        config,
        f"--ckpt_path={best}",
        "--data=MNISTDataModule",
        "--data.source_split=test",
    )
    assert status == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last.startswith("error: the checkpoint does not fit this HourglassMLP")
        and "(1024, 64) there but (1024, 784) here" in last
    )
    assert best.read_bytes() == before


def test_condensed_parser_errors():
    nested = (
        'Parser key "model":\n  Does not validate\n  Errors:\n    - Problem\n        Parser key "backbone":\n'
        "          - Expected a dot import path string: Foo\n"
    )
    assert condense_parser_error(nested).startswith("model.backbone: unknown class 'Foo'")


#: (id, arguments after ``fit --config QUICKSTART``, the whole error line): each of jsonargparse's wordings
#: of a wrongly typed value, condensed to the full dotted key, what was expected and the value as given.
WRONGLY_TYPED = [
    (
        "int-of-a-nested-class",
        ["--model.backbone.depth=three"],
        "model.backbone.depth: expected int, got 'three'",
    ),
    (
        "value-as-typed",
        ["--model.backbone.embed_dim=1e3"],
        "model.backbone.embed_dim: expected int, got '1e3'",
    ),
    ("float-or-tensor", ["--model.optimizer.lr=fast"], "model.optimizer.lr: expected float, got 'fast'"),
    ("int-of-the-trainer", ["--trainer.max_steps=many"], "trainer.max_steps: expected int, got 'many'"),
    (
        "int-of-a-callback",
        ["--checkpoint.save_top_k=many"],
        "checkpoint.save_top_k: expected int, got 'many'",
    ),
    ("bool", ["--compile.enabled=maybe"], "compile.enabled: expected bool, got 'maybe'"),
    (
        "literal",
        ["--model.mode=deblur"],
        "model.mode: expected 'denoise', 'super_resolution' or 'generative_classification', got 'deblur'",
    ),
    (
        "literal-of-a-scheduler",
        ["--model.lr_scheduler_interval=week"],
        "model.lr_scheduler_interval: expected 'step' or 'epoch', got 'week'",
    ),  # fmt: skip
    (
        "tuple-length",
        ["--model.optimizer.betas=[0.9]"],
        "model.optimizer.betas: expected a tuple of 2 values, got '[0.9]'",
    ),
    ("tuple-item", ["--model.optimizer.betas=[a, b]"], "model.optimizer.betas: expected float, got 'a'"),
    (
        "class-given-whole",
        ["--model.backbone={class_path: HourglassMLP, init_args: {depth: three}}"],
        "model.backbone.depth: expected int, got 'three'",
    ),
    (
        "class-without-spaces",
        ["--model.backbone={class_path:HourglassMLP,init_args:{depth:three}}"],
        "model.backbone: cannot read '{class_path:HourglassMLP,init_args:{depth:three}}': write a class as "
        "'{class_path: Name, init_args: {name: value}}', with a space after each colon",
    ),
    (
        "callback-argument",
        ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.patience=soon"],
        "trainer.callbacks.patience: expected int, got 'soon'",
    ),
    (  # not a type error, but the same one-line rule: no callback given for the argument to go to
        "callback-argument-before-its-class",
        ["--trainer.callbacks.patience=3"],
        "trainer.callbacks: unknown argument 'patience': a callback's argument follows its class "
        "(--trainer.callbacks+=EarlyStopping --trainer.callbacks.patience=...)",
    ),
    (
        "callback-unknown-argument",
        ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.foo=3"],
        "trainer.callbacks: unknown argument 'foo'",
    ),
    (
        "callback-not-a-class",
        ["--trainer.callbacks=[5]"],
        "trainer.callbacks: expected a Callback (a class path, or class_path and init_args), got '5'",
    ),
    (
        "config-file-nested-class",
        [
            "--config",
            "{bad}",
            "model:\n  init_args:\n    backbone:\n      init_args:\n        depth: three\n",
        ],
        "model.backbone.depth: expected int, got 'three'",
    ),
    (
        "config-file-callback",
        [
            "--config",
            "{bad}",
            "trainer:\n  callbacks:\n    - class_path: EarlyStopping\n      init_args:\n"
            "        monitor: val/loss\n        patience: soon\n",
        ],  # fmt: skip
        "trainer.callbacks.patience: expected int, got 'soon'",
    ),
    (
        "config-file-bool",
        ["--config", "{bad}", "data:\n  init_args:\n    normalize: maybe\n"],
        "data.normalize: expected bool, got 'maybe'",
    ),
]


@pytest.mark.parametrize(
    ("args", "line"), [case[1:] for case in WRONGLY_TYPED], ids=[c[0] for c in WRONGLY_TYPED]
)
def test_a_wrongly_typed_value_is_one_line_naming_the_key_what_was_expected_and_the_value(
    cli, capsys, tmp_path, args, line
):
    if "{bad}" in args:  # a config file: the text after the placeholder
        at = args.index("{bad}")
        (tmp_path / "bad.yaml").write_text(args[at + 1])
        args = [*args[:at], str(tmp_path / "bad.yaml"), *args[at + 2 :]]
    capsys.readouterr()
    assert cli("fit", "--config", QUICKSTART, *args, f"--trainer.default_root_dir={tmp_path}", *QUIET) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {line} (see --help)"]


def test_a_value_outside_a_union_of_literals_lists_every_choice_once(cli, capsys, tmp_path):
    """Lightning's ``precision`` is a union of three Literals (64 and '64' both among them)."""
    capsys.readouterr()
    assert (
        cli("fit", "--config", QUICKSTART, "--trainer.precision=17", f"--trainer.default_root_dir={tmp_path}")
        == 2
    )
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: trainer.precision: expected 64, 32, 16, 'transformer-engine', ")
    assert line.endswith(" or 'bf16', got '17' (see --help)") and line.count("'64'") == 0


def test_a_literal_of_a_recipe_other_than_the_quickstart(cli, capsys, tmp_path):
    """An ``Optional[Literal[...]]`` of a DataModule (the MQAR recipe's preset)."""
    capsys.readouterr()
    recipe = str(REPO / "configs" / "text" / "transformer_mqar.yaml")
    assert cli("fit", "--config", recipe, "--data.preset=1x1", f"--trainer.default_root_dir={tmp_path}") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: data.preset: expected '64x4', '128x8', '256x16' or '512x64', got '1x1' (see --help)"
    ]


def test_console_script_and_cli_py_agree():
    script = subprocess.run([sys.executable, str(REPO / "cli.py"), "--help"], capture_output=True, text=True)
    assert script.returncode == 0 and "fit" in script.stdout
    module = subprocess.run([sys.executable, "-c", "from mlplab.cli import main; main()", "fit", "--help"],
                            capture_output=True, text=True)  # fmt: skip
    assert module.returncode == 0 and "--model" in module.stdout and "--checkpoint.monitor" in module.stdout


def test_the_programs_help_names_every_command():
    from mlplab.__main__ import ANALYSIS_COMMANDS, COMMANDS
    from mlplab.cli import DESCRIPTION

    for command in [*COMMANDS, *ANALYSIS_COMMANDS]:  # analyze, drop-layers and prune were once missing
        assert f"`mlplab {command}" in DESCRIPTION, command


def test_predict_writes_predictions_to_the_run_directory(cli, tmp_path):
    assert short_fit(cli, "run") == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    args = ["--config", str(run / "config.yaml"), f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}", *QUIET]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli("predict", *args) == 0
    assert not [w for w in caught if "batch indices" in str(w.message)]  # (mlplab's loader; not needed)
    saved = torch.load(
        tmp_path / "run" / "lightning_logs" / "version_1" / "predictions.pt", weights_only=True
    )
    assert saved["predictions"].shape == saved["targets"].shape == (200, 1, 8, 8)  # the digits test split
    # the table names each row's image: the digits' test split is carved from their one split by split_seed
    import csv

    from mlplab.data import DigitsDataModule

    with open(tmp_path / "run" / "lightning_logs" / "version_1" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200 and {row["split"] for row in rows} == {"train"}
    images = DigitsDataModule().load_split("train")[0][[int(row["index"]) for row in rows]]
    assert torch.equal(images.float() / 255, saved["targets"])  # the clean image of each row


def test_corrupt_dataset_file_is_one_line(cli, capsys, tmp_path):
    folder = tmp_path / "broken" / "mnist"
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(b"\x1f\x8b not really gzip")
    status = short_fit(
        cli, "runs", "--data=MNISTDataModule", "--data.source_split=test", "--data.data_dir=broken"
    )
    assert status == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last.startswith("error: ") and "fails its MD5 check" in last and "t10k-images-idx3-ubyte.gz" in last
    )


def test_an_integer_batch_limit_counts_batches_and_a_float_is_a_fraction(tmp_path):
    """``--trainer.limit_val_batches=1`` is one batch (jsonargparse used to make it 1.0: every batch)."""
    (tmp_path / "limits.yaml").write_text("trainer:\n  limit_test_batches: 1\n  limit_predict_batches: 1.0\n")
    given = ["--trainer.limit_val_batches=1", "--trainer.limit_train_batches", "0.5"]
    args = ["--config", QUICKSTART, "--config", str(tmp_path / "limits.yaml"), *given, *QUIET]
    run = MLPLabCLI(args=[*args, f"--trainer.default_root_dir={tmp_path}"], run=False)
    trainer = run.config.trainer
    assert (trainer.limit_val_batches, trainer.limit_test_batches) == (1, 1)
    assert isinstance(trainer.limit_val_batches, int) and isinstance(trainer.limit_test_batches, int)
    assert trainer.limit_train_batches == 0.5 and trainer.limit_predict_batches == 1.0
    assert isinstance(trainer.limit_predict_batches, float)
    assert run.trainer.limit_val_batches == 1 and isinstance(run.trainer.limit_val_batches, int)
    overfit = MLPLabCLI(args=[*args, "--trainer.overfit_batches=2"], run=False)
    assert overfit.config.trainer.overfit_batches == 2 and isinstance(
        overfit.config.trainer.overfit_batches, int
    )


def test_rich_progress_bar_and_model_summary_when_rich_is_installed_tqdm_otherwise(monkeypatch, tmp_path):
    """The ``rich`` extra: Lightning's Rich progress bar and model summary when rich imports.

    The summaries are mlplab's counterparts of Lightning's (FLOPs counted), also for one a config names.
    """
    import importlib.util

    from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar
    from lightning.pytorch.callbacks.progress import ProgressBar

    from mlplab.callbacks import (
        FlopsModelSummary,
        RichFlopsModelSummary,
        ThrottledRichProgressBar,
        ThrottledTQDMProgressBar,
    )

    def callbacks(*extra: str) -> list:
        run = MLPLabCLI(
            args=["--config", QUICKSTART, f"--trainer.default_root_dir={tmp_path}", *extra], run=False
        )
        return [c for c in run.trainer.callbacks if isinstance(c, (ProgressBar, ModelSummary))]

    def bars(*extra: str) -> set[type]:
        return {type(c) for c in callbacks(*extra)}

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rich" else find_spec(name, *a)
    )
    monkeypatch.setattr("lightning.pytorch.trainer.connectors.callback_connector._RICH_AVAILABLE", False)
    assert bars() == {ThrottledTQDMProgressBar, FlopsModelSummary}
    assert bars("--trainer.callbacks+=TQDMProgressBar") == {TQDMProgressBar, FlopsModelSummary}  # its own
    assert bars("--trainer.enable_progress_bar=false") == {FlopsModelSummary}
    assert bars("--trainer.enable_model_summary=false") == {ThrottledTQDMProgressBar}
    named = callbacks("--trainer.callbacks+=ModelSummary", "--trainer.callbacks.max_depth=3")
    assert [(type(c), c._max_depth) for c in named if isinstance(c, ModelSummary)] == [(FlopsModelSummary, 3)]
    monkeypatch.undo()
    pytest.importorskip("rich")
    monkeypatch.setattr("lightning.pytorch.trainer.connectors.callback_connector._RICH_AVAILABLE", True)
    assert bars() == {ThrottledRichProgressBar, RichFlopsModelSummary}


def test_a_config_that_switches_the_optimizer_class_gets_that_class_defaults(tmp_path):
    """jsonargparse carries AdamW's weight_decay 0.01 over to a config's Adam; the CLI gives Adam its own."""
    switched = tmp_path / "adam.yaml"
    switched.write_text(
        "model:\n  init_args:\n    optimizer:\n      class_path: torch.optim.Adam\n"
        "      init_args:\n        lr: 0.002\n"
    )

    def optimizer(*extra: str) -> torch.optim.Optimizer:
        args = ["--config", QUICKSTART, f"--trainer.default_root_dir={tmp_path}", *extra]
        run = MLPLabCLI(args=args, run=False)
        return run.model.optimizer_factory([torch.nn.Parameter(torch.zeros(2))])

    adamw = optimizer()  # the task's default class keeps its own default
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["weight_decay"] == 0.01
    adam = optimizer("--config", str(switched))
    assert type(adam) is torch.optim.Adam
    assert adam.defaults["weight_decay"] == 0 and adam.defaults["lr"] == 0.002
    given = optimizer("--config", str(switched), "--model.optimizer.init_args.weight_decay=0.05")
    assert given.defaults["weight_decay"] == 0.05
    assert (
        optimizer("--model.optimizer=torch.optim.SGD", "--model.optimizer.init_args.lr=0.1").defaults[
            "weight_decay"
        ]
        == 0
    )


def test_print_config_shows_the_switched_class_defaults_the_run_uses(cli, capsys, tmp_path):
    # --print_config once printed Adam with AdamW's weight_decay 0.01 (the carried value the run drops),
    # so re-running the printed config trained with a weight decay the original run did not have
    switched = tmp_path / "adam.yaml"
    switched.write_text("model:\n  init_args:\n    optimizer:\n      class_path: torch.optim.Adam\n")
    assert cli("fit", "--config", QUICKSTART, "--config", str(switched), "--print_config") == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    optimizer = printed["model"]["init_args"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.Adam" and optimizer["init_args"]["weight_decay"] == 0


def test_lightnings_cloud_logger_advertisement_is_dropped_and_its_other_lines_kept(tmp_path):
    import logging

    import lightning as L

    import mlplab.cli  # noqa: F401 - installs the filter

    records: list[str] = []
    collect = logging.Handler(level=logging.INFO)
    collect.emit = lambda record: records.append(record.getMessage())
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level, rank_zero.level = rank_zero.level, logging.INFO
    rank_zero.addHandler(collect)
    try:
        L.Trainer(logger=True, default_root_dir=tmp_path, accelerator="cpu")
    finally:
        rank_zero.removeHandler(collect)
        rank_zero.setLevel(level)
    assert any("GPU available" in line for line in records)
    assert not any("litlogger" in line for line in records)


def leafspec_warnings(hide: bool) -> list[str]:
    """The LeafSpec deprecations Lightning's batch flattening raises, with the program's filters or not."""
    from lightning.pytorch.utilities._pytree import _tree_flatten

    from mlplab.__main__ import hide_library_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if hide:
            hide_library_warnings()
        _tree_flatten(1)  # Lightning builds a LeafSpec for a leaf
    return [str(w.message) for w in caught if "LeafSpec" in str(w.message)]


def test_the_program_hides_what_one_library_warns_about_another():
    if not leafspec_warnings(hide=False):
        pytest.skip("this torch does not deprecate LeafSpec")
    assert leafspec_warnings(hide=True) == []


def test_best_with_a_run_s_config_is_that_run_s_checkpoint(tmp_path):
    # predict --config lightning_logs/version_0/config.yaml --ckpt_path best took the newest best.ckpt of
    # any run: version 1's, a model other than the run named
    import os

    from jsonargparse import Namespace

    from mlplab.cli import newest_checkpoint

    logs = tmp_path / "lightning_logs"
    for version in (0, 1):
        (logs / f"version_{version}" / "checkpoints").mkdir(parents=True)
        (logs / f"version_{version}" / "config.yaml").write_text("{}\n")
        (logs / f"version_{version}" / "checkpoints" / "best.ckpt").write_bytes(b"")
        os.utime(logs / f"version_{version}" / "checkpoints" / "best.ckpt", (version, version))
    config = Namespace(trainer=Namespace(default_root_dir=str(tmp_path)), checkpoint=Namespace(dirpath=None))
    assert newest_checkpoint(config, "best") == logs / "version_1" / "checkpoints" / "best.ckpt"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("{}\n")
    config.config = [recipe, logs / "version_0" / "config.yaml"]
    assert newest_checkpoint(config, "best") == logs / "version_0" / "checkpoints" / "best.ckpt"
    config.config = [logs / "version_0" / "config.yaml", recipe]  # a recipe after it: still the run's
    assert newest_checkpoint(config, "best") == logs / "version_0" / "checkpoints" / "best.ckpt"
    config.trainer.default_root_dir = str(tmp_path / "elsewhere")  # another root: its newest run
    (tmp_path / "elsewhere" / "lightning_logs" / "version_0" / "checkpoints").mkdir(parents=True)
    (tmp_path / "elsewhere" / "lightning_logs" / "version_0" / "checkpoints" / "best.ckpt").write_bytes(b"")
    assert newest_checkpoint(config, "best").parts[-5] == "elsewhere"


def test_a_run_s_config_without_best_is_refused_not_another_run_s(tmp_path):
    # version_0 ran no validation (last.ckpt only): predict --config version_0/config.yaml --ckpt_path best
    # took version_1's best.ckpt, another model, without a word
    from jsonargparse import Namespace

    from mlplab.cli import newest_checkpoint
    from mlplab.errors import CheckpointError

    logs = tmp_path / "lightning_logs"
    for version, name in ((0, "last"), (1, "best")):
        (logs / f"version_{version}" / "checkpoints").mkdir(parents=True)
        (logs / f"version_{version}" / "config.yaml").write_text("{}\n")
        (logs / f"version_{version}" / "checkpoints" / f"{name}.ckpt").write_bytes(b"")
    config = Namespace(trainer=Namespace(default_root_dir=str(tmp_path)), checkpoint=Namespace(dirpath=None))
    config.config = [logs / "version_0" / "config.yaml"]
    expected = (
        rf"^--ckpt_path best: there is no best.ckpt in {logs}/version_0/checkpoints; no validation has "
        r"written one yet; it holds last.ckpt: give --ckpt_path last or a checkpoint's path$"
    )
    with pytest.raises(CheckpointError, match=expected):
        newest_checkpoint(config, "best")
    config.config = []  # no run named: the newest best.ckpt of any run, as before
    assert newest_checkpoint(config, "best") == logs / "version_1" / "checkpoints" / "best.ckpt"


def test_null_for_a_nested_argument_says_how_to_give_it(cli, capsys):
    # jsonargparse hands --model.backbone.channel_mlp null to the family as the text 'None': the line
    # said "unknown class 'None': give an importable class path", which no class path could satisfy
    recipe = str(REPO / "configs" / "text" / "transformer_shakespeare.yaml")
    assert cli("fit", "--config", recipe, "--model.backbone.channel_mlp", "null", "--print_config") == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    advice = """--model.backbone '{"init_args": {"channel_mlp": null}}'"""
    assert (
        line.startswith("error: model.backbone.channel_mlp: null cannot reach an argument nested")
        and advice in line
    )
    # the advice works: the recipe's other arguments stay
    assert (
        cli(
            "fit",
            "--config",
            recipe,
            "--model.backbone",
            advice.split(" ", 1)[1].strip("'"),
            "--print_config",
        )
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["backbone"]["init_args"]
    assert printed["channel_mlp"] is None and printed["dropout"] == 0.2


def test_an_early_stopping_without_mode_goes_the_way_its_metric_name_tells(tmp_path):
    # Lightning's default mode "min" stopped a run monitoring val/psnr after `patience` epochs of improvement
    from lightning.pytorch.callbacks import EarlyStopping

    def early_stopping(*extra: str) -> list[EarlyStopping]:
        args = ["--config", QUICKSTART, f"--trainer.default_root_dir={tmp_path}", *extra]
        trainer = MLPLabCLI(args=args, run=False).trainer
        return [callback for callback in trainer.callbacks if isinstance(callback, EarlyStopping)]

    psnr, loss, given = early_stopping(
        "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val/psnr",
        "--trainer.callbacks.min_delta=0.1",
        "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val/loss",
        "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val/ssim",
        "--trainer.callbacks.mode=min",
    )  # fmt: skip
    assert (psnr.mode, psnr.min_delta, float(psnr.best_score)) == ("max", 0.1, float("-inf"))
    assert (loss.mode, float(loss.best_score)) == ("min", float("inf"))
    assert given.mode == "min"  # what is given is kept


def test_a_compile_failure_at_the_first_step_is_one_line():
    # torch.compile compiles at the first call, in the middle of training: its error was a long traceback
    from torch._inductor.exc import InductorError

    from mlplab.cli import find_user_error
    from mlplab.errors import ConfigError

    try:
        try:
            raise InductorError(ImportError("/tmp/torchinductor/x.main.so: file too short"), None)
        except InductorError as failure:
            raise RuntimeError("the training step failed") from failure
    except RuntimeError as error:
        found = find_user_error(error)
    assert isinstance(found, ConfigError)
    assert str(found).startswith(
        "compile: torch.compile could not compile the backbone (ImportError: /tmp/torchinductor/x.main.so: "
        "file too short); run without --compile.enabled"
    )


def test_a_resumed_fit_keeps_its_runs_seed(cli, tmp_path):
    # a resumed fit without --seed_everything took the CLI's default 0: the rest of a seed-3 run's batches
    # came in seed 0's order, and summary.json recorded it as a run of seed 0
    recipe = yaml.safe_load(Path(QUICKSTART).read_text())
    del recipe["seed_everything"]
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    run = [
        "--config", str(config), "--model.backbone.embed_dim=32", "--model.backbone.mlp_dim=8",
        "--model.lr_scheduler=null", "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    seeded = [*run, "--seed_everything=3"]
    assert cli("fit", *seeded, "--trainer.max_epochs=2", "--trainer.default_root_dir=a") == 0
    assert cli("fit", *seeded, "--trainer.max_epochs=1", "--trainer.default_root_dir=b") == 0
    assert cli("fit", *run, "--trainer.max_epochs=2", "--trainer.default_root_dir=b", "--ckpt_path=last") == 0
    runs = [tmp_path / root / "lightning_logs" / "version_0" for root in ("a", "b")]
    assert [json.loads((run / "summary.json").read_text())["seed"] for run in runs] == [3, 3]
    first, second = (torch.load(run / "checkpoints" / "last.ckpt", weights_only=True) for run in runs)
    first, second = first["state_dict"], second["state_dict"]
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert cli("fit", *run, "--seed_everything=1", "--trainer.max_epochs=3", "--trainer.default_root_dir=b",
               "--ckpt_path=last") == 2  # fmt: skip
