"""Images, figures and text reach every configured logger; the logger presets; their one-line errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import warnings
from pathlib import Path
from unittest import mock

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger  # noqa: E402
from PIL import Image  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from mlplab.loggers import log_figure, log_image, log_text  # noqa: E402
from tests.conftest import REPO  # noqa: E402

PRESETS = sorted((REPO / "configs" / "logger").glob("*.yaml"))
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
TINY_FIT = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.default_root_dir=run",
    "--model.backbone.init_args.embed_dim=32",
    "--model.backbone.init_args.mlp_dim=8",
    "--model.num_logged_images=3",
]


def _media(loggers: list[Logger], step: int = 7) -> None:
    image = torch.zeros(3, 4, 6)
    image[0] = 1.0  # red
    figure, axes = plt.subplots(figsize=(2, 1.5), dpi=50)
    axes.plot([0, 1], [1, 0])
    log_image(loggers, "val/samples", image, step)
    log_figure(loggers, "val/forecasts", figure, step)
    log_text(loggers, "val/sample", "To be,\nor not", step)
    log_text(loggers, "sweep/best", "| a | b |\n|---|---|\n| 1 | 2 |", step, markdown=True)
    plt.close(figure)


def test_tensorboard_gets_images_figures_and_text(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    _media([logger])
    logger.finalize("success")
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert {"val/samples", "val/forecasts"} <= set(events.Tags()["images"])
    image = events.Images("val/samples")[0]
    assert (image.step, image.width, image.height) == (7, 6, 4)
    texts = {
        tag: events.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]
    }
    assert texts["val/sample/text_summary"] == "    To be,\n    or not"  # preformatted
    assert texts["sweep/best/text_summary"].startswith("| a | b |")  # rendered as markdown


def test_csv_files_sit_beside_the_metrics(tmp_path):
    logger = CSVLogger(tmp_path)
    _media([logger])
    media = Path(logger.log_dir) / "media"
    pixels = np.asarray(Image.open(media / "val" / "samples" / "step_7.png"))
    assert pixels.shape == (4, 6, 3) and (pixels[..., 0] == 255).all() and (pixels[..., 1:] == 0).all()
    assert Image.open(media / "val" / "forecasts" / "step_7.png").size == (100, 75)
    assert (media / "val" / "sample" / "step_7.txt").read_text() == "To be,\nor not"
    assert (media / "sweep" / "best" / "step_7.md").read_text().startswith("| a | b |")


def test_pixels_that_are_not_finite_are_drawn_black_or_white(tmp_path):
    image = torch.full((1, 2, 3), 0.5)
    image[0, 0] = torch.tensor([float("nan"), float("-inf"), float("inf")])
    logger = CSVLogger(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's "invalid value encountered in cast"
        log_image([logger], "val/samples", image, 1)
        log_image([TensorBoardLogger(tmp_path)], "val/samples", image, 1)
    pixels = np.asarray(Image.open(Path(logger.log_dir) / "media" / "val" / "samples" / "step_1.png"))
    assert pixels.tolist()[0] == [0, 0, 255] and set(pixels.tolist()[1]) <= {127, 128}  # gray stays gray


def test_a_tag_cannot_leave_the_media_folder(tmp_path):
    logger = CSVLogger(tmp_path)
    log_text([logger], "../../x y", "hi", 1)
    assert (Path(logger.log_dir) / "media" / "x_y" / "step_1.txt").read_text() == "hi"


def test_weights_and_biases_gets_pixels_and_a_text_table():
    """Lightning's WandbLogger with its two calls replaced: what mlplab hands it (no wandb needed)."""
    logger = mock.create_autospec(WandbLogger, instance=True)
    _media([logger])
    images = [call.kwargs for call in logger.log_image.call_args_list]
    assert [(c["key"], c["step"]) for c in images] == [("val/samples", 7), ("val/forecasts", 7)]
    assert images[0]["images"][0].shape == (4, 6, 3) and images[0]["images"][0].dtype == np.uint8
    assert images[1]["images"][0].shape == (75, 100, 3)
    texts = [call.kwargs for call in logger.log_text.call_args_list]
    assert texts[0] == {"key": "val/sample", "columns": ["text"], "data": [["To be,\nor not"]], "step": 7}


