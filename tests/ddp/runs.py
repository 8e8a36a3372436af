"""The runs of the multi-process tests, in one process (pytest's) or in each process of a ``torchrun``.

``torchrun --nproc_per_node W tests/ddp/runs.py JOBS.json OUT`` runs every job of ``JOBS.json`` (a list
of ``{"name": ..., "argv": [...]}``, each the arguments of one ``mlplab`` command) in order, in every
process, and writes what :func:`run` returns to ``OUT/<name>.rank<r>.pt``. The same jobs run in
pytest's process give the 1-process references.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch


def run(argv: list[str]) -> dict[str, Any]:
    """Run one ``mlplab`` command in this process; its final metrics, weights and step count."""
    from mlplab.cli import MLPLabCLI

    cli = MLPLabCLI(args=argv)
    trainer = cli.trainer
    return {
        "metrics": {key: float(value) for key, value in trainer.callback_metrics.items()},
        "state_dict": {key: value.detach().cpu().clone() for key, value in cli.model.state_dict().items()},
        "global_step": trainer.global_step,
        "train_batches": trainer.num_training_batches if argv[0] == "fit" else None,
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
    }


def main() -> None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    jobs, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    for job in jobs:
        try:
            record = run(job["argv"])
        except SIGTERMException:  # a job stopped by a signal on purpose: its checkpoint is what counts
            continue
        torch.save(record, out / f"{job['name']}.rank{record['rank']}.pt")


if __name__ == "__main__":
    main()
