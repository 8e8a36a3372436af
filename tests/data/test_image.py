import numpy as np
import pytest
import torch

from mlplab.data import DigitsDataModule
from mlplab.data.image import ImageDataModule
from mlplab.errors import CheckpointError, ConfigError


def test_digits_splits_are_disjoint_reproducible_and_complete():
    data = DigitsDataModule()
    data.setup()
    sizes = {k: len(v[0]) for k, v in data.splits.items()}
    assert sizes == {"train": 1397, "val": 200, "test": 200}
    assert data.image_shape == (1, 8, 8) and data.num_classes == 10
    again = DigitsDataModule()
    again.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(data.splits[split][0], again.splits[split][0])
    other = DigitsDataModule(split_seed=1)
    other.setup()
    assert not torch.equal(data.splits["val"][0], other.splits["val"][0])
    # no image appears in two splits (compare raw bytes)
    rows = {
        split: {bytes(x.numpy()) + bytes([int(y)]) for x, y in zip(*data.splits[split])}
        for split in data.splits
    }
    assert len(rows["train"] & rows["test"]) < 5  # the dataset holds a few exact duplicates of its own


def test_normalisation_uses_the_training_split_only():
    data = DigitsDataModule()
    data.setup()
    train = data.splits["train"][0].double() / 255
    assert torch.allclose(data.mean, train.mean(dim=(0, 2, 3)).float())
    everything = torch.cat([v[0] for v in data.splits.values()]).double() / 255
    assert not torch.allclose(data.mean, everything.mean(dim=(0, 2, 3)).float(), atol=1e-6)
    images, labels = next(iter(data.train_dataloader()))
    x, y = data.on_after_batch_transfer((images, labels), 0)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(
        x.numpy(),
        ((images.float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)).numpy(),
        rtol=1e-5,
    )


def test_raw_pixels_when_not_normalised():
    data = DigitsDataModule(normalize=False, batch_size=16)
    x, _ = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
    assert x.shape == (16, 1, 8, 8)


def test_prototypes_are_the_first_training_image_of_each_class():
    data = DigitsDataModule(normalize=False)
    prototypes = data.class_prototypes()
    images, labels = data.splits["train"]
    for label in range(10):
        first = images[(labels == label).nonzero()[0, 0]]
        assert torch.equal(prototypes[label], first.float() / 255)


def test_flip_copies_grow_the_training_split_only():
    data = DigitsDataModule(flip_copies=4)
    data.setup()
    assert len(data.splits["train"][0]) == 4 * 1397 and len(data.splits["val"][0]) == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_val": 1700}, "must be positive and leave training images"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"flip_copies": 3}, "flip_copies must be 1, 2 or 4"),
        # a reversed range once crashed with a traceback at the first training batch; areas above 1 or
        # of 0 were taken silently
        ({"resized_crop_scale": [0.9, 0.1]}, r"resized_crop_scale must be \[low, high\] area fractions"),
        (
            {"resized_crop_scale": [1.5, 2.0]},
            r"0 < low <= high <= 1 \(e.g. \[0.08, 1.0\]\), got \[1.5, 2.0\]",
        ),
        ({"resized_crop_scale": [0.0, 0.0]}, "resized_crop_scale must be"),
        ({"resized_crop_scale": [0.5]}, "resized_crop_scale must be"),
        ({"split_seed": -1}, r"split_seed must be in \[0, 2\*\*32 - 1\], got -1"),  # once a traceback
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DigitsDataModule(**kwargs).setup()


class TinyImages(ImageDataModule):
    """24 training and 8 test images of 3x4x4 random pixels up to ``brightness`` (out of 255)."""

    image_shape = (3, 4, 4)
    num_classes = 2
    display_name = "tiny images"

    def __init__(self, brightness: int, **kwargs):
        super().__init__(num_val=4, batch_size=8, **kwargs)
        self.brightness = brightness

    def load_split(self, split):
        generator = torch.Generator().manual_seed(0 if split == "train" else 1)
        count = 24 if split == "train" else 8
        images = (torch.rand(count, 3, 4, 4, generator=generator) * self.brightness).to(torch.uint8)
        return images, torch.arange(count) % 2