def test_weights_and_biases_offline_writes_the_media(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="mlplab-test")
    _media([logger])
    logger.experiment.finish()
    files = list(tmp_path.glob("wandb/offline-run-*/files/media/**/*"))
    names = sorted(f.name.split("_")[0] for f in files if f.is_file())
    assert sum(n == "samples" for n in names) == 1 and sum(n == "forecasts" for n in names) == 1
    tables = [f for f in files if f.name.endswith(".table.json")]
    assert any(json.loads(t.read_text())["data"] == [["To be,\nor not"]] for t in tables)


def test_mlflow_local_file_store_gets_artifacts(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    logger = MLFlowLogger(experiment_name="test", save_dir=str(tmp_path / "mlruns"))
    _media([logger])
    artifacts = next((tmp_path / "mlruns").glob("*/*/artifacts/media"))
    assert (artifacts / "val" / "sample" / "step_7.txt").read_text() == "To be,\nor not"
    assert Image.open(artifacts / "val" / "samples" / "step_7.png").size == (6, 4)
    assert (artifacts / "val" / "forecasts" / "step_7.png").is_file()


def test_another_logger_kind_is_skipped_with_one_warning():
    class Elsewhere(Logger):
        name, version = "elsewhere", 0

        def log_metrics(self, metrics, step=None):
            pass

        def log_hyperparams(self, params, *args, **kwargs):
            pass

    with pytest.warns(UserWarning, match="Elsewhere gets no images, figures or text from mlplab") as caught:
        _media([Elsewhere()])
    assert len(caught) == 1


# ---------------------------------------------------------------------------------------- presets
def test_there_is_a_preset_per_logger():
    assert [p.stem for p in PRESETS] == ["csv", "mlflow", "tensorboard", "wandb"]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_each_preset_keeps_the_run_directory_and_gets_the_image_grid(preset, cli, tmp_path, monkeypatch):
    if preset.stem in ("wandb", "mlflow"):
        pytest.importorskip(preset.stem)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert cli("fit", "--config", QUICKSTART, "--config", str(preset), *TINY_FIT) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert "save_dir: run" in (run / "config.yaml").read_text()  # {default_root_dir} filled in
    found = {
        "csv": lambda: list(run.glob("media/val/samples/step_*.png")) and (run / "metrics.csv").is_file(),
        "tensorboard": lambda: "val/samples" in _image_tags(run),
        "wandb": lambda: list(tmp_path.glob("run/wandb/offline-run-*/files/media/images/val/samples_*.png")),
        "mlflow": lambda: list(tmp_path.glob("run/mlruns/*/*/artifacts/media/val/samples/step_*.png")),
    }[preset.stem]
    assert found()
    if preset.stem in ("wandb", "mlflow"):
        assert "val/samples" in _image_tags(run)  # TensorBoard beside them


def test_the_csv_preset_writes_no_tensorboard_events(cli, tmp_path):
    csv = str(REPO / "configs" / "logger" / "csv.yaml")
    assert cli("fit", "--config", QUICKSTART, "--config", csv, *TINY_FIT) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    checkpoint = str(run / "checkpoints" / "best.ckpt")
    assert cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", checkpoint) == 0
    assert json.loads((run / "summary.json").read_text())["test"] is not None
    assert not list((tmp_path / "run").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("preset", ["csv", "tensorboard"])
def test_best_and_last_find_the_runs_of_a_preset(preset, cli, tmp_path):
    # the presets' save_dir is "{default_root_dir}": --ckpt_path best / last looked for a folder of that name
    preset_file = str(REPO / "configs" / "logger" / f"{preset}.yaml")
    config = ["--config", QUICKSTART, "--config", preset_file, *TINY_FIT]
    assert cli("fit", *config) == 0
    assert cli("test", *config, "--ckpt_path", "best") == 0
    assert cli("fit", *config, "--trainer.max_epochs=2", "--ckpt_path", "last") == 0
    resumed = tmp_path / "run" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"  # its own run
    assert torch.load(resumed, weights_only=True)["global_step"] == 4  # 2 steps, then 2 more


@pytest.mark.parametrize("preset", ["csv", "tensorboard"])
def test_a_resumed_fit_under_a_preset_continues_in_the_checkpoints_run_directory(preset, cli, tmp_path):
    # under a preset the resumed fit continued in a new version_N (docs/reliability.md promises the
    # checkpoint's own), and compare showed the first folder's summary.json as a separate, shorter run
    preset_file = str(REPO / "configs" / "logger" / f"{preset}.yaml")
    config = ["--config", QUICKSTART, "--config", preset_file, *TINY_FIT]
    assert cli("fit", *config) == 0
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli("fit", *config, "--trainer.max_epochs=2", "--ckpt_path", "last") == 0
    assert not [w for w in caught if "not empty" in str(w.message)]  # of course it is not empty
    assert [path.name for path in run.parent.iterdir()] == ["version_0"]
    assert json.loads((run / "summary.json").read_text())["steps"] == 4
    assert (run / "config.1.yaml").is_file()  # the first part's config, kept
    if preset == "csv":
        with open(run / "metrics.csv") as handle:
            rows = list(csv.DictReader(handle))
        trained = sorted(int(row["step"]) for row in rows if row.get("epoch") and row.get("val/psnr"))
        assert trained == [1, 3]  # the first epoch's validation kept, the second's after it
    else:
        events = EventAccumulator(str(run))
        events.Reload()
        assert [event.step for event in events.Scalars("val/psnr")] == [1, 3]


def _image_tags(run: Path) -> list[str]:
    events = EventAccumulator(str(run))
    events.Reload()
    return events.Tags()["images"]


def test_an_unknown_preset_is_one_line(cli, capsys):
    missing = REPO / "configs" / "logger" / "neptune.yaml"
    assert cli("fit", "--config", QUICKSTART, "--config", str(missing)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: no logger preset 'neptune': {missing} does not exist; the presets are csv, mlflow, "
        "tensorboard, wandb"
    ]


@pytest.mark.parametrize(("preset", "package"), [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_logger_whose_package_is_missing_is_one_line(cli, capsys, preset, package):
    real = importlib.util.find_spec
    with mock.patch("importlib.util.find_spec", lambda name, *a: None if name == package else real(name, *a)):
        status = cli(
            "fit", "--config", QUICKSTART, "--config", str(REPO / "configs" / "logger" / f"{preset}.yaml")
        )
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: trainer.logger: ")
    assert f"needs the {package} package, which is not installed: pip install 'mlplab[{package}]'" in err[0]


def test_the_wandb_preset_without_a_login_is_one_line(cli, capsys):
    """Without `wandb login` or WANDB_MODE=offline the preset ended in W&B's 50-line traceback.

    W&B's own error, as its ``wandb.init`` raises it without a key (W&B keeps settings and runs in the
    process, so an earlier test's offline run would otherwise decide what this one sees).
    """
    wandb = pytest.importorskip("wandb")
    no_key = wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")
    preset = str(REPO / "configs" / "logger" / "wandb.yaml")
    with mock.patch.object(wandb, "run", None), mock.patch.object(wandb, "init", side_effect=no_key):
        assert cli("fit", "--config", QUICKSTART, "--config", preset, *TINY_FIT) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error", "Traceback"))]
    assert err == [
        "error: trainer.logger: Weights & Biases: No API key configured. Use `wandb login` to log in "
        "(or set WANDB_MODE=offline to log locally)"
    ]


@pytest.mark.parametrize("first", ["TensorBoardLogger", "CSVLogger"])
def test_tensorboard_and_csv_together_share_the_run_directory(first, cli, tmp_path):
    # Each logger numbered its own version_N: the CSV files of a run went to version_1 while its
    # TensorBoard events, checkpoints and config.yaml were in version_0.
    second = {"TensorBoardLogger": "CSVLogger", "CSVLogger": "TensorBoardLogger"}[first]
    entries = [f"    - class_path: {name}\n      init_args: {{save_dir: '{{default_root_dir}}'}}\n"
               for name in (first, second)]  # fmt: skip
    (tmp_path / "two.yaml").write_text("trainer:\n  logger:\n" + "".join(entries))
    for version in ("version_0", "version_1"):
        assert cli("fit", "--config", QUICKSTART, "--config", str(tmp_path / "two.yaml"), *TINY_FIT) == 0
        run = tmp_path / "run" / "lightning_logs" / version
        assert (run / "metrics.csv").is_file() and list(run.glob("media/val/samples/step_*.png"))
        assert list(run.glob("events.out.tfevents.*")) and (run / "checkpoints" / "best.ckpt").is_file()
    runs = sorted(path.name for path in (tmp_path / "run" / "lightning_logs").iterdir())
    assert runs == ["version_0", "version_1"]
