"""The 8×8 handwritten digits bundled with scikit-learn: a real dataset that needs no download."""

from __future__ import annotations

import numpy as np
import torch

from mlplab.data.image import ImageDataModule, Split


class DigitsDataModule(ImageDataModule):
    """scikit-learn's bundled digits: 1,797 greyscale 8×8 images, 10 classes, offline.

    The UCI optical-recognition digits (``sklearn.datasets.load_digits``), 17 grey levels (0–16)
    rescaled to 0–255. There is no official test split, so the images are cut into train /
    validation / test (default 1,397 / 200 / 200) by the seeded permutation. This is the dataset of
    the offline quickstart.

    Args:
        **kwargs: See :class:`~mlplab.data.image.ImageDataModule`; ``num_test`` defaults to 200 here.
    """

    image_shape = (1, 8, 8)
    num_classes = 10
    display_name = "scikit-learn digits"
    has_test_split = False
    default_num_val = {"train": 200, "test": 200}

    def __init__(self, num_test: int = 200, **kwargs):
        super().__init__(num_test=num_test, **kwargs)

    def prepare_data(self) -> None:
        """Nothing to download: the data ships with scikit-learn."""

    def load_split(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        return torch.from_numpy(images), torch.from_numpy(digits.target.astype(np.int64))
