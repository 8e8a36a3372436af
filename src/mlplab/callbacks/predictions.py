"""Save what ``predict`` returns into the run directory, and a table of it where the data can name it."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from mlplab.errors import ConfigError


class SavePredictions(BasePredictionWriter):
    """Write the predictions of ``mlplab predict`` to ``<run dir>/predictions.pt`` (and a table).

    The tasks' ``predict_step`` returns a dict of tensors per batch (e.g. ``predictions``,
    ``targets``); they are concatenated along the batch axis and saved with ``torch.save``, to be read
    back with ``torch.load(path)``. When the DataModule can say what the predictions are
    (``prediction_table(outputs, first_window, every)``: the forecasting DataModules give each
    forecast's dates and series names, the image DataModules each image's split and index, the tabular
    one each test row's row in its file with its target and prediction), the table
    is written beside it as ``predictions.csv`` or ``predictions.parquet``. When it can assemble an
    image of them (``prediction_image(outputs)``: a neural field's fit of its image), that image is
    written beside it as ``predictions.png``.

    Args:
        filename: File name inside the run directory.
        table_format: Format of the table: ``csv`` or ``parquet`` (needs ``pyarrow``:
            ``pip install 'mlplab[parquet]'``).
    """

    def __init__(self, filename: str = "predictions.pt", table_format: Literal["csv", "parquet"] = "csv"):
        super().__init__(write_interval="epoch")
        if table_format not in ("csv", "parquet"):
            raise ConfigError(f"predictions.table_format must be csv or parquet, got {table_format!r}")
        if table_format == "parquet" and importlib.util.find_spec("pyarrow") is None:
            raise ConfigError(
                "predictions.table_format parquet needs the pyarrow package, which is not installed: "
                "pip install 'mlplab[parquet]' (or pip install pyarrow), or use csv"
            )
        self.filename = filename
        self.table_format = table_format

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        if not batches or not isinstance(batches[0], dict):
            return
        merged = {key: torch.cat([batch[key].detach().cpu() for batch in batches]) for key in batches[0]}
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f".rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        path = folder / (self.filename + suffix)
        torch.save(merged, path)
        # several processes: each writes its own share; rank 0 says where they are
        shares = f" (and {trainer.world_size - 1} more .rank<r> files)" if trainer.world_size > 1 else ""
        rank_zero_info(f"predictions saved to {path}{shares}")
        picture = getattr(trainer.datamodule, "prediction_image", None)
        image = picture(merged) if picture is not None else None
        if image is not None:
            from PIL import Image

            image_path = folder / f"{Path(self.filename).stem}{suffix}.png"
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(image_path)
            rank_zero_info(f"the predicted image ({image.shape[1]}x{image.shape[0]}) saved to {image_path}")
        table = getattr(trainer.datamodule, "prediction_table", None)
        if table is None:
            return
        columns = table(merged, first_window=trainer.global_rank, every=trainer.world_size)
        table_path = folder / f"{Path(self.filename).stem}{suffix}.{self.table_format}"
        write_table(columns, table_path)
        rows = len(next(iter(columns.values()))) if columns else 0
        share = " of this process's share" if trainer.world_size > 1 else ""
        rank_zero_info(f"a table of the predictions ({rows} rows{share}) saved to {table_path}{shares}")


def write_table(columns: dict[str, np.ndarray], path: Path) -> None:
    """Write columns of equal length to ``path``: CSV (dates as ``YYYY-MM-DD HH:MM:SS``) or Parquet."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({name: np.asarray(values) for name, values in columns.items()}), path)
        return
    cells = [_text(np.asarray(values)) for values in columns.values()]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(*cells))


def _text(values: np.ndarray) -> list[str]:
    """A column's cells as text: dates without the ``T``, floats with 7 significant digits."""
    if np.issubdtype(values.dtype, np.datetime64):
        return [text.replace("T", " ") for text in np.datetime_as_string(values, unit="s")]
    if np.issubdtype(values.dtype, np.floating):
        return [format(value, ".7g") for value in values.tolist()]
    return [str(value) for value in values.tolist()]
