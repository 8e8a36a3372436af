"""ImageFitting through the CLI: whole-image PSNR, the TensorBoard fit, FreSh, checkpoints, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlplab.data import ImageFittingDataModule
from mlplab.models import SIREN
from mlplab.tasks import ImageFitting
from tests.helpers import assert_padding_rows_are_left_out

QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


@pytest.fixture
def picture(tmp_path):
    rows, cols = np.mgrid[0:12, 0:16]
    pixels = np.stack([rows * 20, cols * 15, (rows + cols) * 9], -1).astype(np.uint8)
    path = tmp_path / "gradient.png"
    Image.fromarray(pixels).save(path)
    return path


def fit_args(picture, root, *extra):
    return ["fit", "--model=ImageFitting", "--model.backbone=SIREN", "--model.backbone.embed_dim=16",
            "--model.backbone.depth=2",
            "--model.optimizer=torch.optim.Adam", "--model.optimizer.lr=0.01", "--model.lr_scheduler=null",
            "--data=ImageFittingDataModule", f"--data.image={picture}", "--data.batch_size=64",
            "--trainer.max_epochs=4", f"--trainer.default_root_dir={root}", *QUIET, *extra]  # fmt: skip


def test_fit_logs_whole_image_psnr_and_the_fit_image(cli, picture, tmp_path):
    assert cli(*fit_args(picture, tmp_path / "runs", "--model.target_psnr=5")) == 0
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
    psnr = [e.value for e in events.Scalars("val/psnr")]
    assert len(psnr) == 4 and psnr[-1] > psnr[0] > 0
    assert events.Scalars("train/seconds_to_psnr")[0].value > 0
    image = events.Images("val/fit")[-1]
    assert (image.width, image.height) == (2 * 16 + 2, 12)  # the fit, a gap, the target
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["image_shape"] == (3, 12, 16)
    assert cli("test", f"--config={run / 'config.yaml'}", f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
               *QUIET) == 0  # fmt: skip
    # predict writes the fitted image beside predictions.pt (it wrote only the pixels' tensors)
    assert cli("predict", f"--config={run / 'config.yaml'}", "--ckpt_path=best", *QUIET) == 0
    predicted = tmp_path / "runs" / "lightning_logs" / "version_2"
    pixels = torch.load(predicted / "predictions.pt", weights_only=True)["predictions"]
    with Image.open(predicted / "predictions.png") as written:
        assert written.size == (16, 12) and written.mode == "RGB"
        expected = pixels.clamp(0, 1).mul(255).round().to(torch.uint8).view(12, 16, 3).numpy()
        np.testing.assert_array_equal(np.asarray(written), expected)


def test_whole_image_psnr_is_computed_over_every_pixel(picture):
    data = ImageFittingDataModule(str(picture), eval_batch_size=50)
    task = ImageFitting(lambda *shapes: SIREN(*shapes, embed_dim=8, depth=1), image_shape=data.image_shape)
    data.setup()
    task.eval()
    for coords, colours in data.val_dataloader():
        task.val_psnr.update(task(coords).clamp(0, 1), colours)
    coords, colours = data.splits["all"]
    mse = (task(coords).clamp(0, 1) - colours).pow(2).mean()
    assert task.val_psnr.compute().item() == pytest.approx((-10 * torch.log10(mse)).item(), rel=1e-4)


def test_fresh_chooses_the_scale_before_training_and_a_resumed_fit_keeps_it(cli, picture, tmp_path, caplog):
    fresh = ["--model.backbone.fresh.candidates=[3.0, 300.0]", "--model.backbone.fresh.spectrum_size=8",
             "--model.backbone.fresh.samples=1"]  # fmt: skip
    assert cli(*fit_args(picture, tmp_path / "runs", *fresh, "--trainer.max_epochs=1")) == 0
    assert "FreSh chose frequency_scale 3 for SIREN" in caplog.text
    caplog.clear()
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert saved["backbone.layers.0.omega"].item() == 3.0
    assert (
        cli(*fit_args(picture, tmp_path / "runs", *fresh, "--trainer.max_epochs=2", "--ckpt_path=last")) == 0
    )
    assert "FreSh chose" not in caplog.text and "Restored all states" in caplog.text


@pytest.mark.parametrize(
    ("make", "extra", "cause"),
    [
        (lambda d: d.joinpath("broken.png").write_text("not an image") and d / "broken.png", [],
         "cannot decode the image"),
        (lambda d: d / "missing.png", [], "image '"),
        (None, ["--data.max_memory_fraction=0.0000001"], "coordinate grid (192 pixels"),
    ],
    ids=["undecodable", "missing", "grid-too-large"],
)  # fmt: skip
def test_bad_images_end_with_one_error_line(cli, capsys, picture, tmp_path, make, extra, cause):
    image = picture if make is None else make(tmp_path)
    capsys.readouterr()
    assert cli(*fit_args(image, tmp_path / "bad", *extra)) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and cause in errors[0], err[-1500:]
    assert "Traceback" not in err


@pytest.mark.gpu
def test_fit_with_fresh_on_the_gpu_under_bf16(cli, picture, tmp_path, caplog):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    fresh = ["--model.backbone.fresh.candidates=[3.0, 30.0]", "--model.backbone.fresh.spectrum_size=8"]
    args = fit_args(picture, tmp_path / "gpu", *fresh, "--trainer.precision=bf16-mixed")
    args = [a for a in args if a != "--trainer.accelerator=cpu"] + ["--trainer.accelerator=gpu"]
    assert cli(*args) == 0
    assert "FreSh chose frequency_scale" in caplog.text
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "gpu" / "lightning_logs" / "version_0"
    psnr = [e.value for e in EventAccumulator(str(run)).Reload().Scalars("val/psnr")]
    assert psnr[-1] > psnr[0]


def test_the_rows_padding_a_process_share_are_left_out_of_every_metric(picture, tmp_path):
    data = ImageFittingDataModule(str(picture))
    task = ImageFitting(lambda *shapes: SIREN(*shapes, embed_dim=8, depth=1), image_shape=data.image_shape)
    data.setup()
    pixels = tuple(t[:-1] for t in data.split_tensors("all"))  # 12 x 16 - 1: an odd count
    assert_padding_rows_are_left_out(task, pixels, 50, tmp_path)
