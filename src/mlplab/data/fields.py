"""The pixels of one image as (coordinates, colour) pairs: the data of neural-field image fitting."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mlplab.data.common import download_file, missing_data_message, resolve_data_dir
from mlplab.data.in_memory import InMemoryDataModule, shuffle_seed_or_alias
from mlplab.errors import ConfigError, DataCorruptError, DataNotFoundError, require_positive

#: Extensions of the files a folder is searched for.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: Images that ship with scikit-learn (``sklearn.datasets.load_sample_image``): always offline.
SKLEARN_IMAGES = ("china", "flower")

#: PIL modes of grey images (fitted as one channel); every other mode is fitted as RGB.
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "F")

#: Bytes per pixel of the in-memory grid: float32 coordinates (2) and colours (C), for every pixel once
#: (evaluation) and for the training pixels once more.
FLOAT_BYTES = 4


def bundled_image(name: str) -> Path | None:
    """The file of an image that ships inside a dependency, by name, or ``None``.

    scikit-image's samples (``astronaut``, ``camera`` (the cameraman), ``coffee``, ``chelsea``, ...:
    the PNG and JPEG files in ``skimage/data``; scikit-image is the ``fields`` extra) and
    scikit-learn's (``china``, ``flower``).
    """
    if name in SKLEARN_IMAGES:
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images" / f"{name}.jpg"
    try:
        import skimage.data
    except ImportError:
        return None
    folder = Path(skimage.data.__file__).parent
    for extension in (".png", ".jpg"):
        if (folder / f"{name}{extension}").is_file():
            return folder / f"{name}{extension}"
    return None


def available_memory() -> int:
    """Bytes of memory this process can still take (the system's available memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """Coordinates ``(H W, 2)`` of the pixel centres, (row, column) in [-1, 1], row-major."""
    rows = (2 * torch.arange(height, dtype=torch.float32) + 1) / height - 1
    cols = (2 * torch.arange(width, dtype=torch.float32) + 1) / width - 1
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).view(-1, 2)


def _gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


