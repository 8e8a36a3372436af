import pytest
import torch

from mlplab.data.augment import flip_copies, random_crop, random_horizontal_flip, random_resized_crop


def test_flip_is_a_mirror_or_identity():
    images = torch.rand(64, 3, 5, 7)
    flipped = random_horizontal_flip(images)
    same = (flipped == images).flatten(1).all(1)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_crop_shifts_content_within_padding():
    images = torch.zeros(32, 1, 8, 8)
    images[:, :, 4, 4] = 1.0
    cropped = random_crop(images, padding=2)
    assert cropped.shape == images.shape
    where = cropped[:, 0].flatten(1).argmax(1)
    rows, cols = where // 8, where % 8
    assert ((rows - 4).abs() <= 2).all() and ((cols - 4).abs() <= 2).all()
    assert len(set(where.tolist())) > 1


def test_resized_crop_full_scale_is_identity_shape_and_range():
    images = torch.rand(16, 3, 32, 32)
    out = random_resized_crop(images, scale=(0.08, 1.0))
    assert out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1
    same = random_resized_crop(images, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)


@pytest.mark.parametrize("copies", [1, 2, 4])
def test_flip_copies(copies):
    images, labels = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    out, out_labels = flip_copies(images, labels, copies)
    assert len(out) == 3 * copies and out_labels.tolist() == [0, 1, 2] * copies
    assert torch.equal(out[:3], images)
    if copies == 2:
        assert torch.equal(out[3:], images.flip(-1).flip(-2))
