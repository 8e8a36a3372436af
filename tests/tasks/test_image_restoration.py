import functools

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlplab.data import DigitsDataModule
from mlplab.errors import ConfigError
from mlplab.models import HourglassMLP
from mlplab.tasks import ImageRestoration

BACKBONE = functools.partial(HourglassMLP, embed_dim=128, mlp_dim=16, depth=2)


def test_denoise_inputs_are_noisy_clamped_and_eval_noise_is_fixed():
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10, mode="denoise", noise_std=0.3)
    images = torch.rand(64, 1, 8, 8)
    labels = torch.zeros(64, dtype=torch.long)
    noisy, target = task.degrade(images, labels)
    assert torch.equal(target, images) and noisy.min() >= 0 and noisy.max() <= 1
    assert 0.2 < (noisy - images).std() < 0.3  # clamping shrinks the noise a little
    indices = torch.arange(100, 164)
    first, _ = task.degrade(images, labels, indices)
    second, _ = task.degrade(images, labels, indices)
    assert torch.equal(first, second)
    # an image's evaluation noise is its own: the same in any batch, at any position
    order = torch.randperm(64)
    shuffled, _ = task.degrade(images[order], labels[order], indices[order])
    assert torch.equal(shuffled, first[order])
    assert not torch.equal(first[:32], task.degrade(images[:32], labels[:32], indices[32:])[0])


def test_super_resolution_downsamples_by_the_scale():
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10, mode="super_resolution", scale=2)
    assert task.input_shape == (1, 4, 4)
    assert task.backbone.input_shape == (1, 4, 4) and task.backbone.output_shape == (1, 8, 8)
    low, target = task.degrade(torch.rand(3, 1, 8, 8), torch.zeros(3, dtype=torch.long))
    assert low.shape == (3, 1, 4, 4) and target.shape == (3, 1, 8, 8)


def test_super_resolution_size_not_divisible():
    with pytest.raises(
        ConfigError,
        match="super-resolution ×3 needs an integer scale ≥ 2 dividing the image height and width, got .*8×8",
    ):
        ImageRestoration(BACKBONE, (1, 8, 8), 10, mode="super_resolution", scale=3)


def test_generative_classification_targets_are_class_prototypes():
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10, mode="generative_classification")
    task.prototypes.copy_(torch.rand(10, 1, 8, 8))
    labels = torch.tensor([3, 3, 7])
    images = torch.rand(3, 1, 8, 8)
    inputs, targets = task.degrade(images, labels)
    assert torch.equal(inputs, images) and torch.equal(targets, task.prototypes[labels])


@pytest.mark.parametrize("mode", ["denoise", "super_resolution"])
def test_denoising_and_super_resolution_need_no_classes(tmp_path, mode):
    # num_classes was required ("missing 1 required positional argument") though only the prototypes of
    # generative classification use it
    import mlplab

    torch.manual_seed(0)
    task = ImageRestoration(BACKBONE, (1, 8, 8), mode=mode)
    assert task.prototypes.shape == (0, 1, 8, 8)
    data = DigitsDataModule(normalize=False, batch_size=64)  # it has 10 classes: no refusal for the default
    trainer = L.Trainer(
        max_steps=1, limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(task, datamodule=data)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    run = mlplab.load_run(tmp_path / "model.ckpt")
    images = torch.rand(2, *task.input_shape)
    assert run.hyper_parameters["num_classes"] is None
    with torch.no_grad():
        torch.testing.assert_close(run.model.backbone(images), task.eval().backbone(images))


def test_generative_classification_without_classes_is_one_line():
    with pytest.raises(ConfigError) as raised:
        ImageRestoration(BACKBONE, (1, 8, 8), mode="generative_classification")
    assert str(raised.value) == (
        "ImageRestoration: generative_classification needs num_classes (its targets are the class "
        "prototypes): pass num_classes=data.num_classes"
    )


def test_normalised_data_is_refused():
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match="set data.init_args.normalize: false"):
        trainer.fit(task, datamodule=DigitsDataModule(normalize=True))


@pytest.mark.parametrize("mode", ["denoise", "super_resolution", "generative_classification"])
def test_trains_logs_metrics_and_an_image_grid(tmp_path, mode):
    torch.manual_seed(0)
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10, mode=mode, num_logged_images=4)
    data = DigitsDataModule(normalize=False, batch_size=64)
    logger = L.pytorch.loggers.TensorBoardLogger(tmp_path)
    trainer = L.Trainer(max_epochs=2, logger=logger, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(task, datamodule=data)
    metrics = trainer.callback_metrics
    assert {"val/psnr", "val/ssim", "val/loss"} <= metrics.keys()
    assert ("val/psnr_input" in metrics) == (mode != "generative_classification")
    if mode == "generative_classification":
        assert torch.equal(task.prototypes, data.class_prototypes())
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert "val/samples" in events.Tags()["images"]
    grid = events.Images("val/samples")[-1]
    assert (grid.width, grid.height) == (4 * 9 + 1, 3 * 9 + 1)  # 4 columns, rows input / prediction / target
    results = trainer.test(task, datamodule=data, verbose=False)[0]
    assert {"test/psnr", "test/ssim"} <= results.keys()
