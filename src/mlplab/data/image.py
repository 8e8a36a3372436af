"""Base class of the image DataModules: in-memory uint8 images, seeded splits, batched augmentation."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from mlplab.data.augment import flip_copies, random_crop, random_horizontal_flip, random_resized_crop
from mlplab.data.common import require_trained_setting, resolve_data_dir, say_once
from mlplab.data.in_memory import InMemoryDataModule
from mlplab.errors import ConfigError

Split = Literal["train", "test"]


class ImageDataModule(InMemoryDataModule):
    """An image classification dataset held in memory as uint8 tensors ``(N, C, H, W)``.

    Subclasses say what the data is (``image_shape``, ``num_classes``), how to read an official split
    (``load_split``) and how to download it (``prepare_data``). This class does the rest:

    * **Splits**, reproducible from ``split_seed`` (a NumPy ``RandomState`` permutation, as in the
      Hourglass paper's code): validation images are held out of the official training split, and the
      official test split is the test set. With ``source_split: test`` the official test split alone is
      cut into train / validation / test, for machines that hold only the test files (MNIST's 10k test
      digits become 8k / 1k / 1k with ``num_val=1000, num_test=1000``).
    * **Normalisation** with per-channel mean and standard deviation measured on the training split
      only. Restoration tasks need raw pixels in [0, 1]: set ``normalize: false`` for them. Checkpoints
      keep the statistics (:meth:`state_dict`), and ``test``, ``validate``, ``predict`` and a resumed
      fit normalise with the checkpoint's, those the model was trained with, even when the data has
      changed since (a folder with more images).
    * **Batches** taken by index from the in-memory tensors (:class:`~mlplab.data.InMemoryDataModule`).
      On a GPU the whole dataset is moved to the accelerator once and never leaves it (``on_device``; by
      default whenever it takes less than a quarter of the free GPU memory).
    * **Augmentation** on the device, per batch, in ``on_after_batch_transfer``: random horizontal
      flips, random crops with padding, random resized crops. ``flip_copies`` instead appends
      deterministically flipped copies of the training set (the Hourglass paper's ×2 / ×4).

    Batches are ``(images, labels)``: float images ``(B, C, H, W)`` in [0, 1] (or normalised) and
    int64 labels ``(B,)``.

    Args:
        data_dir: Folder of the dataset files; ``None`` means ``$MLPLAB_DATA`` if set, else ``./data``.
        batch_size: Training batch size.
        eval_batch_size: Validation / test batch size; ``None`` means ``batch_size``.
        source_split: Official split the training and validation images come from (see above).
        num_val: Validation images; ``None`` means the dataset's default for ``source_split``.
        num_test: Test images, used only when the test set is cut from ``source_split``.
        split_seed: Seed of the split permutation (the data: the run's seed does not change it).
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        normalize: Standardise each channel with the training split's mean and std.
        horizontal_flip: Randomly mirror training images.
        crop_padding: Random crop after zero-padding by this many pixels (0: off; 4 for CIFAR).
        resized_crop_scale: Area range of a random resized crop, e.g. ``[0.08, 1.0]`` (``None``: off).
        flip_copies: Append 1 (none), 2 or 4 flipped copies of the training images.
        on_device: Keep the dataset on the accelerator and batch it there; ``None`` decides by size on GPUs.
        download: Download missing files when online.
    """

    #: (C, H, W) of every image; subclasses set it as a class attribute or a property.
    image_shape: tuple[int, int, int]
    #: Number of classes.
    num_classes: int
    #: Human-readable name used in messages.
    display_name: str = "dataset"
    #: Whether the dataset has an official test split separate from its training split.
    has_test_split: bool = True
    #: Default ``num_val`` when the validation set is cut from the training / test split.
    default_num_val: dict[str, int] = {"train": 5000, "test": 1000}
    summary = ("image_shape", "num_classes")
    evaluation_neutral_arguments = (
        *InMemoryDataModule.evaluation_neutral_arguments,
        "download", "horizontal_flip", "crop_padding", "resized_crop_scale", "flip_copies",
    )  # fmt: skip

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        source_split: Split = "train",
        num_val: int | None = None,
        num_test: int = 1000,
        split_seed: int = 42,
        shuffle_seed: int | None = None,
        normalize: bool = True,
        horizontal_flip: bool = False,
        crop_padding: int = 0,
        resized_crop_scale: tuple[float, float] | None = None,
        flip_copies: Literal[1, 2, 4] = 1,
        on_device: bool | None = None,
        download: bool = True,
    ):
        super().__init__(batch_size, eval_batch_size, shuffle_seed, on_device)
        name = type(self).__name__
        if source_split not in ("train", "test"):
            raise ConfigError(f"{name}: source_split must be 'train' or 'test', got {source_split!r}")
        if flip_copies not in (1, 2, 4):
            raise ConfigError(f"{name}: flip_copies must be 1, 2 or 4, got {flip_copies!r}")
        if crop_padding < 0:
            raise ConfigError(f"{name}: crop_padding must be >= 0, got {crop_padding}")
        if not 0 <= split_seed < 2**32:  # NumPy's RandomState seeds
            raise ConfigError(f"{name}: split_seed must be in [0, 2**32 - 1], got {split_seed}")
        if resized_crop_scale is not None and (
            len(resized_crop_scale) != 2 or not 0 < resized_crop_scale[0] <= resized_crop_scale[1] <= 1
        ):
            raise ConfigError(
                f"{name}: resized_crop_scale must be [low, high] area fractions with 0 < low <= high <= 1 "
                f"(e.g. [0.08, 1.0]), got {list(resized_crop_scale)}"
            )
        self.data_dir = resolve_data_dir(data_dir)
        self.source_split = source_split
        self.num_val = self.default_num_val[source_split] if num_val is None else num_val
        self.num_test = num_test
        self.split_seed = split_seed
        self.normalize = normalize
        self.horizontal_flip = horizontal_flip
        self.crop_padding = crop_padding
        self.resized_crop_scale = tuple(resized_crop_scale) if resized_crop_scale is not None else None
        self.flip_copies = flip_copies
        self.download = download
        self.mean = torch.zeros(1)
        self.std = torch.ones(1)
        self._device_statistics: tuple[torch.Tensor, torch.Tensor] | None = None
        self._prototypes: torch.Tensor | None = None
        #: The mean and std of a checkpoint (:meth:`load_state_dict`), used instead of the data's.
        self.checkpoint_statistics: tuple[torch.Tensor, torch.Tensor] | None = None

    # ----------------------------------------------------------------------------------- subclasses
    def load_split(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Read an official split: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------- splits
    def _carve(self, size: int, parts: tuple[int, ...]) -> list[np.ndarray]:
        """Split ``range(size)`` after a seeded permutation into consecutive parts of the given sizes."""
        order = np.random.RandomState(self.split_seed).permutation(size)
        bounds = np.cumsum((0, *parts))
        return [order[bounds[i] : bounds[i + 1]] for i in range(len(parts))]

    def build_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The carved splits; the normalisation statistics come from the training split, before flips.

        With a checkpoint's statistics (:meth:`load_state_dict`), those are kept instead.
        """
        splits = self._carve_splits()
        train_images = splits["train"][0].double() / 255
        self.mean = train_images.mean(dim=(0, 2, 3)).float()
        self.std = train_images.std(dim=(0, 2, 3)).float().clamp_min(1e-6)
        self._use_checkpoint_statistics()
        splits["train"] = flip_copies(*splits["train"], self.flip_copies)
        return splits

    def _use_checkpoint_statistics(self) -> None:
        """Normalise with the checkpoint's statistics, saying once when the data's differ from them."""
        self._device_statistics = None
        self._prototypes = None
        if self.checkpoint_statistics is None:
            return
        mean, std = self.checkpoint_statistics
        if self.normalize and not (
            torch.allclose(self.mean, mean, rtol=1e-5, atol=1e-7)
            and torch.allclose(self.std, std, rtol=1e-5, atol=1e-7)
        ):
            say_once(
                f"{self.display_name}: the training split's per-channel mean {_shown(self.mean)} and std "
                f"{_shown(self.std)} differ from the checkpoint's {_shown(mean)} and {_shown(std)} (the "
                "data has changed since training): its images are normalised with the checkpoint's"
            )
        self.mean, self.std = mean.clone(), std.clone()

    def state_dict(self) -> dict[str, Any]:
        """What a user of the trained model needs to prepare its inputs, kept in checkpoints.

        ``x = (pixels / 255 - mean) / std`` per channel (without ``normalize``: ``pixels / 255``);
        :func:`mlplab.load_run` returns it as the run's ``preprocessing``.
        """
        return {
            "preprocessing": {
                "image_shape": list(self.image_shape),
                "pixel_scale": 1 / 255,
                "normalize": self.normalize,
                "mean": self.mean.tolist() if self.normalize else None,
                "std": self.std.tolist() if self.normalize else None,
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the checkpoint's normalisation; refuse, in one line, a checkpoint normalised otherwise.

        The model was trained on images normalised with the training split's mean and std of then:
        ``test``, ``validate``, ``predict`` and a resumed fit use those (statistics recomputed from data
        that has changed since would feed the model inputs scaled otherwise, and that is said once). A
        checkpoint of another ``normalize`` is refused; one of an earlier version, which records no
        statistics, keeps the data's.
        """
        preprocessing = state.get("preprocessing") or {}
        require_trained_setting("normalize", preprocessing.get("normalize"), self.normalize, "pixels")
        mean, std = preprocessing.get("mean"), preprocessing.get("std")
        if self.normalize and mean is not None and std is not None:
            self.checkpoint_statistics = (
                torch.tensor(mean, dtype=torch.float32),
                torch.tensor(std, dtype=torch.float32),
            )
            if self.splits is not None:  # set up already (Lightning restores after setup)
                self._use_checkpoint_statistics()
        super().load_state_dict(state)

    def _carve_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        name = type(self).__name__
        carve_test = self.source_split == "test" or not self.has_test_split
        pool_images, pool_labels = self.load_split(self.source_split)
        size = len(pool_images)
        held_out = self.num_val + (self.num_test if carve_test else 0)
        if self.num_val <= 0 or (carve_test and self.num_test <= 0) or held_out >= size:
            raise ConfigError(
                f"{name}: num_val={self.num_val}"
                + (f" + num_test={self.num_test}" if carve_test else "")
                + f" must be positive and leave training images out of the {size} in the "
                f"{self.source_split} split"
            )
        if carve_test:
            train, val, test = self._carve(size, (size - held_out, self.num_val, self.num_test))
            test_split = (pool_images[test], pool_labels[test])
        else:
            train, val = self._carve(size, (size - held_out, self.num_val))
            test_split, test = self.load_split("test"), None
        #: Where each split's images come from: (official split, indices in it; None: all, in order).
        self.split_sources = {
            "train": (self.source_split, train),
            "val": (self.source_split, val),
            "test": (self.source_split, test) if carve_test else ("test", None),
        }
        return {
            "train": (pool_images[train], pool_labels[train]),
            "val": (pool_images[val], pool_labels[val]),
            "test": test_split,
        }

    def prediction_table(
        self, outputs: dict[str, torch.Tensor], first_window: int = 0, every: int = 1
    ) -> dict[str, np.ndarray]:
        """Which image each row of ``predict`` is, and a classifier's prediction: one row per image.

        ``split`` and ``index`` name the image in the dataset's own split (the test split may be carved
        from ``source_split`` by ``split_seed``): ``load_split(split)[0][index]`` is the image, the row's
        entry of ``predictions.pt`` its prediction. A classifier's rows add ``label``, ``prediction``
        (class indices) and the prediction's ``probability``.

        Args:
            outputs: What the task's ``predict_step`` returned, concatenated.
            first_window: Index (in the split) of the first image in ``outputs``.
            every: The step between images (a process of several takes every ``world_size``-th image).
        """
        if self.splits is None:
            self.setup()
        split = self.loader_splits["predict"]
        source, indices = self.split_sources[split]
        if indices is None:
            indices = np.arange(len(self.splits[split][0]))
        rows = len(next(iter(outputs.values())))
        columns: dict[str, np.ndarray] = {
            "split": np.full(rows, source, dtype=object),
            "index": np.asarray(indices)[first_window::every][:rows],
        }
        if {"labels", "predictions", "probabilities"} <= outputs.keys():
            predictions = outputs["predictions"].long()
            columns["label"] = outputs["labels"].long().numpy()
            columns["prediction"] = predictions.numpy()
            probabilities = outputs["probabilities"].float().gather(1, predictions[:, None])[:, 0]
            columns["probability"] = probabilities.numpy()
        return columns

    # ------------------------------------------------------------------------ on-device transforms
    def to_model_input(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """Convert uint8 images to float in [0, 1], augment (training only), then normalise."""
        images = images.float().div_(255)
        if augment:
            if self.resized_crop_scale is not None:
                images = random_resized_crop(images, self.resized_crop_scale)
            if self.crop_padding:
                images = random_crop(images, self.crop_padding)
            if self.horizontal_flip:
                images = random_horizontal_flip(images)
        if self.normalize:
            mean, std = self._statistics_on(images.device)
            images = (images - mean) / std
        return images

    def _statistics_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std shaped ``(1, C, 1, 1)`` on ``device``, copied there once.

        A host-to-device copy per batch would make the host wait for the accelerator every step.
        """
        if self._device_statistics is None or self._device_statistics[0].device != device:
            self._device_statistics = (
                self.mean.view(1, -1, 1, 1).to(device),
                self.std.view(1, -1, 1, 1).to(device),
            )
        return self._device_statistics

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int):
        images, labels = batch
        augment = self.trainer is not None and self.trainer.training
        return self.to_model_input(images, augment=augment), labels

    def class_prototypes(self) -> torch.Tensor:
        """The first training image of every class, ``(num_classes, C, H, W)``, as the model sees it."""
        if self._prototypes is None:
            if self.splits is None:
                self.setup()
            images, labels = self.splits["train"]
            labels = labels.cpu()
            firsts = []
            for label in range(self.num_classes):
                where = torch.nonzero(labels == label)
                if len(where) == 0:
                    raise ConfigError(
                        f"{type(self).__name__}: class {label} has no training image, so it has no prototype"
                    )
                firsts.append(int(where[0]))
            self._prototypes = self.to_model_input(images[torch.tensor(firsts, device=images.device)].cpu())
        return self._prototypes


def _shown(values: torch.Tensor) -> str:
    """``[0.4914, 0.4822, 0.4465]``: statistics per channel, in messages."""
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"
