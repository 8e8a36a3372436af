"""Runs you can compare: summary.json and the HParams entry of every run, and ``mlplab compare``."""

from __future__ import annotations

import csv
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.conftest import REPO

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
SHORT = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=3", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false"]  # fmt: skip


def fit(cli, root: str, *extra: str) -> None:
    args = ["fit", "--config", QUICKSTART, *SHORT, f"--trainer.default_root_dir={root}", *extra]
    assert cli(*args) == 0


def hparams_entry(run) -> tuple[dict, list[str]]:
    events = EventAccumulator(str(run))
    events.Reload()
    hparams, metrics = {}, []
    for raw in events.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        if data.HasField("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                hparams[key] = value.string_value if value.HasField("string_value") else value.number_value
        if data.HasField("experiment"):
            metrics = [info.name.tag for info in data.experiment.metric_infos]
    return hparams, metrics, set(events.Tags()["scalars"])


def test_a_fit_and_a_test_fill_the_summary_and_the_hparams_tab_and_compare_tables_them(cli, capsys, tmp_path):
    fit(cli, "runs")
    fit(cli, "runs", "--model.init_args.backbone.init_args.embed_dim=256")
    wide = tmp_path / "runs" / "lightning_logs" / "version_0"
    best = wide / "checkpoints" / "best.ckpt"
    quiet = "--trainer.enable_progress_bar=false"
    assert cli("test", "--config", str(wide / "config.yaml"), "--ckpt_path", str(best), quiet) == 0

    summary = json.loads((wide / "summary.json").read_text())
    assert summary["family"] == "HourglassMLP" and summary["task"] == "ImageRestoration"
    assert summary["arguments"]["embed_dim"] == 1024 and summary["arguments"]["depth"] == 3
    assert (
        summary["params_total"] == summary["params_trainable"] == 64 * 1024 + 3 * 2 * 1024 * 128 + 1024 * 64
    )
    assert summary["flops_per_sample"] > 3 * 2 * summary["params_total"] * 0.9  # forward + backward
    assert summary["metric"] == "val/psnr" and summary["test_metric"] == "test/psnr"
    assert summary["best_val"] > 5 and summary["test"] > 5 and summary["time_s"] > 0
    assert (summary["epochs"], summary["steps"], summary["seed"], summary["lr"]) == (2, 6, 0, 0.001)
    assert len(summary["settings_key"]) == 12

    hparams, metrics, scalars = hparams_entry(wide)
    assert metrics == ["hp/best_val", "hp/test", "hp/time_s"]
    assert {"hp/best_val", "hp/test", "hp/time_s"} <= scalars and "hp_metric" not in scalars
    assert hparams["family"] == "HourglassMLP" and hparams["family.embed_dim"] == 1024
    assert hparams["params_total"] == summary["params_total"] and hparams["flops_per_sample"] > 0
    assert hparams["metric"] == "val/psnr"

    capsys.readouterr()
    assert cli("compare", "runs", "--out", "compared") == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| run | family | arguments | params_total |") and "2 runs;" in printed
    with open(tmp_path / "compared" / "compare.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["params_total"]) for r in rows) == [16384 + 3 * 2 * 256 * 128 + 16384, 917504]
    tested = [r for r in rows if r["test"]]
    assert len(tested) == 1 and float(tested[0]["test"]) == summary["test"]
    assert (tmp_path / "compared" / "val_psnr_vs_params.png").stat().st_size > 10_000
    assert (tmp_path / "compared" / "val_psnr_vs_time.png").stat().st_size > 10_000


def test_a_test_under_other_evaluation_options_is_kept_apart_from_the_run_s_test(cli, capsys, tmp_path):
    # The run's test value (summary.json "test", hp/test, compare) is the figure of its own recipe; a
    # test with another noise level or data setting goes to other_tests with the options that differ.
    from mlplab.cli import MLPLabCLI

    small = ["--model.backbone.embed_dim=32", "--model.backbone.mlp_dim=8"]
    fit(cli, "runs", *small)
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    given = ["--config", str(run / "config.yaml"), f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"]

    def test(*extra: str) -> float:
        tested = MLPLabCLI(args=["test", *given, *SHORT[2:], *extra])
        return tested.trainer.callback_metrics["test/psnr"].item()

    own = test()
    assert test("--data.eval_batch_size=5") == own  # a batch size does not change what a test measures
    noisier = test("--model.noise_std=0.5")
    other_split = test("--model.noise_std=0.5", "--data.split_seed=7")
    assert len({own, noisier, other_split}) == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"] == own
    checkpoint = str((run / "checkpoints" / "best.ckpt").resolve())
    assert summary["other_tests"] == [
        {"options": {"model.noise_std": 0.5}, "test": noisier, "tested_checkpoint": checkpoint},
        {
            "options": {"model.noise_std": 0.5, "data.split_seed": 7},
            "test": other_split,
            "tested_checkpoint": checkpoint,
        },
    ]
    events = EventAccumulator(str(run))
    events.Reload()
    assert {event.value for event in events.Scalars("hp/test")} == {own}
    capsys.readouterr()
    assert cli("compare", "runs", "--out", "compared") == 0
    with open(tmp_path / "compared" / "compare.csv") as handle:
        assert [float(row["test"]) for row in csv.DictReader(handle)] == [own]
    test("--model.noise_std=0.5")  # the same options again: their entry is replaced, not repeated
    again = json.loads((run / "summary.json").read_text())["other_tests"]
    assert [entry["options"] for entry in again] == [
        {"model.noise_std": 0.5, "data.split_seed": 7},
        {"model.noise_std": 0.5},
    ]


def test_a_test_of_part_of_the_split_is_not_the_run_s_test(cli, tmp_path):
    # mlplab test --trainer.limit_test_batches 1 used to become the run's test (summary.json, compare)
    from mlplab.cli import MLPLabCLI

    fit(
        cli,
        "runs",
        "--model.backbone.embed_dim=32",
        "--model.backbone.mlp_dim=8",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
    )
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    given = ["test", "--config", str(run / "config.yaml"), f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"]
    part = MLPLabCLI(args=[*given, *SHORT[2:], "--trainer.limit_test_batches=1"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"] is None
    assert [(e["options"], e["test"]) for e in summary["other_tests"]] == [
        ({"trainer.limit_test_batches": 1}, part.trainer.callback_metrics["test/psnr"].item())
    ]


def test_changed_options_compare_how_much_of_the_test_split_is_evaluated():
    from mlplab.callbacks.summary import changed_options

    trained = {"model": {"class_path": "ImageRestoration"}, "trainer": {"max_epochs": 3}}
    assert changed_options(trained, {"trainer": {"limit_test_batches": None, "max_epochs": 1}}) == {}
    assert changed_options(trained, {"trainer": {"limit_test_batches": 1.0}}) == {}
    assert changed_options(trained, {"trainer": {"limit_test_batches": 1}}) == {
        "trainer.limit_test_batches": 1
    }
    assert changed_options(trained, {"trainer": {"fast_dev_run": True}}) == {"trainer.fast_dev_run": True}
    partial = {"trainer": {"limit_test_batches": 0.5}}
    assert changed_options(partial, {"trainer": {"limit_test_batches": 0.5}}) == {}  # as the run's config
    assert changed_options(partial, {"model": {}}) == {}  # no trainer section given: not compared


def test_changed_options_leave_out_what_cannot_change_the_test():
    from mlplab.callbacks.summary import changed_options

    trained = {
        "model": {"class_path": "mlplab.tasks.ImageRestoration", "init_args": {
            "backbone": {"class_path": "HourglassMLP", "init_args": {"backend": "torch"}},
            "noise_std": 0.2, "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.001}},
            "eval_seed": 1,
        }},
        "data": {"class_path": "mlplab.data.DigitsDataModule", "init_args": {
            "batch_size": 64, "normalize": False, "resized_crop_scale": [0.5, 1.0],
        }},
    }  # fmt: skip
    tested = json.loads(json.dumps(trained))
    tested["model"]["init_args"]["backbone"]["init_args"]["backend"] = "auto"
    tested["model"]["init_args"]["optimizer"]["init_args"]["lr"] = 0.1
    tested["model"]["init_args"]["image_shape"] = [1, 8, 8]  # only in one of the two: not compared
    tested["data"]["init_args"].update(batch_size=7, resized_crop_scale=(0.5, 1.0))
    neutral = ("backbone", "optimizer")
    assert changed_options(trained, tested, neutral, ("batch_size",)) == {}
    tested["model"]["init_args"]["eval_seed"] = 2
    tested["data"]["init_args"]["normalize"] = True
    assert changed_options(trained, tested, neutral, ("batch_size",)) == {
        "model.eval_seed": 2,
        "data.normalize": True,
    }
    tested["data"]["class_path"] = "mlplab.data.MNISTDataModule"
    assert changed_options(trained, tested, neutral)["data"] == "mlplab.data.MNISTDataModule"


def test_compare_without_runs_is_one_line(cli, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert cli("compare", "empty") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: compare: no runs in empty: a run folder holds summary.json, which `mlplab fit` "
                   "writes when training ends (with a logger)"]  # fmt: skip
    assert cli("compare", "missing/*") == 2
    assert capsys.readouterr().err.strip() == "error: compare: missing/* does not exist"
    assert cli("compare") == 2  # argparse's own errors too: no usage block
    assert capsys.readouterr().err.strip() == (
        "error: mlplab compare: the following arguments are required: DIR (see --help)"
    )


def test_the_summary_shows_the_arguments_the_task_fills_in_from_the_data():
    import functools

    from mlplab.callbacks.summary import family_and_arguments
    from mlplab.models import DLinear, TimeMixer
    from mlplab.tasks import ForecastingTask

    backbone = functools.partial(TimeMixer, embed_dim=8, num_time_features=0)  # 0: the config's default
    task = ForecastingTask(backbone, lookback=32, horizon=8, num_series=2, num_time_features=4)
    family, arguments = family_and_arguments(task)
    assert family == "TimeMixer" and arguments["embed_dim"] == 8
    assert arguments["num_time_features"] == task.backbone.num_time_features == 4
    plain = ForecastingTask(DLinear, lookback=32, horizon=8, num_series=2, num_time_features=4)
    assert "num_time_features" not in family_and_arguments(plain)[1]


def test_the_wall_time_of_a_resumed_fit_counts_the_time_before_its_checkpoint(cli, tmp_path, monkeypatch):
    # A run stopped by a kill or Ctrl-C writes no summary.json: time_s counted the resumed part alone.
    # (A fit resumed under a logger preset continued in a new run directory, with the same effect; it
    # now continues in its own, checked here too.)
    import time

    from mlplab.callbacks import RunSummary

    start = RunSummary.on_fit_start

    def started_long_ago(self, trainer, pl_module):
        start(self, trainer, pl_module)
        self._started = time.monotonic() - 1000.0  # as if the first part had taken 1,000 s

    with monkeypatch.context() as patched:
        patched.setattr(RunSummary, "on_fit_start", started_long_ago)
        fit(cli, "killed")
        fit(cli, "moved", "--config", str(REPO / "configs" / "logger" / "csv.yaml"))
    first = tmp_path / "killed" / "lightning_logs" / "version_0"
    (first / "summary.json").unlink()  # a killed run has none
    fit(cli, "killed", "--trainer.max_epochs=3", "--ckpt_path=last")
    fit(cli, "moved", "--config", str(REPO / "configs" / "logger" / "csv.yaml"), "--trainer.max_epochs=3",
        "--ckpt_path=last")  # fmt: skip
    for run in (first, tmp_path / "moved" / "lightning_logs" / "version_0"):
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == 9 and 1000 <= summary["time_s"] < 1100, run


def test_the_summary_follows_the_metric_that_chooses_the_best_checkpoint(tmp_path):
    # With --checkpoint.monitor another metric than the task's, summary.json gave the best val/psnr of
    # any epoch beside the test value of best.ckpt, chosen by the other metric at another epoch.
    import functools

    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlplab.callbacks import BestCheckpoint, RunSummary
    from mlplab.data import DigitsDataModule
    from mlplab.models import HourglassMLP
    from mlplab.tasks import ImageRestoration

    class EarlyPeak(ImageRestoration):  # val/score is best at the first epoch, val/psnr at the last
        def validation_step(self, batch, batch_idx):
            super().validation_step(batch, batch_idx)
            self.log("val/score", [3.0, 1.0, 2.0][self.current_epoch])

        def test_step(self, batch, batch_idx):
            super().test_step(batch, batch_idx)
            self.log("test/score", 7.0)

    task = EarlyPeak(functools.partial(HourglassMLP, embed_dim=32, mlp_dim=8, depth=1), (1, 8, 8), 10)
    data = DigitsDataModule(normalize=False, batch_size=64)
    best = BestCheckpoint(filename="best", monitor="val/score", mode="max")
    trainer = L.Trainer(max_epochs=3, limit_train_batches=3, enable_progress_bar=False,
                        logger=TensorBoardLogger(tmp_path), callbacks=[best, RunSummary()])  # fmt: skip
    trainer.fit(task, datamodule=data)
    run = tmp_path / "lightning_logs" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["metric"], summary["mode"], summary["best_val"]) == ("val/score", "max", 3.0)
    assert summary["best_checkpoint"] == str((run / "checkpoints" / "best.ckpt").resolve())
    trainer.test(task, datamodule=data, ckpt_path=summary["best_checkpoint"], weights_only=False)
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["test_metric"], summary["test"]) == ("test/score", 7.0)


def test_a_resumed_fit_that_finds_a_better_checkpoint_drops_the_old_test_value(cli, tmp_path):
    # best.ckpt keeps its name when a resumed fit rewrites it: the test of the earlier best checkpoint
    # stayed in summary.json beside the new best value
    fit(cli, "runs")
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    quiet = "--trainer.enable_progress_bar=false"
    assert cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", "best", quiet) == 0
    tested = json.loads((run / "summary.json").read_text())
    assert tested["test"] is not None
    fit(cli, "runs", "--trainer.max_epochs=4", "--ckpt_path=last")
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["best_val"] > tested["best_val"]  # a better epoch: best.ckpt was rewritten
    assert resumed["test"] is None
    # without a better epoch the test still belongs to best.ckpt and is kept
    assert cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", "best", quiet) == 0
    fit(cli, "runs", "--trainer.max_epochs=4", "--trainer.max_steps=12", "--ckpt_path=last")
    assert json.loads((run / "summary.json").read_text())["test"] is not None


def test_only_runs_that_differ_by_their_seed_are_averaged_into_one_point(tmp_path, monkeypatch):
    # compare averaged every run of one family and arguments into one frontier point, whatever their
    # data, task or training settings; summaries without settings_key (older ones) are never averaged
    from mlplab.callbacks.summary import write_summary
    from mlplab.tools import compare, pareto

    base = {"task": "ImageRestoration", "family": "HourglassMLP", "arguments": {"embed_dim": 8},
            "params_total": 100, "params_trainable": 100, "metric": "val/psnr", "mode": "max", "test": None,
            "time_s": 1.0}  # fmt: skip
    runs = {
        "seed0": {"settings_key": "aaa", "seed": 0, "best_val": 1.0},
        "seed1": {"settings_key": "aaa", "seed": 1, "best_val": 3.0},
        "other_lr": {"settings_key": "bbb", "seed": 0, "best_val": 10.0},
        "old_a": {"seed": 0, "best_val": 20.0},
        "old_b": {"seed": 1, "best_val": 30.0},
    }
    for name, fields in runs.items():
        write_summary(tmp_path / "runs" / name, {**base, **fields})
    drawn = []
    real = pareto.plot_frontiers
    monkeypatch.setattr(
        pareto, "plot_frontiers", lambda rows, *a, **k: drawn.append(rows) or real(rows, *a, **k)
    )
    compare.compare([str(tmp_path / "runs")], tmp_path / "out")
    points = sorted((c["seeds"], c["best_val"]) for c in pareto.configurations(drawn[0]))
    assert points == [(1, 10.0), (1, 20.0), (1, 30.0), (2, 2.0)]


def test_a_python_run_writes_the_settings_key_it_is_given_and_compare_counts_those_without(tmp_path):
    # a Trainer built in Python wrote settings_key null, RunSummary took no key, and compare drew such
    # runs as points of their own without a word; variant="tiny": a Python partial selects a variant
    import functools

    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlplab.callbacks import RunSummary
    from mlplab.data import DigitsDataModule
    from mlplab.models import HourglassMLP
    from mlplab.tasks import ImageRestoration
    from mlplab.tools import compare

    data = DigitsDataModule(normalize=False, batch_size=64)
    keys = {0: "my-setting", 1: "my-setting", 2: None}
    for seed, key in keys.items():
        L.seed_everything(seed)
        task = ImageRestoration(functools.partial(HourglassMLP, variant="tiny", depth=1), (1, 8, 8))
        trainer = L.Trainer(max_steps=1, limit_val_batches=1, enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False,
                            logger=TensorBoardLogger(tmp_path / "runs", version=seed),
                            callbacks=[RunSummary(settings_key=key)])  # fmt: skip
        trainer.fit(task, datamodule=data)
        summary = json.loads(
            (tmp_path / "runs" / "lightning_logs" / f"version_{seed}" / "summary.json").read_text()
        )
        assert summary["settings_key"] == key and summary["seed"] == seed
        assert summary["arguments"] == {"embed_dim": 96, "mlp_dim": 24, "depth": 1}
    printed = compare.compare([str(tmp_path / "runs")], tmp_path / "out")
    assert printed.splitlines()[-1] == (
        "1 of them without a settings_key (a Trainer built in Python without RunSummary(settings_key=...), "
        "or an older mlplab): each is a point of its own, averaged with no other seed"
    )
    rows = compare.frontier_rows(compare.table_rows(compare.find_runs([str(tmp_path / "runs")])))
    assert sorted(row["group"].split(":")[0] for row in rows) == ["run", "settings", "settings"]
    # the command line's digests stay those of earlier versions: the new summary argument is left out
    from mlplab.callbacks.summary import settings_digest

    config = {"model": {"lr": 1}, "summary": {"enabled": True}}
    given = {**config, "summary": {"enabled": True, "settings_key": None}}
    assert settings_digest(config) == settings_digest(given)


def test_the_settings_key_ignores_the_seed_and_the_output_folders_only():
    from mlplab.callbacks.summary import RunSummary
    from mlplab.cli import MLPLabCLI

    def key(*extra: str) -> str:
        run = MLPLabCLI(args=["--config", QUICKSTART, *SHORT, *extra], run=False)
        return next(c for c in run.trainer.callbacks if isinstance(c, RunSummary)).settings_key

    first = key("--seed_everything=1", "--trainer.default_root_dir=a")
    assert len(first) == 12
    assert key("--seed_everything=2", "--trainer.default_root_dir=b") == first
    assert key("--seed_everything=1", "--model.init_args.optimizer.init_args.lr=0.01") != first
    assert key("--seed_everything=1", "--data.init_args.batch_size=32") != first
    assert key("--seed_everything=1", "--trainer.max_epochs=3") != first
    assert key("--seed_everything=1", "--summary.settings_key=mine") == "mine"  # a given key is kept


def test_an_out_folder_that_cannot_be_made_is_one_line(cli, capsys, tmp_path):
    # a file in the way of --out ended in a NotADirectoryError traceback
    run = tmp_path / "runs" / "version_0"
    run.mkdir(parents=True)
    summary = {"run_dir": str(run), "task": "ImageRestoration", "family": "HourglassMLP", "arguments": {},
               "params_total": 10, "params_trainable": 10, "flops_per_sample": 1, "metric": "val/psnr",
               "mode": "max", "best_val": 20.0, "test": None, "time_s": 1.0, "epochs": 1,
               "steps": 1}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "afile").write_text("")
    assert cli("compare", str(tmp_path / "runs"), "--out", str(tmp_path / "afile" / "out")) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: compare: cannot create the folder --out {tmp_path / 'afile' / 'out'} (")


def test_the_summary_counts_the_epochs_a_fit_completed(tmp_path):
    # a fit stopped in the middle of its second epoch (max_time's Timer sets should_stop after a batch,
    # as below; max_steps alike) wrote epochs 2: Lightning's current_epoch counts the epoch it was in
    import functools

    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlplab.callbacks import RunSummary
    from mlplab.data import DigitsDataModule
    from mlplab.models import HourglassMLP
    from mlplab.tasks import ImageRestoration

    class StopLikeMaxTime(Callback):  # what lightning's Timer does when the time is up
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 6:
                trainer.should_stop = True

    data = DigitsDataModule(normalize=False, batch_size=64)
    for version, (limits, callbacks) in enumerate(
        [({"max_epochs": 5}, [StopLikeMaxTime()]), ({"max_steps": 6}, []), ({"max_epochs": 2}, [])]
    ):
        task = ImageRestoration(functools.partial(HourglassMLP, variant="tiny", depth=1), (1, 8, 8))
        trainer = L.Trainer(limit_train_batches=4, limit_val_batches=1, enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False,
                            logger=TensorBoardLogger(tmp_path, version=version),
                            callbacks=[*callbacks, RunSummary()], **limits)  # fmt: skip
        trainer.fit(task, datamodule=data)
        summary = json.loads(
            (tmp_path / "lightning_logs" / f"version_{version}" / "summary.json").read_text()
        )
        assert (summary["steps"], summary["epochs"]) == ((6, 1) if version < 2 else (8, 2)), limits


def test_a_diverged_run_has_a_summary_and_compare_lists_it_as_diverged(tmp_path, capsys):
    # the divergence guard's error ended the fit before on_fit_end: no summary.json, and compare and the
    # sweep folder's compare left the run out without a word
    import functools

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlplab.callbacks import DivergenceGuard, RunSummary
    from mlplab.data import DigitsDataModule
    from mlplab.errors import TrainingDivergedError
    from mlplab.models import HourglassMLP
    from mlplab.tasks import ImageRestoration
    from mlplab.tools import compare

    class PoisonAtStep4(Callback):  # a weight becomes NaN, so the loss of step 5 is NaN
        def on_train_batch_end(self, trainer, pl_module, *args):
            if trainer.global_step == 4:
                with torch.no_grad():
                    next(pl_module.backbone.parameters()).fill_(float("nan"))

    data = DigitsDataModule(normalize=False, batch_size=64)
    for version, poison in enumerate([[], [PoisonAtStep4()]]):
        task = ImageRestoration(functools.partial(HourglassMLP, variant="tiny", depth=1), (1, 8, 8))
        guard = DivergenceGuard(check_every_n_steps=5)
        trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=1,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            logger=TensorBoardLogger(tmp_path / "runs", version=version),
                            callbacks=[*poison, guard, RunSummary()])  # fmt: skip
        if not poison:
            trainer.fit(task, datamodule=data)
            continue
        with pytest.raises(TrainingDivergedError, match="the training loss became nan at step 5 "):
            trainer.fit(task, datamodule=data)
    runs = tmp_path / "runs" / "lightning_logs"
    assert json.loads((runs / "version_0" / "summary.json").read_text())["status"] == "ok"
    summary = json.loads((runs / "version_1" / "summary.json").read_text())
    assert summary["status"] == "diverged" and (summary["steps"], summary["epochs"]) == (5, 1)
    assert summary["best_val"] > 5  # the validation of epoch 0, before the NaN
    error = summary["diverged"].pop("error")
    assert summary["diverged"] == {"step": 5, "epoch": 1, "value": "nan"}
    assert error.startswith("training diverged: the training loss became nan at step 5 (epoch 1, batch 1)")

    printed = compare.compare([str(runs)], tmp_path / "out")
    assert "2 runs (1 diverged: in the table, not in the figures);" in printed
    with open(tmp_path / "out" / "compare.csv") as handle:
        assert sorted(row["status"] for row in csv.DictReader(handle)) == ["diverged at step 5", "ok"]
