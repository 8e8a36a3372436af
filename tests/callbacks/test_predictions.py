"""SavePredictions: the files ``mlplab predict`` writes, one share per process, and what it says."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import torch

from mlplab.callbacks.predictions import SavePredictions


class Rows:
    """A DataModule stand-in that names each prediction by its index in the split."""

    def prediction_table(self, outputs, first_window=0, every=1):
        rows = len(outputs["predictions"])
        return {"index": np.arange(first_window, first_window + every * rows, every)}


def test_each_process_writes_its_share_and_rank_zero_says_there_are_others(tmp_path, caplog):
    trainer = SimpleNamespace(log_dir=str(tmp_path), default_root_dir=str(tmp_path), world_size=2,
                              global_rank=0, datamodule=Rows())  # fmt: skip
    batches = [{"predictions": torch.arange(3.0)}, {"predictions": torch.arange(2.0)}]
    with caplog.at_level(logging.INFO):
        SavePredictions().write_on_epoch_end(trainer, None, [batches], [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.pt.rank0", "predictions.rank0.csv"]
    assert (tmp_path / "predictions.rank0.csv").read_text().splitlines() == ["index", "0", "2", "4", "6", "8"]
    # it said "(5 rows)" as if that were all of them
    assert "(and 1 more .rank<r> files)" in caplog.text
    assert "(5 rows of this process's share)" in caplog.text