def test_a_checkpoint_normalisation_is_kept_when_the_data_has_changed(caplog):
    # The data was recomputed at test time: brighter images since training gave other statistics,
    # so the model saw inputs normalised otherwise than in training. Now the checkpoint's are used
    # (restored after setup, as Lightning does, or before it) and the difference is said once.
    import logging

    trained = TinyImages(brightness=100)
    trained.setup()
    state = trained.state_dict()
    caplog.set_level(logging.INFO)
    for restored_after_setup in (True, False):
        brighter = TinyImages(brightness=250)
        if restored_after_setup:
            brighter.setup()
            assert not torch.allclose(brighter.mean, trained.mean)  # the data's own statistics moved
        brighter.load_state_dict(state)
        if not restored_after_setup:
            brighter.setup()
        assert torch.equal(brighter.mean, trained.mean) and torch.equal(brighter.std, trained.std)
        assert brighter.state_dict() == state  # a resumed fit's checkpoints keep them
        images, labels = next(iter(brighter.test_dataloader()))
        x, _ = brighter.on_after_batch_transfer((images, labels), 0)
        expected = (images.float() / 255 - trained.mean.view(1, -1, 1, 1)) / trained.std.view(1, -1, 1, 1)
        torch.testing.assert_close(x, expected)
    said = [r.getMessage() for r in caplog.records if "differ from the checkpoint's" in r.getMessage()]
    assert said == [
        "tiny images: the training split's per-channel mean [0.4672, 0.4809, 0.4948] and std [0.2883, "
        "0.2898, 0.2867] differ from the checkpoint's [0.1856, 0.1913, 0.1967] and [0.1153, 0.116, 0.1146] "
        "(the data has changed since training): its images are normalised with the checkpoint's"
    ]
    caplog.clear()
    same = TinyImages(brightness=100)
    same.setup()
    same.load_state_dict(state)
    assert not [r for r in caplog.records if "differ from the checkpoint's" in r.getMessage()]


def test_a_checkpoint_normalised_otherwise_is_one_line():
    trained = TinyImages(brightness=100)
    trained.setup()
    with pytest.raises(CheckpointError) as raised:
        TinyImages(brightness=100, normalize=False).load_state_dict(trained.state_dict())
    assert str(raised.value) == (
        "data.normalize: the checkpoint's model was trained with normalize True, the data now gives "
        "False; leave data.normalize as it was trained (the model would see pixels on another scale)"
    )


@pytest.mark.parametrize(("first_window", "every"), [(0, 1), (1, 2)])
def test_the_prediction_table_names_each_image_and_a_classifiers_prediction(first_window, every):
    # predict wrote predictions.pt alone: rows of a carved test split could not be traced to images
    data = DigitsDataModule(batch_size=16)
    data.setup()
    test_images, test_labels = data.splits["test"]
    shard = slice(first_window, None, every)
    probabilities = torch.rand(len(test_labels[shard]), 10).softmax(-1)
    outputs = {
        "probabilities": probabilities,
        "predictions": probabilities.argmax(-1),
        "labels": test_labels[shard],
    }
    table = data.prediction_table(outputs, first_window=first_window, every=every)
    assert list(table) == ["split", "index", "label", "prediction", "probability"]
    assert set(table["split"]) == {"train"}  # the digits have one split; the test images are carved from it
    images, labels = data.load_split("train")
    assert torch.equal(images[table["index"]], test_images[shard])
    assert (
        torch.equal(labels[table["index"]], test_labels[shard])
        and (table["label"] == test_labels[shard].numpy()).all()
    )
    assert np.allclose(table["probability"], probabilities.max(-1).values.numpy())
    restoration = data.prediction_table({"predictions": torch.zeros(len(test_labels), 1, 8, 8)})
    assert list(restoration) == ["split", "index"] and len(restoration["index"]) == len(test_labels)
