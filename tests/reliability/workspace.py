"""A folder of small, finished runs and of good and broken inputs, built once for the reliability tests.

Configs reuse the shipped recipes' backbones (so renamed family arguments reach these tests by
themselves) with tiny data: the quickstart's digits, a few kilobytes of text, a 600-row CSV.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from tests.conftest import REPO, run_cli, shared_data_dir

QUICKSTART = REPO / "configs" / "quickstart.yaml"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
#: The quickstart's Hourglass MLP, narrowed: checkpoints of 0.5 MB instead of 11 MB.
SMALL_HOURGLASS = ["--model.backbone.embed_dim=128", "--model.backbone.mlp_dim=32"]
TEXT_A = "It is a truth universally acknowledged, that a single man in possession of a good fortune.\n" * 40
TEXT_B = "ZYXW vuts 0123 !?;: QRPO " * 150


def tree_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def recipe(name: str) -> dict:
    return yaml.safe_load((REPO / "configs" / name).read_text())


def quiet_cli(*args: str) -> int:
    """``run_cli`` with the output of a setup run swallowed."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return run_cli(*args)


@dataclass
class Workspace:
    """Paths of the prepared inputs, and of the runs that must never change."""

    root: Path
    paths: dict[str, str] = field(default_factory=dict)
    runs: dict[str, Path] = field(default_factory=dict)

    def digests(self) -> dict[str, str]:
        return {name: tree_digest(run) for name, run in self.runs.items()}

    def fill(self, text: str) -> str:
        return text.format(**self.paths)


def write_configs(root: Path) -> dict[str, str]:
    text_backbone = recipe("text/transformer_mqar.yaml")["model"]["init_args"]["backbone"]
    configs = {
        "text": {
            "seed_everything": 0,
            "trainer": {"max_epochs": 1, "accelerator": "cpu", "limit_val_batches": 2},
            "model": {
                "class_path": "LanguageModeling",
                "init_args": {"backbone": text_backbone, "sample_length": 0},
            },
            "data": {
                "class_path": "CharTextDataModule",
                "init_args": {
                    "text_file": str(root / "text_a.txt"),
                    "context_length": 16,
                    "batch_size": 8,
                    "batches_per_epoch": 2,
                },
            },
        },
        "recall": {
            **recipe("text/transformer_mqar.yaml"),
            "data": {
                "class_path": "MQARDataModule",
                "init_args": {"preset": "64x4", "num_train_examples": 64, "num_test_examples": 16},
            },
        },
        "series": {
            "seed_everything": 0,
            "trainer": {"max_epochs": 1, "accelerator": "cpu"},
            "model": recipe("timeseries/dlinear_etth1_96.yaml")["model"],
            "data": {
                "class_path": "CSVDataModule",
                "init_args": {
                    "file": str(root / "series.csv"),
                    "lookback": 24,
                    "horizon": 12,
                    "batch_size": 16,
                },
            },
        },
    }
    configs["recall"]["trainer"] = {"max_epochs": 1, "accelerator": "cpu"}
    paths = {}
    for name, config in configs.items():
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        paths[name] = str(path)
    return paths


