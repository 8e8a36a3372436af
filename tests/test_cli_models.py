"""The registry on the command line: `mlplab models`, short names without clashes, `variant:` in configs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import timm.models
import yaml
from torch import nn

from mlplab.errors import ConfigError
from mlplab.models import MlpMixer, registry
from mlplab.models.registry import Variant, register_family
from tests.conftest import REPO

DIGITS_CLASSIFIER = """
model:
  class_path: ImageClassification
  init_args:
    backbone:
      class_path: MlpMixer
      init_args:
{backbone}
data:
  class_path: DigitsDataModule
"""


def write_config(tmp_path, backbone: str) -> str:
    path = tmp_path / "config.yaml"
    indented = "\n".join(f"        {line}" for line in backbone.strip().splitlines())
    path.write_text(DIGITS_CLASSIFIER.format(backbone=indented))
    return str(path)


def test_models_lists_families_variants_and_counts(cli, capsys):
    assert cli("models", "--domain", "sequence") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["family", "domain", "variant", "params"]
    rows = {(line.split()[0], line.split()[2]): line for line in lines[1:]}
    names = {spec.name for spec in registry.families("sequence")}
    assert {family for family, _ in rows} == names and len(names) == 6
    assert "129,135,360" in rows[("Mamba", "130m")]  # counted on the meta device, published beside it
    assert cli("models", "--variant", "nanogpt-shakespeare") == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:4] == ["Transformer", "sequence", "nanogpt-shakespeare", "10,745,088"]


def test_models_knows_the_domains_of_families_not_yet_imported():
    # a fresh process: the tabular, image-fitting and function-fitting domains are registered by their
    # family packages, which `mlplab models` imports only when it runs (it once refused them); listing
    # them imports every family but not Lightning (the sequence backends imported it: 2-3 s a listing)
    domains = ["tabular", "image_fitting", "function_fitting"]
    probe = (
        "import sys\n"
        "from mlplab.__main__ import main\n"
        f"for domain in {domains!r}:\n"
        "    main(['models', '--domain', domain, '--markdown'])\n"
        "print('lightning imported:', 'lightning' in sys.modules)\n"
    )
    command = [sys.executable, "-c", probe]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "`TabM`" in done.stdout and "`SIREN`" in done.stdout and "`SKAN`" in done.stdout
    assert done.stdout.splitlines()[-1] == "lightning imported: False"


def test_models_refuses_an_unknown_domain_in_one_line(cli, capsys):
    assert cli("models", "--domain", "audio") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()  # no usage block before it
    assert line.startswith("error: mlplab models: argument --domain: invalid choice: 'audio'")


def test_models_refuses_a_variant_no_family_has_in_one_line(cli, capsys):
    # it once printed an empty table and exit status 0
    assert cli("models", "--variant", "XL") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: mlplab models: no family has a variant 'XL'; the variants are ")
    assert cli("models", "--domain", "image_fitting", "--variant", "S-1") == 2
    assert capsys.readouterr().err.strip() == (
        "error: mlplab models: no family of the image_fitting domain has a variant 'S-1'; the variants are "
        "ffn, image, tiny (see --help)"
    )


def test_models_markdown_refuses_a_recipes_folder_that_is_not_there(cli, capsys, tmp_path):
    # the table came out with no recipe for any family, unsaid
    assert cli("models", "--markdown", "--domain", "forecasting", "--configs", str(tmp_path / "none")) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: mlplab models: --configs {tmp_path / 'none'} is not a folder: give the")


def test_models_markdown_refuses_a_variant(cli, capsys):
    # the README's table of every variant came out, the --variant unsaid
    assert cli("models", "--markdown", "--domain", "forecasting", "--variant", "tiny") == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: mlplab models: --markdown prints the README's table, with every variant")
    assert line.endswith("leave out --variant (see --help)")


def test_short_name_resolves_to_mlplabs_family_though_timm_has_one_too(tmp_path):
    from mlplab.cli import MLPLabCLI

    assert timm.models.MlpMixer is not MlpMixer and issubclass(timm.models.MlpMixer, nn.Module)
    config = write_config(tmp_path, "patch_size: 4\ndepth: 1\nembed_dim: 16")
    built = MLPLabCLI(args=["--config", config], run=False).model
    assert type(built.backbone) is MlpMixer


def test_a_config_names_a_variant_and_overrides_single_arguments(tmp_path, cli, capsys):
    config = write_config(tmp_path, "variant: tiny\nembed_dim: 24")
    assert cli("fit", "--config", config, "--print_config") == 0
    backbone = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["backbone"]["init_args"]
    tiny = registry.get("MlpMixer").variant("tiny").args
    assert backbone["embed_dim"] == 24  # the override
    assert all(backbone[key] == value for key, value in tiny.items() if key != "embed_dim")
    assert "variant" not in backbone  # the printed config is complete without it


def test_an_unknown_variant_is_one_line(tmp_path, cli, capsys):
    config = write_config(tmp_path, "variant: Q/99")
    assert cli("fit", "--config", config) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: MlpMixer has no variant 'Q/99' (it has tiny, S/16, B/16)"
    )


def test_expand_config_leaves_other_classes_alone():
    other = {"class_path": "my_mlps.LiftedGeluMLP", "init_args": {"variant": "x", "width": 3}}
    assert registry.expand_config({"backbone": other}) == {"backbone": other}
    expanded = registry.expand_config(
        {"class_path": "mlplab.models.MlpMixer", "init_args": {"variant": "tiny"}}
    )
    assert expanded["init_args"] == dict(registry.get("MlpMixer").variant("tiny").args)


def test_registration_mistakes_are_refused():
    class Family(nn.Module):
        def __init__(self, input_shape, output_shape, width: int = 4):
            super().__init__()

    with pytest.raises(ConfigError, match="every family needs a 'tiny' variant"):
        register_family(domains=("image_classification",), variants={})(Family)
    with pytest.raises(ConfigError, match=r"variant 'tiny' sets unknown arguments \['depth'\]"):
        register_family(domains=("image_classification",), variants={"tiny": Variant({"depth": 2})})(Family)
    with pytest.raises(ConfigError, match="unknown domains"):
        register_family(domains=("audio",), variants={"tiny": Variant({})})(Family)
    with pytest.raises(ConfigError, match="a family named 'MlpMixer' is already registered"):
        register_family(domains=("image_classification",), variants={"tiny": Variant({})}, name="MlpMixer")(
            Family
        )
    with pytest.raises(ConfigError, match="unknown family 'Nope'"):
        registry.get("Nope")


def test_constructor_parameters_follow_kwargs_into_the_base_with_the_familys_defaults():
    parameters = registry.constructor_parameters(registry.get("ConventionalMLP").cls)
    assert list(parameters)[:3] == ["input_shape", "output_shape", "mlp_dim"]
    assert parameters["embed_dim"].default is None  # ConventionalMLP's own default, not the base's
    assert {"fixed_input_projection", "projection_seed", "output_activation"} <= set(parameters)
    mamba = registry.constructor_parameters(registry.get("Mamba").cls)
    assert mamba["norm"].default == "rmsnorm" and mamba["embed_dim"].default == 384


def test_a_reader_that_stops_early_gets_no_traceback():
    # `mlplab models | head`: the pipe is closed before the table is written
    listing = subprocess.Popen(
        [sys.executable, "-m", "mlplab", "models", "--domain", "sequence"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    listing.stdout.close()
    errors = listing.stderr.read().decode()
    assert listing.wait() == 1 and errors == ""
