"""Image families against their official code, weight for weight.

Builds each official model from a local checkout of its repository (not part of mlplab: clone
github.com/ma-xu/EfficientMod, github.com/henry-pay/SpaRTAN, github.com/Abdullah-88/Activator,
github.com/Abdullah-88/NiNformer, ...), copies its weights into mlplab's family of the same configuration
(renaming the keys), and compares the outputs in evaluation mode and the gradients of every weight under
one loss, on random images. Parameter counts are compared too.

    python benchmarks/vision_official_check.py --efficientmod ~/src/EfficientMod --spartan ~/src/SpaRTAN
    python benchmarks/vision_official_check.py --activator ~/src/Activator --ninformer ~/src/NiNformer \
        --deps /tmp/deps  # a folder holding einops (pip install --target), which NiNformer imports

Official models defined in a training script (Activator's and NiNformer's ``train.py``, which download
CIFAR-10 when run) are built by executing only that script's class and function definitions.

Prints one JSON line per model variant: parameters (ours, official), the largest output difference,
the largest relative gradient difference, and whether they agree to 1e-5.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import torch
from torch import nn

from mlplab.models import Activator, EfficientMod, NiNformer, SpaRTAN, count_parameters, registry


def load_module(path: Path, name: str) -> types.ModuleType:
    """Import a single official source file by path."""
    if "omegaconf" not in sys.modules:  # SpaRTAN imports it only for a type hint
        try:
            import omegaconf  # noqa: F401
        except ImportError:
            sys.modules["omegaconf"] = types.SimpleNamespace(DictConfig=dict)  # type: ignore[assignment]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # timm's register_model looks the module up
    spec.loader.exec_module(module)
    return module


def load_definitions(script: Path, module: types.ModuleType) -> dict:
    """The classes and functions a training script defines, executed on top of ``module``'s names.

    Only the ``class``/``def`` statements run: the rest of the script (data download, training) does not.
    """
    tree = ast.parse(script.read_text())
    body = [node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))]
    namespace = dict(vars(module))
    exec(compile(ast.Module(body=body, type_ignores=[]), str(script), "exec"), namespace)  # noqa: S102
    return namespace


def efficientmod_key(key: str, depths: tuple[int, ...], attention_depths: tuple[int, ...]) -> str:
    """mlplab's name of an official EfficientMod weight."""
    key = re.sub(r"^patch_embed\.", "stem.", key)
    if match := re.match(r"layers\.(\d+)\.downsample\.(.*)", key):
        stage = int(match.group(1))
        return f"stages.{stage}.{depths[stage] + attention_depths[stage]}.{match.group(2)}"
    if match := re.match(r"layers\.(\d+)\.blocks\.(\d+)\.(.*)", key):
        stage, block, rest = int(match.group(1)), int(match.group(2)), match.group(3)
        if block < depths[stage]:  # a modulation block
            rest = rest.replace("gamma_1", "gamma")
            rest = rest.replace("mlp.context_layer.context_list.0", "modulation.context")
            rest = rest.replace("mlp.context_layer.", "modulation.").replace("mlp.", "modulation.")
        return f"stages.{stage}.{block}.{rest}"
    return key