def write_series(path: Path, rows: int = 600, bad: dict[tuple[int, int], str] | None = None) -> None:
    """An hourly CSV with three series; ``bad`` replaces cells ``(row, column)`` by the given text."""
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    values = np.stack([np.sin(t / 10), np.cos(t / 7), np.sin(t / 24) + 0.1 * rng.standard_normal(rows)], 1)
    hours = np.datetime64("2020-01-01T00") + t.astype("timedelta64[h]")
    lines = ["date,a,b,OT"]
    for i in range(rows):
        cells = [f"{v:.4f}" for v in values[i]]
        for (row, column), text in (bad or {}).items():
            if row == i:
                cells[column] = text
        lines.append(f"{str(hours[i]).replace('T', ' ')}:00:00," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_inputs(root: Path) -> dict[str, str]:
    """Text files, CSVs, an image folder, YAML files and checkpoint files, good and broken."""
    (root / "text_a.txt").write_text(TEXT_A)
    (root / "text_b.txt").write_text(TEXT_B)
    (root / "empty.txt").write_text("  \n")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait, d\xe9j\xe0 vu\n".encode("latin-1") * 50)
    (root / "short.txt").write_text("tiny text\n")
    write_series(root / "series.csv")
    write_series(root / "series_inf.csv", bad={(100, 2): "inf"})
    write_series(root / "series_1e400.csv", bad={(50, 0): "1e400"})
    write_series(root / "series_minus_inf.csv", bad={(7, 1): "-inf"})
    write_series(root / "series_nan.csv", bad={(20, 1): "nan"})
    write_series(root / "series_empty_cell.csv", bad={(30, 0): ""})
    write_series(root / "series_word.csv", bad={(40, 2): "twelve"})
    write_series(root / "series_short.csv", rows=40)
    (root / "series_header_only.csv").write_text("date,a,b,OT\n")
    (root / "series_empty.csv").write_text("")
    (root / "series_bad_dates.csv").write_text(
        "date,a,b,OT\n" + "".join(f"someday {i},1,2,3\n" for i in range(600))
    )
    # image folders: a good one, one with a broken JPEG, one with two image sizes, one with other classes
    for name, broken in (("images", None), ("images_broken", "jpeg"), ("images_sizes", "size"),
                         ("images_classes", "classes")):  # fmt: skip
        for split in ("train", "test"):
            for label in ("cat", "dog"):
                if broken == "classes" and split == "test" and label == "dog":
                    label = "bird"
                folder = root / name / split / label
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(6):
                    size = (8, 8) if not (broken == "size" and i == 3) else (9, 9)
                    Image.new("RGB", size, (i * 30, 90, 0)).save(folder / f"{i}.png")
        if broken == "jpeg":
            (root / name / "train" / "cat" / "9.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    # YAML files
    yamls = {
        "list.yaml": "- model\n- data\n",
        "empty.yaml": "# nothing but a comment\n",
        "tab.yaml": "trainer:\n\tmax_epochs: 3\n",
        "duplicate.yaml": "trainer:\n  max_epochs: 3\n  max_epochs: 4\n",
        "duplicate_top.yaml": "trainer:\n  max_epochs: 3\ntrainer:\n  max_epochs: 4\n",
        "broken.yaml": "trainer: [1, 2\n",
        "scalar.yaml": "just a sentence\n",
        "unclosed_quote.yaml": 'model:\n  class_path: "ImageRestoration\n',
        "bad_indent.yaml": "trainer:\n  max_epochs: 3\n   min_epochs: 1\n",
    }
    for name, text in yamls.items():
        (root / name).write_text(text)
    (root / "latin1.yaml").write_bytes("trainer:\n  max_epochs: 3 # caf\xe9\n".encode("latin-1"))
    # checkpoint files that are not usable checkpoints
    (root / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    (root / "empty.ckpt").write_bytes(b"")
    torch.save(torch.zeros(3), root / "tensor.ckpt")
    with zipfile.ZipFile(root / "other.zip.ckpt", "w") as archive:
        archive.writestr("readme.txt", "a zip archive, not a checkpoint")
    (root / "folder.ckpt").mkdir()
    return {"ws": str(root), "quickstart": str(QUICKSTART)}


def damaged_copies(checkpoint: Path, root: Path) -> dict[str, str]:
    """A truncated copy and a copy with one flipped byte inside the weights."""
    data = bytearray(checkpoint.read_bytes())
    (root / "truncated.ckpt").write_bytes(bytes(data[: len(data) // 2]))
    with zipfile.ZipFile(checkpoint) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
        offset = record.header_offset + 30 + len(record.filename.encode()) + len(record.extra) + 100
    data[offset] ^= 0xFF
    (root / "flipped.ckpt").write_bytes(bytes(data))
    return {"truncated": str(root / "truncated.ckpt"), "flipped": str(root / "flipped.ckpt")}


def build(root: Path) -> Workspace:
    """Write the inputs, train the three small runs that the failing commands must leave untouched."""
    data = shared_data_dir()
    if data is not None:
        os.environ["MLPLAB_DATA"] = str(data)
    saved_argv = sys.argv
    sys.argv = ["mlplab"]
    try:
        workspace = Workspace(root)
        workspace.paths.update(write_inputs(root))
        workspace.paths.update(write_configs(root))
        runs = {
            "image": ["--config", str(QUICKSTART), "--trainer.max_epochs=1", *SMALL_HOURGLASS],
            "text": ["--config", workspace.paths["text"]],
            "series": ["--config", workspace.paths["series"]],
        }
        for name, args in runs.items():
            status = quiet_cli("fit", *args, f"--trainer.default_root_dir={root / name}", *QUIET)
            assert status == 0, f"the {name} run failed"
            run = root / name / "lightning_logs" / "version_0"
            workspace.runs[name] = run
            workspace.paths[f"{name}_run"] = str(run)
            workspace.paths[f"{name}_root"] = str(root / name)
            workspace.paths[f"{name}_config"] = str(run / "config.yaml")
            workspace.paths[f"{name}_best"] = str(run / "checkpoints" / "best.ckpt")
            workspace.paths[f"{name}_last"] = str(run / "checkpoints" / "last.ckpt")
        workspace.paths.update(damaged_copies(Path(workspace.paths["image_best"]), root))
        (root / "a_file").write_text("a regular file")
        workspace.paths["nowhere"] = str(root / "nowhere")
        return workspace
    finally:
        sys.argv = saved_argv
