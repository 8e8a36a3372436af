"""docs/extending.md works as written: its code blocks, written to files, train from YAML by class path."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch
import yaml

from tests.conftest import REPO


def write_examples(folder: Path) -> dict[str, str]:
    text = (REPO / "docs" / "extending.md").read_text()
    files = {}
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", text, re.DOTALL):
        first_line = block.splitlines()[0]
        if match := re.fullmatch(r"# (\S+\.(?:py|yaml))", first_line):
            files[match.group(1)] = block
            (folder / match.group(1)).write_text(block)
    return files


def test_subclassed_task_and_new_family_run_from_yaml(cli, capsys, tmp_path):
    files = write_examples(tmp_path)
    assert set(files) == {"my_mlps.py", "my_experiment.yaml", "my_script.py"}
    sys.modules.pop("my_mlps", None)
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.default_root_dir=runs"]
    assert cli("fit", "--config", "my_experiment.yaml", *quiet) == 0
    import my_mlps

    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["class_path"] == "my_mlps.CharbonnierRestoration"
    assert config["model"]["init_args"]["backbone"]["class_path"] == "my_mlps.LiftedGeluMLP"
    assert (run / "checkpoints" / "best.ckpt").is_file()

    # the loss really is the subclass's, and the fixed lift stays out of the optimiser
    from mlplab.cli import MLPLabCLI

    built = MLPLabCLI(args=["--config", "my_experiment.yaml"], run=False).model
    assert isinstance(built, my_mlps.CharbonnierRestoration) and isinstance(
        built.backbone, my_mlps.LiftedGeluMLP
    )
    p, t = torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    assert abs(built.loss(p, t).item() - (1 + 1e-6) ** 0.5) < 1e-6
    assert not built.backbone.lift.weight.requires_grad
    capsys.readouterr()
    best = run / "checkpoints" / "best.ckpt"
    assert cli("test", "--config", str(run / "config.yaml"), f"--ckpt_path={best}", *quiet) == 0


def test_the_python_script_trains_tests_and_loads_as_written(tmp_path, monkeypatch):
    """The section's script, run as written (one epoch), writes best.ckpt, which load_run reads."""
    write_examples(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_mlps", None)
    namespace: dict = {}
    exec(compile((tmp_path / "my_script.py").read_text(), "my_script.py", "exec"), namespace)
    assert namespace["run"].checkpoint.name == "best.ckpt"
    assert type(namespace["run"].model).__name__ == "CharbonnierRestoration"
    assert namespace["trainer"].callback_metrics["test/psnr"] > 10


def test_a_family_file_inside_mlplab_is_registered_and_tested_by_the_registry(tmp_path, monkeypatch):
    """Section 3's file, imported as a module, registers its family, which passes the registry's tests."""
    from mlplab.models import registry
    from tests.models import test_registry

    text = (REPO / "docs" / "extending.md").read_text()
    (block,) = re.findall(
        r"```python\n# new file: src/mlplab/models/vision/lifted_gelu.py\n(.*?)```", text, re.DOTALL
    )
    (tmp_path / "lifted_gelu_example.py").write_text(block)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lifted_gelu_example", None)
    try:
        import lifted_gelu_example

        spec = registry.get("LiftedGeluMLP")
        assert spec.cls is lifted_gelu_example.LiftedGeluMLP and spec.domains == ("image_restoration",)
        test_registry.test_tiny_variant_trains_and_keeps_its_domain_contract(
            "LiftedGeluMLP", "image_restoration"
        )
        test_registry.test_block_layout_finds_residual_blocks_whose_branches_can_be_dropped("LiftedGeluMLP")
    finally:
        registry._FAMILIES.pop("LiftedGeluMLP", None)  # the registry's own tests see mlplab's families only