class ImageFittingDataModule(InMemoryDataModule):
    """The pixels of one image, for fitting a neural field: (coordinates, colour) pairs.

    The image is one that ships inside a dependency (offline: scikit-image's ``astronaut``,
    ``camera``, ``coffee``, ... with the ``fields`` extra; scikit-learn's ``china`` and ``flower``),
    any image file, an ``http(s)://`` URL (downloaded once into ``data_dir/fields/``), or a folder of
    images, of which ``index`` picks one (sorted by name; fit them one by one with ``--data.index``).

    Training batches are random pixels (``train_stride`` 1: all of them; 2: every second row and
    column, so that the other pixels test generalisation, as CAM's image experiments do); validation,
    test and prediction go through every pixel in row-major order, so the task can assemble the whole
    image. Coordinates are pixel centres, (row, column) in [-1, 1]; colours are in [0, 1].

    The grid lives in memory (float32 coordinates and colours). An image whose grid would take more
    than ``max_memory_fraction`` of the available memory is refused in one line with the estimate,
    before anything is decoded; an image file that cannot be decoded is refused in one line too.

    Args:
        image: A bundled image's name, a file, a folder or a URL.
        index: Which image of a folder (sorted by file name).
        size: Resize first: an int sets the shorter side (aspect kept), ``[H, W]`` both; ``None``: as is.
        grayscale: Fit the luminance only (one channel).
        train_stride: Train on every ``train_stride``-th row and column (1: every pixel).
        max_memory_fraction: Refuse grids larger than this fraction of the available memory.
        data_dir: Where downloaded images are kept; ``None``: ``$MLPLAB_DATA`` or ``./data``.
        batch_size: Pixels per training batch.
        eval_batch_size: Pixels per evaluation batch.
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        on_device: Keep the pixels on the accelerator (see :class:`~mlplab.data.InMemoryDataModule`).
        seed: Deprecated name of ``shuffle_seed`` (run folders written before it keep their order).
    """

    loader_splits = {"train": "train", "val": "all", "test": "all", "predict": "all"}
    #: ``seed``: the deprecated name of ``shuffle_seed``
    evaluation_neutral_arguments = (*InMemoryDataModule.evaluation_neutral_arguments, "seed")
    summary = ("image", "image_shape", "train_stride")

    def __init__(
        self,
        image: str = "astronaut",
        index: int = 0,
        size: int | list[int] | None = None,
        grayscale: bool = False,
        train_stride: int = 1,
        max_memory_fraction: float = 0.5,
        data_dir: str | None = None,
        batch_size: int = 8192,
        eval_batch_size: int | None = 65536,
        shuffle_seed: int | None = None,
        on_device: bool | None = None,
        seed: int | None = None,
    ):
        shuffle_seed = shuffle_seed_or_alias(type(self).__name__, shuffle_seed, seed)
        super().__init__(batch_size, eval_batch_size, shuffle_seed, on_device)
        require_positive("ImageFittingDataModule", train_stride=train_stride)
        if not 0 < max_memory_fraction <= 1:
            raise ConfigError(
                f"ImageFittingDataModule: max_memory_fraction must be in (0, 1], got {max_memory_fraction}"
            )
        self.image = image
        self.index = index
        self.grayscale = grayscale
        self.train_stride = train_stride
        self.data_dir = resolve_data_dir(data_dir)
        self.path = self._locate(image, index)
        width, height, mode = self._header(self.path)
        self.size = self._target_size(size, height, width)
        channels = 1 if grayscale or mode in GREY_MODES else 3
        self.image_shape = (channels, *self.size)
        self._check_memory(max_memory_fraction)

    # ------------------------------------------------------------------------------------ locating
    def _locate(self, image: str, index: int) -> Path:
        if image.startswith(("http://", "https://")):
            name = Path(urllib.parse.urlparse(image).path).name or "image"
            folder = self.data_dir / "fields"
            if (folder / name).is_file():
                return folder / name
            try:
                return download_file(image, folder / name)
            except OSError as error:
                reason = str(getattr(error, "reason", error))
                raise DataNotFoundError(
                    missing_data_message("image", folder, [name], image, reason)
                ) from error
        path = Path(image).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise DataNotFoundError(
                    f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder {path}"
                )
            if not 0 <= index < len(files):
                raise ConfigError(f"data.index {index} is out of range: {path} holds {len(files)} images")
            return files[index]
        if path.is_file():
            return path
        bundled = bundled_image(image)
        if bundled is not None:
            return bundled
        hint = " (scikit-image's samples need `pip install mlplab[fields]`)" if "/" not in image else ""
        raise DataNotFoundError(
            f"image {image!r} not found: not a file, a folder, a URL or a bundled image "
            "(scikit-image's astronaut, camera, coffee, ...; scikit-learn's "
            f"{', '.join(SKLEARN_IMAGES)}){hint}"
        )

    @staticmethod
    def _header(path: Path) -> tuple[int, int, str]:
        """Width, height and PIL mode, from the file's header (nothing is decoded)."""
        try:
            with Image.open(path) as opened:
                return opened.width, opened.height, opened.mode
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataCorruptError(
                f"cannot decode the image {path} ({type(error).__name__}: {error})"
            ) from error

    @staticmethod
    def _target_size(size: int | list[int] | None, height: int, width: int) -> tuple[int, int]:
        if size is None:
            return height, width
        if isinstance(size, int):
            require_positive("ImageFittingDataModule", size=size)
            scale = size / min(height, width)
            return max(1, round(height * scale)), max(1, round(width * scale))
        if len(size) != 2:
            raise ConfigError(f"data.size must be an int (the shorter side) or [height, width], got {size}")
        require_positive("ImageFittingDataModule", height=size[0], width=size[1])
        return int(size[0]), int(size[1])

    def grid_bytes(self) -> int:
        """Bytes the pixel grid takes in memory (coordinates and colours, all pixels and training ones)."""
        channels, height, width = self.image_shape
        train = -(-height // self.train_stride) * -(-width // self.train_stride)
        return (height * width + train) * (2 + channels) * FLOAT_BYTES

    def _check_memory(self, fraction: float) -> None:
        needed, available = self.grid_bytes(), available_memory()
        if needed > fraction * available:
            channels, height, width = self.image_shape
            shorter = min(height, width)
            suggestion = max(1, int(shorter * (fraction * available / needed) ** 0.5))
            raise ConfigError(
                f"ImageFittingDataModule: the {height}×{width} image {self.path.name} needs {_gib(needed)} "
                f"for its coordinate grid ({height * width:,} pixels × (2 coordinates + {channels} colours) "
                "× 4 bytes, "
                f"with the training copy), more than {fraction:g} of the {_gib(available)} available; "
                f"fit a smaller copy with data.size (e.g. size: {suggestion})"
            )

    # ------------------------------------------------------------------------------------ loading
    def prepare_data(self) -> None:
        """Nothing to download beyond what ``__init__`` fetched (URLs)."""

    def load_image(self) -> torch.Tensor:
        """The image as float32 ``(C, H, W)`` in [0, 1], resized and converted as configured."""
        try:
            with Image.open(self.path) as opened:
                mode = "L" if self.image_shape[0] == 1 else "RGB"
                picture = opened.convert(mode)
                if picture.size != (self.size[1], self.size[0]):
                    picture = picture.resize((self.size[1], self.size[0]), Image.Resampling.LANCZOS)
                pixels = np.asarray(picture, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataCorruptError(
                f"cannot decode the image {self.path} ({type(error).__name__}: {error})"
            ) from error
        tensor = torch.from_numpy(pixels.copy()).float().div_(255)
        return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()

    def build_splits(self) -> dict[str, tuple[torch.Tensor, ...]]:
        image = self.load_image()
        channels, height, width = image.shape
        coords = pixel_grid(height, width)
        colours = image.permute(1, 2, 0).reshape(-1, channels)
        stride = self.train_stride
        if stride == 1:
            train = (coords, colours)
        else:
            keep = torch.zeros(height, width, dtype=torch.bool)
            keep[::stride, ::stride] = True
            keep = keep.flatten()
            train = (coords[keep], colours[keep])
        return {"train": train, "all": (coords, colours)}

    def target_image(self) -> torch.Tensor:
        """The image the pixels come from, ``(C, H, W)`` in [0, 1] (what the task compares against)."""
        if self.splits is None:
            self.setup()
        coords, colours = self.splits["all"]
        channels, height, width = self.image_shape
        return colours.view(height, width, channels).permute(2, 0, 1)

    def prediction_image(self, outputs: dict[str, torch.Tensor]) -> np.ndarray | None:
        """The fitted image ``predict`` gives, ``(H, W, C)`` uint8 (colours clamped to [0, 1]).

        ``None`` when ``outputs`` do not hold every pixel (a partial predict, or one process's share of
        several).
        """
        channels, height, width = self.image_shape
        predictions = outputs["predictions"]
        if predictions.shape != (height * width, channels):
            return None
        image = predictions.float().clamp(0, 1).mul(255).round().to(torch.uint8)
        return image.view(height, width, channels).numpy()


__all__ = ["ImageFittingDataModule", "available_memory", "bundled_image", "pixel_grid"]