def spartan_key(key: str, layout: list[tuple[int, int]]) -> str:
    """mlplab's name of an official SpaRTAN weight; ``layout[k]``: (stage, index) of official ``layers.k``."""
    if match := re.match(r"conv\.(\d)\.(conv|norm)\.(.*)", key):
        return f"stem.{match.group(1)}.{0 if match.group(2) == 'conv' else 1}.{match.group(3)}"
    if key.startswith("linear."):
        return key.replace("linear.", "head.")
    match = re.match(r"layers\.(\d+)\.(.*)", key)
    stage, index = layout[int(match.group(1))]
    rest = match.group(2)
    for old, new in [
        (r"^(conv|norm)\.", lambda m: "0." if m.group(1) == "conv" else "1."),  # a downsampling ConvNormAct
        (r"^norm_(\d)", r"norm\1"),
        (r"^scale_(\d)", r"scale\1"),
        (r"smixer\.h_conv\.conv", "smixer.high.0.0"),
        (r"smixer\.h_conv\.norm", "smixer.high.0.1"),
        (r"smixer\.h_attn\.", "smixer.high.1."),
        (r"smixer\.l_conv\.0\.conv", "smixer.low.0"),
        (r"smixer\.l_conv\.1\.conv", "smixer.low.1.0"),
        (r"smixer\.l_conv\.1\.norm", "smixer.low.1.1"),
        (r"smixer\.l_attn\.", "smixer.low.2."),
        (r"cmixer\.complex$", "cmixer.complex_weight"),
        (r"cmixer\.conv\.conv", "cmixer.conv.0"),
        (r"cmixer\.conv\.norm", "cmixer.conv.1"),
        (r"cmixer\.attn\.", "cmixer.excite."),
    ]:
        rest = re.sub(old, new, rest)
    return f"stages.{stage}.{index}.{rest}"


def isotropic_key(key: str) -> str:
    """mlplab's name of an official Activator or NiNformer weight (their ``train.py`` classifiers)."""
    for old, new in [
        (r"^patcher\.", "patch_embed.proj."),
        (r"^classifier\.", "head."),
        (r"^model\.(\d+)\.", r"blocks.\1."),
        (r"\.actgu\.", ".gating."),
        (r"\.mgu\.proj\.", ".value."),
        (r"\.mgu\.Mixer\.token_mix\.0\.", ".gate.norm1."),
        (r"\.mgu\.Mixer\.token_mix\.2\.", ".gate.token_mlp."),
        (r"\.mgu\.Mixer\.channel_mix\.0\.", ".gate.norm2."),
        (r"\.mgu\.Mixer\.channel_mix\.1\.", ".gate.channel_mlp."),
        (r"net\.0\.", "fc1."),
        (r"net\.3\.", "fc2."),
    ]:
        key = re.sub(old, new, key)
    return key


def compare(official: nn.Module, ours: nn.Module, rename, image_size: int) -> dict:
    """Copy the official weights into ours; compare outputs (eval) and gradients (eval, one loss)."""
    state = {}
    for key, value in official.state_dict().items():
        target = rename(key)
        own = ours.state_dict()[target]
        state[target] = value.reshape(own.shape)
    ours.load_state_dict(state, strict=True)
    official.eval(), ours.eval()
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    out_official, out_ours = official(x), ours(x)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    named = dict(ours.named_parameters())
    gradient_gap = 0.0
    for key, parameter in official.named_parameters():
        theirs, mine = parameter.grad, named[rename(key)].grad
        scale = theirs.abs().max().clamp_min(1e-12)
        gradient_gap = max(gradient_gap, float((mine.reshape(theirs.shape) - theirs).abs().max() / scale))
    output_gap = float((out_ours - out_official).detach().abs().max())
    return {
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap,
        "max_relative_gradient_difference": gradient_gap,
        "agree_1e-5": output_gap < 1e-5 and gradient_gap < 1e-5,
    }


def check_efficientmod(checkout: Path, image_size: int) -> list[dict]:
    module = load_module(checkout / "models" / "EfficientMod.py", "official_efficientmod")
    rows = []
    for variant, builder in [("xxs", "efficientMod_xxs"), ("xs", "efficientMod_xs"), ("s", "efficientMod_s")]:
        args = dict(registry.get("EfficientMod").variants[variant].args) | {"drop_path_rate": 0.0}
        torch.manual_seed(0)
        official = getattr(module, builder)()
        ours = EfficientMod((3, image_size, image_size), (1000,), **args)
        depths, attention = tuple(args["depths"]), tuple(args["attention_depths"])
        rename = functools.partial(efficientmod_key, depths=depths, attention_depths=attention)
        row = compare(official, ours, rename, image_size)
        rows.append({"family": "EfficientMod", "variant": variant, **row})
    return rows


