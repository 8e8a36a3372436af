"""``mlplab export``: each format holds the trained model (outputs equal to the checkpoint's on a real
batch), its config says what it needs, and a layer a format cannot hold is named in one line."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

import mlplab
from mlplab.data import CSVDataModule
from mlplab.errors import ConfigError
from mlplab.tasks import ForecastingTask, ImageClassification
from mlplab.tools.export import export, load_exported
from tests.conftest import run_cli

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class DataDependent(nn.Module):
    """Reads its input's spread as a Python number and branches on its mean: a graph can hold neither
    (a trace keeps the first batch's number; ``torch.export`` cannot branch on data)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / float(x.std())
        return x if x.mean() > 0 else -x


class Branchy(nn.Module):
    """A forecasting family ``((L, N), (H, N))`` with a data-dependent layer (for the failure tests)."""

    def __init__(self, input_shape: tuple[int, int], output_shape: tuple[int, int]):
        super().__init__()
        self.head = nn.Linear(input_shape[0], output_shape[0])
        self.gate = DataDependent()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.head(x.transpose(1, 2)).transpose(1, 2))


def _series(folder: Path, rows: int = 300) -> None:
    t = np.arange(rows)
    dates = np.datetime64("2022-05-01T00") + t.astype("timedelta64[h]")
    lines = ["date,load,OT"] + [
        f"{str(d).replace('T', ' ')}:00:00,{100 + 10 * np.sin(i / 4):.3f},{5 + np.cos(i / 9):.3f}"
        for i, d in zip(t, dates)
    ]
    (folder / "series.csv").write_text("\n".join(lines) + "\n")


def _fit(folder: Path, backbone: str, *extra: str) -> Path:
    _series(folder)
    config = folder / "forecast.yaml"
    config.write_text(
        f"model:\n  class_path: ForecastingTask\n  init_args:\n    backbone: {backbone}\n"
        f"data:\n  class_path: CSVDataModule\n  init_args:\n    file: {folder / 'series.csv'}\n"
        f"    lookback: 24\n    horizon: 6\ntrainer:\n  max_epochs: 1\n  default_root_dir: {folder / 'run'}\n"
    )
    assert run_cli("fit", "--config", str(config), *QUIET, *extra) == 0
    return folder / "run" / "lightning_logs" / "version_0"


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory) -> Path:
    """A DLinear run with RevIN (so the exported model is the task's forecaster, not the bare family)."""
    torch.set_num_threads(1)
    return _fit(tmp_path_factory.mktemp("forecast"), "DLinear", "--model.revin=true")


def _real_batch(run: Path) -> torch.Tensor:
    data = CSVDataModule(file=str(run.parents[2] / "series.csv"), lookback=24, horizon=6)
    history, *_ = data.on_after_batch_transfer(next(iter(data.test_dataloader())), 0)
    return history[:5]


def _run_exported(format: str, folder: Path, history: torch.Tensor) -> torch.Tensor:
    if format == "safetensors":
        return load_exported(folder)(history)
    if format == "torchscript":
        return torch.jit.load(str(folder / "model.pt"))(history)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"history": history.numpy()})[0])


@pytest.mark.parametrize("format", ["safetensors", "torchscript", "onnx"])
def test_each_format_holds_the_trained_model_with_its_config(forecast_run, format, capsys, tmp_path):
    if format == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package)
    out = tmp_path / format
    capsys.readouterr()
    assert run_cli("export", "--run", str(forecast_run), "--format", format, "--out", str(out)) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    suffix = {"safetensors": "safetensors", "torchscript": "pt", "onnx": "onnx"}[format]
    assert line.startswith(
        f"wrote {out / f'model.{suffix}'} and {out / 'config.json'} (checked on a batch of 2:"
    )
    config = json.loads((out / "config.json").read_text())
    # ONNX wrote its weights beside model.onnx in model.onnx.data, which config.json did not name
    assert sorted(p.name for p in out.iterdir()) == ["config.json", f"model.{suffix}"]
    assert config["files"] == [f"model.{suffix}"]
    assert (config["format"], config["model"], config["family"]) == (
        format,
        "Forecaster",
        "mlplab.models.DLinear",
    )
    assert config["inputs"] == [{"name": "history", "shape": ["batch", 24, 2], "dtype": "float32"}]
    assert config["output"]["shape"] == ["batch", 6, 2]
    assert (
        config["preprocessing"]["series_names"] == ["load", "OT"]
        and len(config["preprocessing"]["mean"]) == 2
    )
    assert config["task_args"]["revin"] is True and config["check"]["largest_relative_difference"] <= 1e-4

    history = _real_batch(forecast_run)  # five test windows of the data, standardised
    run = mlplab.load_run(forecast_run)
    with torch.no_grad():
        expected = run.model(history)
        got = _run_exported(format, out, history)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    if format == "safetensors":
        assert torch.equal(got, expected)


