"""The ``backend`` argument: validation, the choice ``auto`` makes, one-line errors, and (on a GPU) the
fused kernels against the PyTorch path."""

from __future__ import annotations

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import GatedLinearAttention, Mamba
from mlplab.models.sequence import backends
from mlplab.models.sequence.backends import BackendChoice
from mlplab.models.sequence.gla import GLALayer
from mlplab.models.sequence.mamba import MambaMixer
from tests.conftest import REPO

FAMILIES = [
    (Mamba, "mamba_ssm", "mamba_ssm.ops.selective_scan_interface"),
    (GatedLinearAttention, "fla", "fla.ops.gla"),
]


def tiny(family, **args):
    return family(
        11, 16, embed_dim=16, depth=1, **({"num_heads": 2} if family is GatedLinearAttention else {}), **args
    )


@pytest.fixture
def importable(monkeypatch):
    """Pretend every kernel library imports (to reach the device check on a CPU-only machine)."""
    monkeypatch.setattr(backends, "import_problem", lambda module: None)


@pytest.fixture
def not_importable(monkeypatch):
    """Pretend no kernel library imports, whatever is installed."""
    monkeypatch.setattr(
        backends, "import_problem", lambda module: f"ModuleNotFoundError: No module named {module!r}"
    )


@pytest.mark.parametrize(("family", "library", "module"), FAMILIES)
def test_unknown_backend(family, library, module):
    with pytest.raises(ConfigError, match=rf"backend must be auto, torch or {library}, got 'cuda'"):
        tiny(family, backend="cuda")


@pytest.mark.parametrize(("family", "library", "module"), FAMILIES)
def test_requested_library_that_does_not_import(family, library, module, not_importable):
    with pytest.raises(ConfigError) as error:
        tiny(family, backend=library)
    message = str(error.value)
    assert f"backend {library} cannot be used: {module} does not import (ModuleNotFoundError" in message
    assert "pip install" in message and ".[kernels]" in message and "\n" not in message


@pytest.mark.parametrize(("family", "library", "module"), FAMILIES)
def test_requested_library_on_the_cpu(family, library, module, importable):
    model = tiny(family, backend=library)  # builds: the library "imports"
    with pytest.raises(ConfigError, match=rf"backend {library} runs on CUDA devices only, got inputs on cpu"):
        model(torch.randint(0, 11, (2, 16)))


@pytest.mark.parametrize(("family", "library", "module"), FAMILIES)
def test_auto_takes_the_pytorch_path_on_the_cpu_and_says_so(family, library, module, importable, monkeypatch):
    logged = []
    monkeypatch.setattr(backends, "rank_zero_info", logged.append)
    monkeypatch.setattr(backends, "_LOGGED", set())
    torch.manual_seed(0)
    auto = tiny(family)
    torch.manual_seed(0)
    reference = tiny(family, backend="torch")
    tokens = torch.randint(0, 11, (2, 16))
    torch.testing.assert_close(auto(tokens), reference(tokens))
    auto(tokens)
    assert logged == [
        f"{family.__name__}: backend auto uses torch: {library} needs CUDA inputs (these are on cpu)"
    ]


def test_the_meta_device_always_counts_the_pytorch_path(importable):
    choice = BackendChoice("Mamba", "mamba_ssm", "mamba_ssm")
    assert choice.resolve(torch.device("meta")) == "torch"
    assert choice.resolve(torch.device("cuda")) == "mamba_ssm"


MQAR_TINY = ["--data.init_args.preset=64x4", "--data.init_args.num_train_examples=16",
             "--data.init_args.num_test_examples=8", "--data.init_args.batch_size=4",
             "--model.backbone.init_args.embed_dim=8", "--trainer.fast_dev_run=1",
             "--trainer.enable_progress_bar=false"]  # fmt: skip


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), "\n".join(err)
    return err[-1]