def check_spartan(checkout: Path, image_size: int) -> list[dict]:
    module = load_module(checkout / "src" / "model" / "spartan.py", "official_spartan")
    args = dict(registry.get("SpaRTAN").variants["T"].args) | {"drop_path_rate": 0.0}
    depths = args["depths"]
    torch.manual_seed(0)
    official = module.SpaRTAN(1000, 4, list(depths), list(args["mlp_ratios"]), list(args["dims"][1:]),
                              init_dim=args["dims"][0], dropout=0.0)  # fmt: skip
    ours = SpaRTAN((3, image_size, image_size), (1000,), **args)
    layout = []
    for stage, depth in enumerate(depths):
        layout += [(stage, index) for index in range(depth)]
        if stage < 3:
            layout.append((stage, depth))
    row = compare(official, ours, functools.partial(spartan_key, layout=layout), image_size)
    return [{"family": "SpaRTAN", "variant": "T", **row}]


def check_activator(checkout: Path) -> list[dict]:
    """Activator (with and without FFN) at the official ``train.py``'s CIFAR-10 configuration."""
    rows = []
    for variant, model_file, script in [
        ("cifar10", "activator.py", "train.py"),
        ("cifar10-no-ffn", "activator_only_GEGLU.py", "train_only_GEGLU.py"),
    ]:
        module = load_module(checkout / model_file, "official_" + model_file.removesuffix(".py"))
        definitions = load_definitions(checkout / script, module)
        torch.manual_seed(0)
        official = definitions["ACTIVATORImageClassification"]()
        ours = Activator((3, 32, 32), (10,), **registry.get("Activator").variants[variant].args)
        row = compare(official, ours, isotropic_key, 32)
        rows.append({"family": "Activator", "variant": variant, **row})
    return rows


def check_ninformer(checkout: Path) -> list[dict]:
    """NiNformer at the official ``train.py``'s CIFAR-10 configuration."""
    module = load_module(checkout / "ninformer.py", "official_ninformer")
    definitions = load_definitions(checkout / "train.py", module)
    torch.manual_seed(0)
    official = definitions["NiNformerImageClassification"]()
    ours = NiNformer((3, 32, 32), (10,), **registry.get("NiNformer").variants["cifar10"].args)
    row = compare(official, ours, isotropic_key, 32)
    return [{"family": "NiNformer", "variant": "cifar10", **row}]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--efficientmod", type=Path, help="a checkout of github.com/ma-xu/EfficientMod")
    parser.add_argument("--spartan", type=Path, help="a checkout of github.com/henry-pay/SpaRTAN")
    parser.add_argument("--activator", type=Path, help="a checkout of github.com/Abdullah-88/Activator")
    parser.add_argument("--ninformer", type=Path, help="a checkout of github.com/Abdullah-88/NiNformer")
    parser.add_argument(
        "--deps", type=Path, help="a folder of packages the official code imports (einops), put on sys.path"
    )
    parser.add_argument(
        "--image-size", type=int, default=64, help="side of the random test images (ImageNet models)"
    )
    options = parser.parse_args()
    checks = {
        "efficientmod": lambda path: check_efficientmod(path, options.image_size),
        "spartan": lambda path: check_spartan(path, options.image_size),
        "activator": check_activator,
        "ninformer": check_ninformer,
    }
    if all(getattr(options, name) is None for name in checks):
        parser.error("give at least one official checkout: " + ", ".join(f"--{name}" for name in checks))
    if options.deps is not None:
        sys.path.insert(0, str(options.deps))
    torch.set_grad_enabled(True)
    for name, check in checks.items():
        if getattr(options, name) is not None:
            for row in check(getattr(options, name)):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
