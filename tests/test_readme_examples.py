"""The README's CSV example runs as written: fit, test, predict the future, export, and the notebook code."""

from __future__ import annotations

import csv
import importlib.util
import re
import shlex

import numpy as np
import torch

from tests.conftest import REPO, run_cli


def readme_section(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"<!-- {marker}")
    return text[start : text.index(f"<!-- /{marker} -->", start)]


def code_blocks(section: str) -> dict[str, str]:
    return {lang: body for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)}


def write_load_csv(path, rows: int = 1000) -> np.ndarray:
    t = np.arange(rows)
    daily = np.sin(2 * np.pi * t / 24)
    values = np.stack([70 + 8 * daily, 65 + 5 * np.cos(2 * np.pi * t / 24), 20 + 3 * daily + t / 500], 1)
    dates = np.datetime64("2024-01-01T00") + t.astype("timedelta64[h]")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "site_a", "site_b", "OT"])
        for date, row in zip(dates, values):
            writer.writerow([str(date).replace("T", " ") + ":00:00", *(f"{v:.3f}" for v in row)])
    return np.round(values, 3)


def test_the_csv_example_runs_end_to_end(tmp_path, capsys):
    torch.set_num_threads(1)
    blocks = code_blocks(readme_section("csv-example"))
    (tmp_path / "forecast.yaml").write_text(blocks["yaml"])
    values = write_load_csv(tmp_path / "load.csv")
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    for line in blocks["bash"].strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "mlplab"
        if args[1] == "export" and importlib.util.find_spec("onnxscript") is None:
            continue  # the ONNX exporter's packages are an extra (mlplab[export])
        extra = (
            [] if args[1] == "export" else [*quiet, *(["--trainer.max_epochs=2"] if args[1] == "fit" else [])]
        )
        assert run_cli(*args[1:], *extra) == 0, line

    logs = tmp_path / "lightning_logs"
    with open(logs / "version_2" / "predictions.csv") as handle:
        rows = list(csv.reader(handle))
    assert ",".join(rows[0]) == blocks["text"].strip()
    assert len(rows) == 1 + 24 and rows[1][:3] == ["2024-02-11 15:00:00", "2024-02-11 16:00:00", "1"]
    if importlib.util.find_spec("onnxscript") is not None:
        assert (logs / "version_0" / "export" / "onnx" / "model.onnx").is_file()

    namespace = {"last_rows": values[-96:]}
    exec(blocks["python"], namespace)  # the notebook code, with the file's last 96 rows
    forecast = namespace["forecast"]
    assert forecast.shape == (24, 3)
    predicted = np.array([[float(v) for v in row[3:]] for row in rows[1:]])
    np.testing.assert_allclose(forecast.numpy(), predicted, rtol=1e-4, atol=1e-3)
