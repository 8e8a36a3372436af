"""ImageFittingDataModule: bundled, file, folder and URL images; the grid; refusals in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlplab.data import ImageFittingDataModule
from mlplab.data import fields as fields_module
from mlplab.data.fields import bundled_image, pixel_grid
from mlplab.errors import ConfigError, DataCorruptError, DataNotFoundError


def write_png(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def test_pixel_grid_holds_pixel_centres_row_major():
    grid = pixel_grid(2, 4)
    assert grid.shape == (8, 2)
    torch.testing.assert_close(grid[0], torch.tensor([-0.5, -0.75]))
    torch.testing.assert_close(grid[5], torch.tensor([0.5, -0.25]))  # row 1, column 1


def test_bundled_images_are_found_offline():
    assert bundled_image("china").is_file()  # scikit-learn's
    data = ImageFittingDataModule("china", size=24)
    assert data.image_shape == (3, 24, 36)
    if bundled_image("camera") is None:
        pytest.skip("scikit-image (the fields extra) is not installed")
    camera = ImageFittingDataModule("camera", size=[16, 16])
    assert camera.image_shape == (1, 16, 16)
    camera.setup()
    coords, colours = camera.splits["all"]
    assert coords.shape == (256, 2) and colours.shape == (256, 1) and 0 <= colours.min() < colours.max() <= 1


def test_file_folder_grayscale_and_training_stride(tmp_path):
    pixels = np.arange(4 * 6 * 3).reshape(4, 6, 3) * 3
    write_png(tmp_path / "b.png", pixels)
    write_png(tmp_path / "a.png", np.zeros((2, 2, 3)))
    data = ImageFittingDataModule(str(tmp_path / "b.png"), train_stride=2)
    assert data.image_shape == (3, 4, 6)
    data.setup()
    coords, colours = data.splits["all"]
    torch.testing.assert_close(colours[7], torch.tensor(pixels[1, 1], dtype=torch.float32) / 255)
    train_coords, _ = data.splits["train"]
    assert len(train_coords) == 2 * 3 and torch.equal(
        train_coords[1], coords[2]
    )  # rows 0, 2; columns 0, 2, 4
    torch.testing.assert_close(data.target_image()[:, 1, 1], colours[7])
    picked = ImageFittingDataModule(str(tmp_path), index=1, grayscale=True)
    assert picked.path.name == "b.png" and picked.image_shape == (1, 4, 6)
    with pytest.raises(ConfigError, match="data.index 2 is out of range: .* holds 2 images"):
        ImageFittingDataModule(str(tmp_path), index=2)


def test_the_prediction_image_is_the_whole_grid_clamped_or_none_for_a_part(tmp_path):
    data = ImageFittingDataModule(str(write_png(tmp_path / "g.png", np.zeros((3, 5)))), grayscale=True)
    values = torch.linspace(-0.5, 1.5, 15)[:, None]  # row-major, one channel
    image = data.prediction_image({"predictions": values})
    assert image.shape == (3, 5, 1) and image.dtype == np.uint8
    assert image[0, 0, 0] == 0 and image[2, 4, 0] == 255 and abs(int(image[1, 2, 0]) - 127.5) == 0.5
    assert data.prediction_image({"predictions": values[::2]}) is None  # one process's share of two


def test_loaders_serve_random_training_pixels_and_every_pixel_in_order_for_evaluation(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (8, 8))
    path = write_png(tmp_path / "i.png", noise)
    data = ImageFittingDataModule(str(path), batch_size=16, eval_batch_size=24)
    data.setup()
    train = list(data.train_dataloader())
    assert len(train) == 4 and not torch.equal(torch.cat([b[0] for b in train]), data.splits["all"][0])
    val = list(data.val_dataloader())
    assert [len(b[0]) for b in val] == [24, 24, 16]
    torch.testing.assert_close(torch.cat([b[0] for b in val]), pixel_grid(8, 8))


def test_an_undecodable_image_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    with pytest.raises(
        DataCorruptError, match=r"cannot decode the image .*notes.png \(UnidentifiedImageError"
    ):
        ImageFittingDataModule(str(bad))
    truncated = tmp_path / "cut.png"
    write_png(truncated, np.random.default_rng(0).integers(0, 255, (64, 64, 3)))
    truncated.write_bytes(truncated.read_bytes()[:200])  # the header survives, the pixels do not
    data = ImageFittingDataModule(str(truncated))
    with pytest.raises(DataCorruptError, match="cannot decode the image .*cut.png"):
        data.setup()


def test_a_grid_larger_than_memory_allows_is_refused_with_the_estimate(tmp_path, monkeypatch):
    path = write_png(tmp_path / "big.png", np.zeros((200, 300, 3)))
    monkeypatch.setattr(fields_module, "available_memory", lambda: 1_000_000)
    with pytest.raises(ConfigError) as refused:
        ImageFittingDataModule(str(path))
    message = str(refused.value)
    assert "the 200×300 image big.png needs 2.3 MiB for its coordinate grid (60,000 pixels" in message
    assert (
        "more than 0.5 of the 1.0 MiB available; fit a smaller copy with data.size (e.g. size: 91)" in message
    )
    assert ImageFittingDataModule(str(path), size=91).grid_bytes() <= 500_000


def test_missing_images_and_unreachable_urls_are_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="image 'no_such_picture' not found"):
        ImageFittingDataModule("no_such_picture")
    with pytest.raises(
        DataNotFoundError, match=r"image not found: expected x.png in .*fields; download failed"
    ):
        ImageFittingDataModule("http://127.0.0.1:9/x.png", data_dir=str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="no image files"):
        ImageFittingDataModule(str(empty))
