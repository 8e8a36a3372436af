"""The typed record of one run of a sweep: what it trains, where, and (once finished) how it did.

A run's folder ``OUT/runs/<run id>/`` holds:

* ``run.yaml``: the run's complete resolved config (``mlplab fit --config run.yaml`` trains it again);
* ``run.json``: the :class:`RunRecord` as planned (the worker process reads it);
* ``result.json``: the :class:`RunRecord` once finished (``status`` ``ok`` or ``failed``);
* ``log.txt``: the run's output; ``error.txt``: the traceback when it failed;
* ``lightning_logs/version_N/``: config, checkpoints and TensorBoard events, as ``mlplab fit`` writes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

RUN_CONFIG = "run.yaml"
RUN_FILE = "run.json"
RESULT_FILE = "result.json"
LOG_FILE = "log.txt"
ERROR_FILE = "error.txt"

#: Columns of results.csv, in order.
RESULT_FIELDS = [
    "family", "shape", "options", "params_total", "params_trainable", "budget", "seed", "metric",
    "best_val", "test", "wall_time_s", "epochs", "status", "error", "current", "settings", "run_dir",
    "run_id",
]  # fmt: skip


@dataclass
class RunRecord:
    """One run of a sweep: a shape of a family, with option values and a seed, at a budget.

    Attributes:
        run_id: The folder name: family, shape, options, seed and a hash of the resolved config.
        family: The family's name in the sweep file (one curve of the figure).
        class_path: The backbone class.
        shape: The shape arguments, ``embed_dim=256 mlp_dim=34 depth=1``.
        options: The swept option values, ``lr=0.001`` (empty without options).
        seed: ``seed_everything`` of the run.
        budget: The parameter budget the shape was kept for.
        params_total: Parameters of the backbone (counted on the meta device).
        params_trainable: Trainable parameters of the backbone.
        metric: The validation metric the run is judged by (``val/psnr``).
        mode: ``max`` or ``min``.
        config_key: Hash of the run's full resolved config (the run's identity).
        series_key: Hash of the resolved config without the shape, options and seed: runs with the
            same series key differ only in those and share a curve of the figure.
        root: The run's folder (``OUT/runs/<run id>``).
        cwd: The working directory the run is started in (users' modules are imported from it).
        args: The command-line arguments the resolved config was parsed from (provenance).
        config: The resolved config (written to ``run.yaml``; not repeated in ``result.json``).
        status: ``planned``, then ``ok`` or ``failed``.
        error: One line saying why it failed.
        best_val: Best validation value of ``metric`` (the best checkpoint's).
        test: ``test/<name>`` of the best checkpoint, for a ``val/<name>`` metric.
        test_metrics: Every test metric of the best checkpoint.
        epochs: Epochs completed (one cut short by max_time or max_steps not counted).
        wall_time_s: Wall time of the run's process.
        run_dir: The run's ``lightning_logs/version_N`` folder.
        current: Whether the run belongs to the sweep as now planned (earlier runs are kept).
        settings: For an earlier run: how its settings differ from the current ones (``max_epochs=3``).
    """

    run_id: str
    family: str
    class_path: str
    shape: str
    options: str
    seed: int
    budget: int
    params_total: int
    params_trainable: int
    metric: str
    mode: str
    config_key: str
    series_key: str
    root: str
    cwd: str = ""
    args: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    status: str = "planned"
    error: str = ""
    best_val: float | None = None
    test: float | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None
    wall_time_s: float | None = None
    run_dir: str = ""
    current: bool = False
    settings: str = ""

    @property
    def folder(self) -> Path:
        return Path(self.root)

    @property
    def test_metric(self) -> str | None:
        return test_metric_name(self.metric)

    @property
    def finished(self) -> bool:
        return self.status in ("ok", "failed")

    def row(self) -> dict[str, Any]:
        """The run as a row of ``results.csv`` (and of :mod:`mlplab.tools.pareto`)."""
        data = {name: getattr(self, name) for name in RESULT_FIELDS}
        data["current"] = "yes" if self.current else "no"
        return data

    def to_json(self) -> dict[str, Any]:
        """Everything but the resolved config (that is in ``run.yaml``) and the marks of a report."""
        data = asdict(self)
        for name in ("config", "current", "settings"):
            data.pop(name)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """A record from ``result.json`` or ``run.json``; keys it does not know are ignored."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for name in ("class_path", "mode", "config_key", "series_key", "root"):
            values.setdefault(name, "")
        return cls(**values)

    def write(self, name: str) -> None:
        """Write the record to ``<root>/<name>`` atomically (a temporary file, then a rename)."""
        write_json(self.folder / name, self.to_json())


def read_record(path: Path) -> RunRecord | None:
    """The record in ``path``, or ``None`` when it is missing or unreadable (e.g. cut by a kill)."""
    try:
        data = json.loads(path.read_text())
        return RunRecord.from_json(data) if isinstance(data, dict) and "run_id" in data else None
    except (OSError, ValueError, TypeError):
        return None


def read_result(folder: Path) -> RunRecord | None:
    """The finished record of the run in ``folder``, or ``None`` when it has not finished."""
    record = read_record(folder / RESULT_FILE)
    return record if record is not None and record.finished else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a reader never sees half."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1, default=str))
    os.replace(temporary, path)


def test_metric_name(metric: str) -> str | None:
    """``val/psnr`` -> ``test/psnr`` (the same metric on the test split), ``None`` for other names."""
    return "test/" + metric[4:] if metric.startswith("val/") else None
