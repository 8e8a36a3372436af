"""Any image classification dataset stored as ``<split>/<class>/<image>`` files, in a folder or an archive."""

from __future__ import annotations

import io
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from mlplab.data.image import ImageDataModule, Split
from mlplab.errors import CheckpointError, ConfigError, DataCorruptError, DataNotFoundError, require_positive

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES and not Path(name).name.startswith(".")


class ImageFolderDataModule(ImageDataModule):
    """Images in ImageFolder layout: ``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``.

    ``root`` is a folder or a ``.tar`` / ``.tar.gz`` archive holding that layout (for example the
    JPEG copy of CIFAR-10, ``cifar10-jpg.tar.gz``, read as it is or once unpacked). A relative ``root``
    that does not exist is looked up inside ``data_dir``. Class names are the sorted sub-folders of the
    training folder; the test folder must have the same ones. Checkpoints record them
    (``preprocessing.class_names``, which :func:`mlplab.load_run` returns), and ``test``, ``validate`` or
    ``predict`` of a checkpoint on a folder with other classes (names or count) is refused in one line:
    the model's class indices would name other classes. ``predict`` writes a table of the predictions
    by class name (``file``, ``label``, ``prediction``, ``probability``). Every image is decoded once, in
    parallel threads, into an in-memory uint8 tensor, so later epochs never decode again. Images must share
    one size unless ``image_size`` resizes them all.

    Args:
        root: The dataset folder or archive.
        train_folder: Sub-folder of the training split.
        test_folder: Sub-folder of the test split; ``None`` cuts the test set from the training split.
        image_size: Resize every image to this square size (``None``: keep sizes, which must agree).
        channels: 3 decodes as RGB, 1 as greyscale.
        max_images_per_class: Keep only the first images of each class, in file-name order (for quick
            experiments and tests); ``None`` keeps all.
        decode_threads: Threads decoding images.
        **kwargs: See :class:`~mlplab.data.image.ImageDataModule`.
    """

    display_name = "image folder"
    evaluation_neutral_arguments = (*ImageDataModule.evaluation_neutral_arguments, "decode_threads")
    default_num_val = {"train": 5000, "test": 1000}

    def __init__(
        self,
        root: str,
        train_folder: str = "train",
        test_folder: str | None = "test",
        image_size: int | None = None,
        channels: Literal[1, 3] = 3,
        max_images_per_class: int | None = None,
        decode_threads: int = 8,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if image_size is not None:
            require_positive("ImageFolderDataModule", image_size=image_size)
        if max_images_per_class is not None:
            require_positive("ImageFolderDataModule", max_images_per_class=max_images_per_class)
        require_positive("ImageFolderDataModule", decode_threads=decode_threads)
        if channels not in (1, 3):
            raise ConfigError(f"ImageFolderDataModule: channels must be 1 or 3, got {channels!r}")
        path = Path(root).expanduser()
        if not path.exists() and not path.is_absolute():
            path = self.data_dir / path
        if not path.exists():
            raise DataNotFoundError(
                f"image folder not found: {root} (also looked in {self.data_dir}); expected a folder or "
                f".tar/.tar.gz archive with {train_folder}/<class>/<image> files"
            )
        self.root = path
        self.train_folder = train_folder
        self.display_name = f"image folder {path / train_folder}"
        self.test_folder = test_folder
        self.image_size = image_size
        self.channels = channels
        self.max_images_per_class = max_images_per_class
        self.decode_threads = decode_threads
        self.has_test_split = test_folder is not None
        self._index = self._scan()
        train_classes = sorted({label for _, label in self._index["train"]})
        if not train_classes:
            raise DataNotFoundError(f"no images found under {self.root}/{train_folder}/<class>/")
        if test_folder is not None:
            test_classes = sorted({label for _, label in self._index["test"]})
            if test_classes != train_classes:
                raise DataCorruptError(
                    f"{self.root}: the class folders of {test_folder}/ ({len(test_classes)}) differ from "
                    f"those of {train_folder}/ ({len(train_classes)})"
                )
        self.class_names = train_classes
        self.num_classes = len(train_classes)
        first_name, _ = self._index["train"][0]
        first = self._decode(self._read(first_name), first_name)
        self.image_shape = (channels, first.shape[0], first.shape[1])

    # -------------------------------------------------------------------------------- file access
    def _is_archive(self) -> bool:
        return self.root.is_file() and self.root.name.endswith(ARCHIVE_SUFFIXES)

    def _scan(self) -> dict[str, list[tuple[str, str]]]:
        """(file name, class) pairs per split, sorted by class then name.

        An archive is read in one sequential pass that also keeps the bytes of the selected images in
        memory until they are decoded, so a compressed archive is decompressed only once.
        """
        folders = {"train": self.train_folder}
        if self.test_folder is not None:
            folders["test"] = self.test_folder
        by_folder = {folder: split for split, folder in folders.items()}
        found: dict[str, list[tuple[str, str]]] = {split: [] for split in folders}
        blobs: dict[str, bytes] = {}

        def consider(name: str) -> bool:
            parts = Path(name).parts
            parts = parts[1:] if parts and parts[0] == "." else parts
            if len(parts) == 3 and parts[0] in by_folder and _is_image(parts[2]):
                found[by_folder[parts[0]]].append((name, parts[1]))
                return True
            return False

        if self._is_archive():
            try:
                with tarfile.open(self.root) as archive:
                    for member in archive:
                        if member.isfile() and consider(member.name):
                            blobs[member.name] = archive.extractfile(member).read()
            except (tarfile.TarError, OSError, EOFError) as error:
                raise DataCorruptError(f"cannot read the archive {self.root} ({error})") from error
        elif self.root.is_dir():
            for path in self.root.rglob("*"):
                if path.is_file():
                    consider(str(path.relative_to(self.root)))
        else:
            raise ConfigError(
                f"ImageFolderDataModule: root {self.root} is neither a folder nor a .tar/.tar.gz"
            )

        for split, entries in found.items():
            entries.sort(key=lambda entry: (entry[1], entry[0]))
            if self.max_images_per_class is not None:
                count: dict[str, int] = {}
                kept = []
                for name, label in entries:
                    count[label] = count.get(label, 0) + 1
                    if count[label] <= self.max_images_per_class:
                        kept.append((name, label))
                found[split] = entries = kept
            if not entries:
                raise DataNotFoundError(f"no images found under {self.root}/{folders[split]}/<class>/")
        selected = {name for entries in found.values() for name, _ in entries}
        self._archive_bytes = {name: data for name, data in blobs.items() if name in selected}
        return found

    def _read(self, name: str) -> bytes:
        if self._is_archive():
            return self._archive_bytes[name]
        return (self.root / name).read_bytes()

    def _decode(self, data: bytes, name: str) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert("RGB" if self.channels == 3 else "L")
                if self.image_size is not None:
                    image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                array = np.asarray(image)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataCorruptError(f"cannot decode {self.root}/{name} ({error})") from error
        return array if array.ndim == 3 else array[:, :, None]

    # ---------------------------------------------------------------------------------- loading
    def prepare_data(self) -> None:
        """Nothing to download: the folder is the user's own."""

    def load_split(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        entries = self._index[split]
        names = [name for name, _ in entries]
        label_of = {name: index for index, name in enumerate(self.class_names)}
        labels = torch.tensor([label_of[label] for _, label in entries], dtype=torch.int64)
        blobs = [self._read(name) for name in names]
        progress = tqdm(total=len(names), desc=f"decoding {split} images", unit="img", leave=False)
        with progress, ThreadPoolExecutor(self.decode_threads) as pool:  # closed on errors too
            arrays = []
            for array in pool.map(self._decode, blobs, names, chunksize=256):
                arrays.append(array)
                progress.update()
        for name in names:  # decoded now: the compressed bytes are no longer needed
            self._archive_bytes.pop(name, None)
        sizes = {a.shape for a in arrays}
        if len(sizes) > 1:
            odd = next(n for n, a in zip(names, arrays) if a.shape != arrays[0].shape)
            raise ConfigError(
                f"ImageFolderDataModule: images differ in size ({arrays[0].shape[:2]} vs the one of {odd}); "
                "set image_size to resize them all"
            )
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return images, labels

    # ------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The image preprocessing (see :class:`ImageDataModule`) and the class names, in index order."""
        state = super().state_dict()
        state["preprocessing"]["class_names"] = list(self.class_names)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint trained on other classes (see :meth:`check_class_names`)."""
        self.check_class_names(state)
        super().load_state_dict(state)

    def check_class_names(self, state: dict[str, Any]) -> None:
        """Raise :class:`CheckpointError` when a checkpoint's data ``state`` names other classes.

        A class is the model's output at its position among the sorted folder names, so a folder with
        a class more, less or renamed would have the model's outputs name other classes. A checkpoint
        of an earlier version, which records no class names, is not checked.
        """
        saved = (state.get("preprocessing") or {}).get("class_names")
        if saved is None or list(saved) == list(self.class_names):
            return
        only_saved = [name for name in saved if name not in self.class_names]
        only_here = [name for name in self.class_names if name not in saved]
        differences = [
            f"{label}: {_shown(names)}"
            for label, names in (("trained on but not in the folder", only_saved), ("new", only_here))
            if names
        ]
        raise CheckpointError(
            f"the checkpoint's model was trained on {len(saved)} classes, the image folder "
            f"{self.root / self.train_folder} has {len(self.class_names)} "
            f"({'; '.join(differences) or 'in another order'}); its outputs would name other classes: "
            "use a folder with the classes it was trained on"
        )

    def prediction_table(
        self, outputs: dict[str, torch.Tensor], first_window: int = 0, every: int = 1
    ) -> dict[str, np.ndarray]:
        """The predictions of ``predict`` by class name: ``file``, ``label``, ``prediction``, ``probability``.

        ``file`` is the image's path in the folder or archive (``test/cat/0001.jpg``).

        Args:
            outputs: What the classification task's ``predict_step`` returned, concatenated.
            first_window: Index (in the split) of the first image in ``outputs``.
            every: The step between images (a process of several takes every ``world_size``-th image).
        """
        table = super().prediction_table(outputs, first_window, every)  # split, index (and classes)
        source, _ = self.split_sources[self.loader_splits["predict"]]
        files = np.array([name for name, _ in self._index[source]], dtype=object)
        columns = {"file": files[table["index"]]}
        if "label" in table:
            names = np.array(self.class_names, dtype=object)
            columns |= {
                "label": names[table["label"]],
                "prediction": names[table["prediction"]],
                "probability": table["probability"],
            }
        return columns


def _shown(names: list[str], limit: int = 5) -> str:
    """Up to ``limit`` names, then how many more."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