def test_an_onnx_model_over_the_single_file_limit_keeps_its_weights_beside_it(
    forecast_run, monkeypatch, tmp_path
):
    # protobuf holds at most 2 GiB: from 1 GiB of weights on, they go to model.onnx.data (untested before);
    # the limit lowered to a byte sends the DLinear's weights there
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package)
    from mlplab.tools import export

    monkeypatch.setattr(export, "ONNX_SINGLE_FILE_BYTES", 1)
    out = tmp_path / "onnx"
    assert run_cli("export", "--run", str(forecast_run), "--format", "onnx", "--out", str(out)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["files"] == ["model.onnx", "model.onnx.data"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.onnx", "model.onnx.data"]
    weights = 4 * sum(p.numel() for p in mlplab.load_run(forecast_run).model.parameters())
    assert (out / "model.onnx.data").stat().st_size >= weights // 2  # (the smallest tensors stay inline)
    history = _real_batch(forecast_run)
    with torch.no_grad():
        expected = mlplab.load_run(forecast_run).model(history)
    torch.testing.assert_close(_run_exported("onnx", out, history), expected, atol=1e-5, rtol=1e-5)


def test_a_layer_a_format_cannot_hold_is_named_in_one_line(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    run = _fit(tmp_path, "tests.tools.test_export.Branchy")
    capsys.readouterr()
    for format, reason in (
        ("onnx", "Could not guard on data-dependent expression"),
        ("torchscript", "its outputs on another batch differ from the model's"),
    ):
        assert run_cli("export", "--run", str(run), "--format", format) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert err[0].startswith(
            f"error: {format} cannot export Branchy: its layer gate (DataDependent) fails: "
        )
        assert reason in err[0] and err[0].endswith("; --format safetensors holds any model")
        assert not (run / "export" / format / f"model.{'pt' if format == 'torchscript' else format}").exists()
    assert run_cli("export", "--run", str(run), "--format", "safetensors") == 0


@pytest.mark.parametrize("pairing", ["official", "window"])
def test_a_forecast_export_says_when_its_windows_depend_on_their_batch(tmp_path, pairing):
    # TimeMixer's official pairing (the ETTh1 recipes) made exported forecasts batch-dependent, unsaid
    from mlplab.models import TimeMixer

    family = functools.partial(TimeMixer, time_feature_pairing=pairing)
    task = ForecastingTask(family, lookback=32, horizon=8, num_series=2, num_time_features=4).eval()
    description = json.loads(export(task, "safetensors", tmp_path).config.read_text())["output"][
        "description"
    ]
    assert description.startswith("forecasts of the standardised series (times the preprocessing's std")
    assert ("depends on the other windows of its batch" in description) == (pairing == "official")


@pytest.mark.parametrize("mode", ["super_resolution", "denoise"])
def test_a_restoration_export_says_what_its_input_is(tmp_path, mode):
    # config.json said only the data's image_shape (the output's, 8x8) and the input's shape, not how
    # the low-resolution input is made from an image
    import torch.nn.functional as F

    from mlplab.models import HourglassMLP
    from mlplab.tasks import ImageRestoration

    backbone = functools.partial(HourglassMLP, embed_dim=32, mlp_dim=8, depth=1)
    task = ImageRestoration(backbone, image_shape=(1, 8, 8), num_classes=10, mode=mode, noise_std=0.1).eval()
    config = json.loads(export(task, "safetensors", tmp_path).config.read_text())
    (given,) = config["inputs"]
    images = torch.rand(3, 1, 8, 8)
    if mode == "denoise":
        assert given["shape"] == ["batch", 1, 8, 8]
        assert (
            given["description"]
            == "noisy images (batch, 1, 8, 8), pixels in [0, 1] (clean images plus N(0, 0.1²), clamped)"
        )
        return
    assert given["shape"] == ["batch", 1, 4, 4]
    assert given["description"] == (
        "low-resolution images (batch, 1, 4, 4), pixels in [0, 1]: the 8x8 images downsampled by 2 with "
        "torch.nn.functional.interpolate(images, size=(4, 4), mode='bicubic', align_corners=False); the "
        "output has the full size"
    )
    degraded, _ = task.degrade(images, torch.zeros(3, dtype=torch.long))
    assert torch.equal(degraded, F.interpolate(images, size=(4, 4), mode="bicubic", align_corners=False))


@pytest.mark.parametrize(
    ("task_name", "family", "inputs"),
    [("ImageFitting", "SIREN", ("coords", [2])), ("FunctionFitting", "KAN", ("inputs", [3]))],
)
def test_neural_fields_and_function_fits_export(tmp_path, task_name, family, inputs):
    # both tasks were refused ("export does not know the inputs of ImageFitting")
    from mlplab import tasks
    from mlplab.models import registry

    backbone = functools.partial(registry.get(family).cls, **registry.variant_args(family, "tiny"))
    shapes = {"image_shape": (3, 8, 8)} if task_name == "ImageFitting" else {"num_inputs": 3}
    task = getattr(tasks, task_name)(backbone, **shapes).eval()
    exported = export(task, "torchscript", tmp_path)
    config = json.loads(exported.config.read_text())
    name, shape = inputs
    assert config["inputs"] == [{"name": name, "shape": ["batch", *shape], "dtype": "float32"}]
    points = torch.rand(5, *shape) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(exported.path)(points), task.backbone(points))


def test_a_family_that_cannot_be_traced_names_its_layer(tmp_path):
    """timm's ConViT caches its relative positions at its first call: the traces of two calls differ."""
    from mlplab.models import registry

    family = functools.partial(registry.get("ConViT").cls, **registry.variant_args("ConViT"))
    task = ImageClassification(family, image_shape=(3, 32, 32), num_classes=10)
    with pytest.raises(ConfigError) as raised:
        export(task, "torchscript", tmp_path)
    assert str(raised.value).startswith(
        "torchscript cannot export ConViT: its layer model.blocks.0.attn (GPSA) fails: Tracing failed sanity "
        "checks! ERROR: Graphs differed across invocations!"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--format", "tflite"],
            "error: --format must be one of safetensors, onnx, torchscript, got 'tflite'",
        ),
        (
            ["--run", "nowhere"],
            "error: no run at nowhere: give a run directory such as lightning_logs/version_0",
        ),
        (["--checkpoint", "middle"], "error: no middle.ckpt in "),
    ],
)
def test_export_user_errors_are_one_line(forecast_run, capsys, arguments, message):
    given = {
        "--run": str(forecast_run),
        "--format": "safetensors",
        **dict(zip(arguments[::2], arguments[1::2])),
    }
    assert run_cli("export", *[item for pair in given.items() for item in pair]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_an_out_folder_that_cannot_be_made_is_one_line(forecast_run, capsys):
    # a file in the way of --out ended in a NotADirectoryError traceback
    out = forecast_run / "config.yaml" / "export"
    assert run_cli("export", "--run", str(forecast_run), "--format", "safetensors", "--out", str(out)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: cannot create the export folder {out} (")


def test_a_missing_option_is_one_line(capsys):
    assert run_cli("export", "--run", "somewhere") == 2  # argparse's own error, without the usage block
    assert capsys.readouterr().err.strip() == (
        "error: mlplab export: the following arguments are required: --format (see --help)"
    )


def test_a_format_whose_package_is_missing_is_one_line(forecast_run, capsys):
    import importlib.util

    real = importlib.util.find_spec
    missing = ("onnx", "onnxscript")  # both, so that the line is the same whether or not onnx is installed
    with mock.patch("importlib.util.find_spec", lambda name, *a: None if name in missing else real(name, *a)):
        assert run_cli("export", "--run", str(forecast_run), "--format", "onnx") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --format onnx needs onnx and onnxscript, which are not installed: "
        "pip install 'mlplab[export]'"
    ]


def test_the_forecaster_keeps_the_task_weights_names():
    task = ForecastingTask(
        mlplab.models.DLinear, lookback=8, horizon=4, num_series=2, revin=True, revin_affine=True
    )
    module = task.inference_module()
    assert set(module.state_dict()) == {k for k in task.state_dict() if k.startswith(("backbone.", "revin."))}
    x = torch.randn(3, 8, 2)
    torch.testing.assert_close(module(x), task(x))
    assert (
        ForecastingTask(mlplab.models.DLinear, lookback=8, horizon=4, num_series=2)
        .inference_module()
        .__class__.__name__
        == "DLinear"
    )


@pytest.fixture(scope="module", params=["penguins", "diabetes"])
def tabular_run(request, tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny TabM ensemble (4 members), one epoch, on the penguins (species from numeric and
    categorical columns) or on diabetes (a regression), with what ``mlplab predict`` saved of its test rows.
    """
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp(request.param)
    recipe = Path(__file__).parents[2] / "configs" / "tabular" / "tabm_penguins.yaml"
    small = ["--model.backbone.ensemble_size=4", "--model.backbone.depth=1", "--model.backbone.embed_dim=16"]
    args = ["--config", str(recipe), f"--data.dataset={request.param}", *small, "--trainer.max_epochs=1"]
    assert run_cli("fit", *args, f"--trainer.default_root_dir={folder}", *QUIET) == 0
    run = folder / "lightning_logs" / "version_0"
    best = run / "checkpoints" / "best.ckpt"
    assert run_cli("predict", "--config", str(run / "config.yaml"), f"--ckpt_path={best}", *QUIET) == 0
    predicted = torch.load(folder / "lightning_logs" / "version_1" / "predictions.pt", weights_only=True)
    return run, predicted


def _run_tabular_export(format: str, out: Path, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if format == "safetensors":
            return load_exported(out)(x_num, x_cat)
        if format == "torchscript":
            return torch.jit.load(str(out / "model.pt"))(x_num, x_cat)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x_num": x_num.numpy(), "x_cat": x_cat.numpy()})[0])


@pytest.mark.parametrize("format", ["safetensors", "torchscript", "onnx"])
def test_a_tabular_export_predicts_what_mlplab_predict_does(tabular_run, format, tmp_path):
    # the export held the family alone: per-member logits (B, 4, 3), and standardised values (B, 4, 1)
    # for a regression, which the user had to average and unscale
    if format == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package)
    run_dir, predicted = tabular_run
    out = tmp_path / format
    assert run_cli("export", "--run", str(run_dir), "--format", format, "--out", str(out)) == 0
    config = json.loads((out / "config.json").read_text())
    run = mlplab.load_run(run_dir)
    classification = run.model.classification
    assert config["inputs"] == [
        {"name": "x_num", "shape": ["batch", 5 if classification else 10], "dtype": "float32"},
        {"name": "x_cat", "shape": ["batch", 2 if classification else 0], "dtype": "int64"},
    ]
    assert config["model"] == "TabularPredictor" and config["family"] == "mlplab.models.TabM"
    if classification:  # the mean of the 4 members' probabilities of the 3 species
        assert config["output"]["shape"] == ["batch", 3]
        assert config["output"]["description"].startswith("class probabilities (batch, 3)")
        expected = predicted["probabilities"]
    else:  # the mean of the 4 members' values, in the target's units
        assert config["output"]["shape"] == ["batch"]
        assert config["output"]["description"].startswith("predicted values (batch,) in the target's units")
        expected = predicted["predictions"]
    x_num, x_cat, _ = run.datamodule().split_tensors("test")  # the rows mlplab predict predicted
    got = _run_tabular_export(format, out, x_num, x_cat)
    # the same numbers up to float32 rounding: within 1e-5 of their largest magnitude (at least 1)
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(got, expected, atol=1e-5 * scale, rtol=0)


def _language_model(family: str, **args) -> nn.Module:
    from mlplab.models import registry
    from mlplab.tasks import LanguageModeling

    torch.manual_seed(0)
    backbone = functools.partial(registry.get(family).cls, **args)
    return LanguageModeling(backbone, vocab_size=7, context_length=8).eval()


def _run_sequence_export(format: str, path: Path, tokens: torch.Tensor) -> torch.Tensor:
    if format == "torchscript":
        return torch.jit.load(str(path))(tokens)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"tokens": tokens.numpy()})[0])


@pytest.mark.parametrize("format", ["torchscript", "onnx"])
def test_a_language_model_export_takes_any_length_up_to_its_context(tmp_path, format, capsys):
    # traced on context_length tokens, the ONNX file refused every other length ("Got invalid dimensions
    # for input: tokens ... Got: 5 Expected: 8") and config.json said ["batch", 8]
    if format == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package)
    task = _language_model("Transformer", embed_dim=8, depth=1, num_heads=1)
    exported = export(task, format, tmp_path)
    config = json.loads(exported.config.read_text())
    assert exported.any_length is True and config["any_length"] is True
    assert config["inputs"] == [
        {
            "name": "tokens",
            "shape": ["batch", "length"],
            "dtype": "int64",
            "description": "token ids (batch, length), any length from 1 to the context length 8",
        }
    ]
    assert config["output"]["shape"] == ["batch", "length", 7]
    for length in (1, 3, 8):
        tokens = torch.randint(0, 7, (3, length))
        with torch.no_grad():
            expected = task.backbone(tokens)
        torch.testing.assert_close(_run_sequence_export(format, exported.path, tokens), expected)


# Families whose layers loop over chunks or steps in Python (the trace held the traced number of chunks),
# or use the FFT (onnxruntime ran a dynamic-length inverse DFT wrongly): config.json said any_length false
# (GLA both formats; Mamba ONNX; GatedConv ONNX) or the export failed (Mamba TorchScript: its chunked scan
# is an autograd.Function, which a TorchScript file cannot hold). Chunks of 3 tokens, context 8.
LENGTH_GENERIC = {
    "GatedLinearAttention": {"embed_dim": 8, "depth": 1, "num_heads": 1, "chunk_size": 3},
    "GatedLinearAttention-recurrent": {"embed_dim": 8, "depth": 1, "num_heads": 1, "mode": "recurrent"},
    "Mamba": {"embed_dim": 8, "depth": 1, "d_state": 4, "chunk_size": 3},
    "Mamba-parallel": {"embed_dim": 8, "depth": 1, "d_state": 4, "chunk_size": 3, "scan": "parallel"},
    "GatedConv": {"embed_dim": 8, "depth": 1, "filter_order": 8},
}


@pytest.mark.parametrize(
    ("family", "format"),
    [
        ("GatedLinearAttention", "torchscript"),
        ("GatedLinearAttention", "onnx"),
        ("GatedLinearAttention-recurrent", "torchscript"),
        ("Mamba", "torchscript"),
        ("Mamba", "onnx"),
        ("Mamba-parallel", "torchscript"),
        ("GatedConv", "onnx"),
    ],
)
def test_chunked_scans_and_long_convolutions_export_for_any_length(tmp_path, family, format):
    if format == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package)
    task = _language_model(family.split("-")[0], **LENGTH_GENERIC[family])
    exported = export(task, format, tmp_path)
    config = json.loads(exported.config.read_text())
    assert exported.any_length is True and config["any_length"] is True
    assert config["inputs"][0]["shape"] == ["batch", "length"]
    generator = torch.Generator().manual_seed(1)
    for length in (2, 5, 6, 7, 8):  # chunks of 3: 5 and 7 end in a part chunk
        tokens = torch.randint(0, 7, (3, length), generator=generator)
        with torch.no_grad():
            expected = task.backbone(tokens)  # the eager model: the chunked scans, the FFT
        got = _run_sequence_export(format, exported.path, tokens)
        torch.testing.assert_close(got, expected, atol=1e-5 * max(1.0, float(expected.abs().max())), rtol=0)


class LengthInPython(nn.Module):
    """A sequence family that adds the position as a Python range: a trace holds the traced length."""

    def __init__(self, vocab_size: int, context_length: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.tensor([float(t) for t in range(int(tokens.shape[1]))])
        return self.embedding(tokens) + positions[:, None]


def test_a_language_model_export_that_holds_its_length_says_so(tmp_path, capsys):
    # a family whose length is a Python number: its TorchScript file fails on shorter sequences, and
    # config.json and the printed line say that it takes the traced length only
    from mlplab.tasks import LanguageModeling

    task = LanguageModeling(LengthInPython, vocab_size=7, context_length=8).eval()
    exported = export(task, "torchscript", tmp_path)
    config = json.loads(exported.config.read_text())
    assert exported.any_length is False and config["any_length"] is False
    assert config["inputs"][0]["shape"] == ["batch", 8]
    assert config["inputs"][0]["description"].startswith(
        "token ids (batch, 8): this file takes sequences of exactly 8 tokens"
    )
    tokens = torch.randint(0, 7, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(exported.path))(tokens), task.backbone(tokens))
    # the line mlplab export prints says it too
    from mlplab.tools import export as command

    with mock.patch.object(command, "export_run", lambda *args: exported):
        command.main(["--run", "somewhere", "--format", "torchscript"])
    assert capsys.readouterr().out.strip().endswith("; it takes sequences of 8 tokens only)")