def test_cli_library_that_does_not_import(cli, capsys, not_importable):
    recipe = REPO / "configs" / "text" / "mamba_mqar.yaml"
    args = ["fit", "--config", str(recipe), "--model.backbone.init_args.backend=mamba_ssm", *MQAR_TINY]
    assert cli(*args) == 2
    line = one_error_line(capsys)
    assert line.startswith(
        "error: Mamba: backend mamba_ssm cannot be used: mamba_ssm.ops.selective_scan_interface"
    )
    assert line.endswith('install it with pip install mamba-ssm causal-conv1d --no-build-isolation (or pip '
                         'install -e ".[kernels]"), or set backend: torch')  # fmt: skip


def test_cli_library_on_a_device_it_cannot_run_on(cli, capsys, importable):
    recipe = REPO / "configs" / "text" / "gla_mqar.yaml"
    args = ["fit", "--config", str(recipe), "--model.backbone.init_args.backend=fla", *MQAR_TINY,
            "--model.backbone.init_args.num_heads=2", "--trainer.accelerator=cpu"]  # fmt: skip
    assert cli(*args) == 2
    assert one_error_line(capsys) == (
        "error: GatedLinearAttention: backend fla runs on CUDA devices only, got inputs on cpu: set backend: "
        "torch (or auto) for this device"
    )


# ------------------------------------------------------------------------------- GPU: kernels
# Tolerances, as the relative error ||kernel - torch|| / ||torch|| of the outputs and of every parameter's
# gradient. float32 inputs (TF32 off for the PyTorch path): mamba_ssm <= 1e-3 (the kernel reorders float32
# sums), fla <= 5e-3 (its Triton dot products run in TF32). bfloat16 autocast: <= 3e-2 for both (the
# projections are bf16 on both paths; the PyTorch scans then run in float32, the kernels take bf16
# inputs, and fla's log-gates are cast to bf16 as fla's own layer computes them).
TOLERANCE = {
    "mamba_ssm": {torch.float32: 1e-3, torch.bfloat16: 3e-2},
    "fla": {torch.float32: 5e-3, torch.bfloat16: 3e-2},
}


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours.float() - reference.float()).norm() / reference.float().norm().clamp_min(1e-12)).item()


def compare_kernel_with_torch(make_layer, width: int, dtype: torch.dtype, library: str) -> None:
    torch.manual_seed(0)
    kernel_layer = make_layer("kernel").cuda()
    torch_layer = make_layer("torch").cuda()
    torch_layer.load_state_dict(kernel_layer.state_dict())
    x = torch.randn(4, 256, width, device="cuda")
    results = []
    for layer in (kernel_layer, torch_layer):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = layer(x)
        out.float().square().mean().backward()
        results.append((out, {name: p.grad for name, p in layer.named_parameters()}))
    (kernel_out, kernel_grads), (torch_out, torch_grads) = results
    assert (kernel_layer.backend.last, torch_layer.backend.last) == (library, "torch")
    tolerance = TOLERANCE[library][dtype]
    assert relative_error(kernel_out, torch_out) <= tolerance
    for name, grad in torch_grads.items():
        assert relative_error(kernel_grads[name], grad) <= tolerance, name


@pytest.fixture
def cuda_without_tf32(monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mamba_ssm_kernels_match_the_pytorch_scan(dtype, cuda_without_tf32):
    pytest.importorskip("mamba_ssm")

    def make(kind):
        return MambaMixer(64, d_state=16, backend="mamba_ssm" if kind == "kernel" else "torch")

    compare_kernel_with_torch(make, 64, dtype, "mamba_ssm")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fla_chunk_gla_matches_the_pytorch_chunked_form(dtype, cuda_without_tf32):
    pytest.importorskip("fla")

    def make(kind):
        return GLALayer(128, n_heads=2, backend="fla" if kind == "kernel" else "torch")

    compare_kernel_with_torch(make, 128, dtype, "fla")


@pytest.mark.gpu
def test_auto_picks_the_kernels_on_cuda(cuda_without_tf32):
    pytest.importorskip("mamba_ssm")
    pytest.importorskip("fla")
    assert BackendChoice("Mamba", "auto", "mamba_ssm").resolve(torch.device("cuda")) == "mamba_ssm"
    assert BackendChoice("GatedLinearAttention", "auto", "fla").resolve(torch.device("cuda")) == "fla"
