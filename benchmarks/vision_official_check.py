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

Prints one JSON line per model variant: parameters (ours, official; at 224² too where the check runs
at a smaller size), the largest output difference (absolute, and relative to the largest official
output), the largest relative gradient difference (per weight, max |ours - official| / max |official|
of that weight's gradient, the largest over the weights), the precision, its bound and ``agree``.

Bounds, one rule for every model: in float32 both relative differences must be under 1e-5. A family
with a row over it is rerun at once in float64 (printing a second row, ``"dtype": "float64"``), where
both must be under 1e-10, and that rerun decides: float32 rounding can exceed 1e-5 where a gradient
is small against the rest of the network (SpaRTAN-T's squeeze layer, whose largest gradient is 1.8e-4:
2.0e-4 relative; MAXIM-S-2: 1.9e-5), while the same two codes agree to ~1e-13 in float64, and a real
difference of 1e-5 or more shows in float64 as well. ``--float64`` runs everything in float64 (bound
1e-10). Exits with status 1 when a row misses its bound, after printing every row.
The PyTorch checks first move the official weights and BatchNorm statistics off their initial values
(:func:`perturb`), so that layers that start as the identity (GRN, LayerScale, fresh BatchNorm) are
tested too.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib.util
import json
import math
import re
import sys
import types
from pathlib import Path

import official_code
import torch
from torch import nn

from mlplab.models import (
    MSMLP,
    Activator,
    BottleneckMLP,
    ConventionalMLP,
    EfficientMod,
    HourglassMLP,
    NiNformer,
    RaftMLP,
    SpaRTAN,
    StandardMLP,
    StripMLP,
    count_parameters,
    registry,
)

IMAGENET_SHAPES = ((3, 224, 224), (1000,))
#: The precision of the comparison (``--float64`` sets it to float64, to tell rounding from a difference).
DTYPE = [torch.float32]
#: The bound on the relative output and gradient differences, by precision (see the module docstring).
BOUNDS = {torch.float32: 1e-5, torch.float64: 1e-10}


def verdict(relative_output_gap: float, gradient_gap: float) -> dict:
    """The precision, its bound and whether both differences are under it (the row's ``agree``)."""
    bound = BOUNDS[DTYPE[0]]
    return {
        "dtype": str(DTYPE[0]).removeprefix("torch."),
        "bound": bound,
        "agree": relative_output_gap < bound and gradient_gap < bound,
    }


def load_module(path: Path, name: str) -> types.ModuleType:
    """Import a single official source file by path."""
    if "omegaconf" not in sys.modules:  # SpaRTAN imports it only for a type hint
        try:
            import omegaconf  # noqa: F401
        except ImportError:
            sys.modules["omegaconf"] = types.SimpleNamespace(DictConfig=dict)  # type: ignore[assignment]
    return official_code.load_module(path, name)  # registered: timm's register_model looks it up


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


STRIP_MLP_NAMES = [
    (r"^blocks(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}."),
    (r"^merging(\d)\.", lambda m: f"merges.{int(m.group(1)) - 1}."),
    (r"^conv_s1_28\.", "skip_1_to_3."),
    (r"^conv_s1_14\.", "skip_1_to_4."),
    (r"^conv_s2_14\.", "skip_2_to_4."),
    (r"token_mixing\.dwsc\.conv_merge\.BN\.", "token_mixing.local.0."),
    (r"token_mixing\.dwsc\.conv_merge\.Conv\.", "token_mixing.local.2."),
    (r"smlp_block\.mlp\.", "mix_in."),
    (r"smlp_block\.BN\.", "norm_h."),
    (r"smlp_block\.relate_pos_(h|w)\.embeddings_table", r"pos_\1.table"),
    (r"smlp_block\.fc_(h|w)\.", r"local_\1."),
    (r"smlp_block\.", ""),
    (r"channel_mixing\.conv_77\.", "channel_mixing.spatial."),
    (r"channel_mixing\.layer_norm\.", "channel_mixing.norm."),
    (r"channel_mixing\.fc(\d)\.", r"channel_mixing.mlp.fc\1."),
    (r"channel_mixing\.grn\.gamma", "channel_mixing.mlp.grn.weight"),
    (r"channel_mixing\.grn\.beta", "channel_mixing.mlp.grn.bias"),
]


def strip_mlp_key(key: str) -> str:
    """mlplab's name of an official Strip-MLP (``StripMLPNet``) weight."""
    for old, new in STRIP_MLP_NAMES:
        key = re.sub(old, new, key)
    return key


def ms_mlp_key(key: str, depths: tuple[int, ...]) -> str:
    """mlplab's name of an official MS-MLP (``MS_MLP``) weight."""
    if match := re.match(r"layers\.(\d+)\.downsample\.(.*)", key):
        stage = int(match.group(1))
        return f"stages.{stage}.{depths[stage]}.{match.group(2)}"
    key = re.sub(r"^layers\.(\d+)\.blocks\.", r"stages.\1.", key)
    return re.sub(r"\.pwconv(\d)\.", r".mlp.fc\1.", key)


def raft_mlp_key(key: str, depths: tuple[int, ...], kernels: tuple[tuple[int, ...], ...]) -> str | list[str]:
    """mlplab's name(s) of an official RaftMLP weight (``RaftMLP``, serial rafts, cross-scale embedding).

    The official embedding's one ``Linear`` over the concatenated unfolds is mlplab's sum of
    convolutions, one per kernel: its weight splits column-wise into them, its bias is the first's.
    """
    if match := re.match(r"levels\.(\d+)\.fn\.0\.fc\.(weight|bias)", key):
        level, kind = int(match.group(1)), match.group(2)
        prefix = f"levels.{level}.embed.projections"
        if kind == "bias":
            return f"{prefix}.0.bias"
        return [f"{prefix}.{k}.weight" for k in range(len(kernels[level]))]
    if match := re.match(r"levels\.(\d+)\.fn\.(\d+)\.(\d)\.(.*)", key):
        level, block, part, rest = (
            int(match.group(1)),
            int(match.group(2)) - 2,
            match.group(3),
            match.group(4),
        )
        assert 0 <= block < depths[level], key
        name = {"1": "vertical", "3": "horizontal", "5": "channels"}[part]
        rest = re.sub(r"^norm\.1\.|^norm\.", f"norm_{name}.", rest)
        rest = re.sub(r"^fn\.0\.", f"mix_{name}.fc1.", rest)
        rest = re.sub(r"^fn\.3\.", f"mix_{name}.fc2.", rest)
        return f"levels.{level}.blocks.{block}.{rest}"
    key = re.sub(r"^heads\.0\.1\.", "norm.", key)
    return re.sub(r"^classifier\.", "head.", key)


def hourglass_key(key: str) -> str:
    """mlplab's name of an official Hourglass-paper weight (``HourGlassMLP``, ``ConventionalMLP``)."""
    key = re.sub(r"^in_fc\.", "input_projection.", key)
    key = re.sub(r"^out_fc\.", "output_projection.", key)
    return re.sub(r"^(blocks\.\d+)\.(fc\d)\.", r"\1.mlp.\2.", key)


def bottleneck_mlp_key(key: str) -> str:
    """mlplab's name of an official "Scaling MLPs" ``BottleneckMLP`` weight."""
    key = re.sub(r"^blocks\.(\d+)\.block\.0\.", r"blocks.\1.mlp.fc1.", key)
    key = re.sub(r"^blocks\.(\d+)\.block\.2\.", r"blocks.\1.mlp.fc2.", key)
    return re.sub(r"^layernorms\.(\d+)\.", r"blocks.\1.norm.", key)


def standard_mlp_key(key: str) -> str:
    """mlplab's name of an official "Scaling MLPs" ``StandardMLP`` weight."""
    key = re.sub(r"^layernorms\.(\d+)\.", r"blocks.\1.0.", key)
    return re.sub(r"^layers\.(\d+)\.", r"blocks.\1.2.", key)


def perturb(model: nn.Module) -> None:
    """Move every weight and norm statistic off its initial value, so that no layer starts as the identity.

    Zero-initialised scales (GRN's, LayerScale's) and BatchNorm's fresh statistics (mean 0, variance 1)
    would hide a wrong wiring of those layers; noise makes each of them count in the comparison.
    """
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.mul_(torch.exp(0.2 * noise))
            else:
                tensor.add_(0.05 * noise)


def as_ours(value: torch.Tensor, targets: str | list[str], own: dict[str, torch.Tensor]) -> dict:
    """An official tensor as mlplab's tensor(s) ``targets``: reshaped, or split column-wise over a list."""
    if isinstance(targets, str):
        return {targets: value.reshape(own[targets].shape)}
    sizes = [own[target][0].numel() for target in targets]
    parts = value.reshape(value.shape[0], -1).split(sizes, dim=1)
    return {target: part.reshape(own[target].shape) for target, part in zip(targets, parts)}


def compare(
    official: nn.Module,
    ours: nn.Module,
    rename,
    image_size: int,
    *,
    perturbed: bool = False,
    permutations: dict[str, torch.Tensor] | None = None,
    input_shape: tuple[int, ...] | None = None,
    flatten_official: bool = False,
) -> dict:
    """Copy the official weights into ours; compare outputs (eval) and gradients (eval, one loss).

    ``rename(key)`` gives mlplab's name of an official weight, or a list of names when mlplab holds it
    as several tensors (the official one split column-wise). ``permutations[key]``: for an official
    vector that mlplab stores in another order, the official indices of mlplab's entries. With
    ``perturbed``, the official weights are first moved off their initial values (:func:`perturb`).
    The inputs are 2 random ``(3, image_size, image_size)`` images, or samples of ``input_shape``;
    ``flatten_official`` hands the official model each sample flattened. A weight that neither model
    trains (``requires_grad=False`` in both) has no gradient to compare; one trained by only one counts
    as an infinite difference.
    """
    permutations = permutations or {}
    if perturbed:
        perturb(official)
    state, own = {}, ours.state_dict()
    for key, value in official.state_dict().items():
        if key in permutations:
            value = value[permutations[key]]
        state |= as_ours(value, rename(key), own)
    ours.load_state_dict(state, strict=True)
    official.eval(), ours.eval()
    shape = input_shape or (3, image_size, image_size)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    if DTYPE[0] != torch.float32:
        official.to(DTYPE[0]), ours.to(DTYPE[0])
        x = x.to(DTYPE[0])
    out_official = official(x.flatten(1) if flatten_official else x)
    out_ours = ours(x).reshape(out_official.shape)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    named = dict(ours.named_parameters())
    gradient_gap = 0.0
    for key, parameter in official.named_parameters():
        theirs, targets = parameter.grad, rename(key)
        trained = [named[t].grad is not None for t in ([targets] if isinstance(targets, str) else targets)]
        if theirs is None or not all(trained):
            gradient_gap = gradient_gap if theirs is None and not any(trained) else float("inf")
            continue
        if key in permutations:
            theirs = theirs[permutations[key]]
        if isinstance(targets, str):
            mine = named[targets].grad.reshape(theirs.shape)
        else:
            rows = theirs.shape[0]
            mine = torch.cat([named[t].grad.reshape(rows, -1) for t in targets], 1).reshape(theirs.shape)
        scale = theirs.abs().max().clamp_min(1e-12)
        gradient_gap = max(gradient_gap, float((mine - theirs).abs().max() / scale))
    output_gap = float((out_ours - out_official).detach().abs().max())
    relative_output_gap = output_gap / float(out_official.detach().abs().max().clamp_min(1e-12))
    return {
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap,
        "max_relative_output_difference": relative_output_gap,
        "max_relative_gradient_difference": gradient_gap,
        **verdict(relative_output_gap, gradient_gap),
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
        row = compare(official, ours, rename, image_size, perturbed=True)
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
    rename = functools.partial(spartan_key, layout=layout)
    tensor_float = torch.Tensor.float
    if DTYPE[0] == torch.float64:
        # Both codes cast the spectral product to float32 (the official ``.to(torch.float32)``, mlplab's
        # ``.float()``); with --float64 both casts are made float64, so that only rounding is left.
        module.torch = types.ModuleType("torch_float64")
        module.torch.__dict__.update(vars(torch), float32=torch.float64)
        torch.Tensor.float = torch.Tensor.double
    try:
        row = compare(official, ours, rename, image_size, perturbed=True)
    finally:
        torch.Tensor.float = tensor_float
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
        row = compare(official, ours, isotropic_key, 32, perturbed=True)
        rows.append({"family": "Activator", "variant": variant, **row})
    return rows


def check_ninformer(checkout: Path) -> list[dict]:
    """NiNformer at the official ``train.py``'s CIFAR-10 configuration."""
    module = load_module(checkout / "ninformer.py", "official_ninformer")
    definitions = load_definitions(checkout / "train.py", module)
    torch.manual_seed(0)
    official = definitions["NiNformerImageClassification"]()
    ours = NiNformer((3, 32, 32), (10,), **registry.get("NiNformer").variants["cifar10"].args)
    row = compare(official, ours, isotropic_key, 32, perturbed=True)
    return [{"family": "NiNformer", "variant": "cifar10", **row}]


def parameters_at(official: nn.Module, ours: nn.Module) -> dict:
    """Parameter counts of two models built at the published (ImageNet) size."""
    return {
        "params_ours_224": count_parameters(ours)[0],
        "params_official_224": count_parameters(official)[0],
    }


def check_strip_mlp(checkout: Path, image_size: int) -> list[dict]:
    """Strip-MLP T* and T (the official ``__main__``'s Light Tiny and Tiny), weights perturbed."""
    module = load_module(checkout / "models" / "strip_mlp.py", "official_strip_mlp")
    rows = []
    for variant in ("T*", "T"):
        args = dict(registry.get("StripMLP").variants[variant].args) | {"drop_path_rate": 0.0}
        official_args = {"embed_dim": args["embed_dim"], "layers": list(args["depths"]), "alpha": 3}
        counts = parameters_at(module.StripMLPNet(**official_args), StripMLP(*IMAGENET_SHAPES, **args))
        torch.manual_seed(0)
        official = module.StripMLPNet(img_size=image_size, **official_args)
        ours = StripMLP((3, image_size, image_size), (1000,), **args)
        row = compare(official, ours, strip_mlp_key, image_size, perturbed=True)
        rows.append({"family": "StripMLP", "variant": variant, **counts, **row})
    return rows


def check_ms_mlp(checkout: Path, image_size: int) -> list[dict]:
    """MS-MLP-T (``configs/msmlp_tiny_patch4_shift5_224.yaml``), weights perturbed."""
    module = load_module(checkout / "models" / "ms_mlp.py", "official_ms_mlp")
    args = dict(registry.get("MSMLP").variants["T"].args) | {"drop_path_rate": 0.0}
    torch.manual_seed(0)
    official = module.MS_MLP(
        img_size=image_size,
        embed_dim=args["embed_dim"],
        depths=list(args["depths"]),
        shift_size=len(args["shift_dist"]),
        shift_dist=list(args["shift_dist"]),
        mix_size=[list(kernels) for kernels in args["mix_size"]],
        drop_path_rate=0.0,
    )
    ours = MSMLP((3, image_size, image_size), (1000,), **args)
    rename = functools.partial(ms_mlp_key, depths=tuple(args["depths"]))
    row = compare(official, ours, rename, image_size, perturbed=True)
    return [{"family": "MSMLP", "variant": "T", **row}]


def check_raft_mlp(checkout: Path, image_size: int) -> list[dict]:
    """RaftMLP-S (``configs/settings/imagenet-raft-mlp-cross-mlp-emb-s.yaml``), weights perturbed.

    The official token-mixing LayerNorms see the channels in the order ``(C/r, r)`` (its ``PermutedBlock``
    rearranges them so), mlplab's in the order ``(r, C/r)``: their weights are mapped by that permutation.
    """
    sys.path.insert(0, str(checkout))  # the official modules import each other as ``libs.*``
    models = importlib.import_module("libs.models")
    args = dict(registry.get("RaftMLP").variants["S"].args) | {"drop_path_rate": 0.0}
    dims, depths, raft = args["dims"], args["depths"], args["raft_size"]
    layers = [
        {"depth": d, "dim": c, "patch_size": p, "raft_size": raft, "embedding_kernels": list(k)}
        for c, d, p, k in zip(dims, depths, args["patch_sizes"], args["embedding_kernels"])
    ]
    settings = {"token_mixing_type": "ser_pm", "embedding_type": "emb_cross_mlp", "shortcut": False}

    def official_at(size: int) -> nn.Module:
        return models.RaftMLP(layers, pretrained_image_size=size, num_classes=1000, **settings)

    counts = parameters_at(official_at(224), RaftMLP(*IMAGENET_SHAPES, **args))
    torch.manual_seed(0)
    official = official_at(image_size)
    ours = RaftMLP((3, image_size, image_size), (1000,), **args)
    permutations = {}
    for level, (dim, depth) in enumerate(zip(dims, depths)):
        order = torch.arange(dim).view(dim // raft, raft).t().flatten()
        for block in range(depth):
            for part in (1, 3):
                for kind in ("weight", "bias"):
                    permutations[f"levels.{level}.fn.{block + 2}.{part}.norm.1.{kind}"] = order
    rename = functools.partial(raft_mlp_key, depths=tuple(depths), kernels=tuple(args["embedding_kernels"]))
    row = compare(official, ours, rename, image_size, perturbed=True, permutations=permutations)
    return [{"family": "RaftMLP", "variant": "S", **counts, **row}]


def check_hourglass(checkout: Path) -> list[dict]:
    """The Hourglass paper's models (``hourglass_mlp/utils/model.py``), W_in fixed and copied too.

    Every ``HourglassMLP`` variant with ``fixed_input_projection`` (the paper's proposal; the official
    ``fix_Win=True``) and ``ConventionalMLP``'s ``L4`` (trained ``W_in``, as the official default), with
    the official model's ``W_in`` copied into ours like every other weight; BatchNorm statistics perturbed.
    """
    module = load_module(checkout / "hourglass_mlp" / "utils" / "model.py", "official_hourglass")
    rows = []
    for family, variant in [(HourglassMLP, name) for name in registry.get("HourglassMLP").variants] + [
        (ConventionalMLP, "L4")
    ]:
        entry = registry.get(family.__name__).variants[variant]
        if entry.shapes is None:
            continue  # ``tiny``: no published configuration
        (input_shape, output_shape), args = entry.shapes, dict(entry.args)
        d_x, d_y = math.prod(input_shape), math.prod(output_shape)
        torch.manual_seed(0)
        if family is HourglassMLP:
            hidden = [args["mlp_dim"]] * args["depth"]
            with contextlib.redirect_stdout(sys.stderr):  # it prints that W_in is fixed
                official = module.HourGlassMLP(d_x, d_y, args["embed_dim"], hidden, fix_Win=True)
            ours = HourglassMLP(input_shape, output_shape, fixed_input_projection=True, **args)
        else:
            hidden = [args["mlp_dim"]] * args["depth"]
            official = module.ConventionalMLP(d_x, d_y, d_x, hidden)
            ours = ConventionalMLP(input_shape, output_shape, **args)
        row = compare(
            official, ours, hourglass_key, 0, perturbed=True, input_shape=input_shape, flatten_official=True
        )
        rows.append({"family": family.__name__, "variant": variant, **row})
    return rows


def check_scaling_mlp(checkout: Path) -> list[dict]:
    """B-MLPs (the official ``B_6_Wi_512``, ``B_6_Wi_1024``, ``B_12_Wi_1024``) and an S-MLP, CIFAR-10 shapes.

    The official ``models/networks.py`` imports its checkpoint downloader (``utils.download``, which
    needs ``progressbar``); a stand-in without checkpoints replaces it while the file loads.
    """
    saved = {name: sys.modules.get(name) for name in ("utils", "utils.download")}
    sys.modules["utils"] = types.ModuleType("utils")
    sys.modules["utils.download"] = types.SimpleNamespace(download=None, default_checkpoints={})
    try:
        module = load_module(checkout / "models" / "networks.py", "official_scaling_mlps")
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    input_shape, output_shape = (3, 32, 32), (10,)
    d_x, rows = math.prod(input_shape), []
    for variant in ("B-6/Wi-512", "B-6/Wi-1024", "B-12/Wi-1024"):
        args = registry.get("BottleneckMLP").variants[variant].args
        builder = f"B_{args['depth']}_Wi_{args['embed_dim']}"
        torch.manual_seed(0)
        official = getattr(module, builder)(d_x, output_shape[0])
        ours = BottleneckMLP(input_shape, output_shape, **args)
        row = compare(official, ours, bottleneck_mlp_key, 0, perturbed=True, input_shape=input_shape,
                      flatten_official=True)  # fmt: skip
        rows.append({"family": "BottleneckMLP", "variant": variant, **row})
    width, depth = 256, 4  # S-MLP has no published variant: widths [256] * 4
    torch.manual_seed(0)
    official = module.StandardMLP(d_x, output_shape[0], [width] * depth)
    ours = StandardMLP(input_shape, output_shape, embed_dim=width, depth=depth)
    row = compare(
        official, ours, standard_mlp_key, 0, perturbed=True, input_shape=input_shape, flatten_official=True
    )
    rows.append({"family": "StandardMLP", "variant": f"Wi-{width}, L={depth}", **row})
    return rows


def maxim_key(path: tuple[str, ...], convs: tuple[str, ...] = ()) -> str:
    """mlplab's name of an official MAXIM (Flax) parameter of a bottleneck, encoder or cross-gating block.

    ``path`` is the parameter's path in the Flax tree, e.g. ``("SplitHeadMultiAxisGmlpLayer_0",
    "GridGmlpLayer", "in_project", "kernel")``; ``convs[i]`` is mlplab's name of the block's unnamed
    ``Conv_i``.
    """
    *modules, leaf = path
    if len(modules) == 1 and (match := re.fullmatch(r"Conv_(\d)", modules[0])):
        modules = [convs[int(match.group(1))]]
    leaf = {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)
    name = ".".join(modules)
    for old, new in [
        (r"^SplitHeadMultiAxisGmlpLayer_(\d+)", lambda m: f"layers.{2 * int(m.group(1))}"),
        (r"^channel_attention_block_1_?(\d+)", lambda m: f"layers.{2 * int(m.group(1)) + 1}"),
        (r"LayerNorm_in$", "norm"),
        (r"(Grid|Block)GmlpLayer", lambda m: f"{m.group(1).lower()}_gmlp"),
        (r"(grid|block)_gmlp\.LayerNorm$", r"\1_gmlp.norm"),
        (r"\.(Grid|Block)GatingUnit\.intermediate_layernorm$", ".gate_norm"),
        (r"\.(Grid|Block)GatingUnit\.Dense_0$", ".gate.linear"),
        (r"\.channel_mixing\.Dense_(\d)$", lambda m: f".mlp.fc{int(m.group(1)) + 1}"),
        (r"\.channel_attention\.Conv_0$", ".attention.squeeze"),
        (r"\.channel_attention\.Conv_1$", ".attention.excite"),
        (r"(layers\.\d+)\.LayerNorm$", r"\1.norm"),
        (r"^SplitHeadMultiAxisGating_(x|y)\.Dense_0$", r"\1_gate.grid_dense.linear"),
        (r"^SplitHeadMultiAxisGating_(x|y)\.Dense_1$", r"\1_gate.block_dense.linear"),
        (r"^SplitHeadMultiAxisGating_(x|y)\.LayerNorm_in$", r"\1_gate.norm"),
        (r"^SplitHeadMultiAxisGating_(x|y)\.", r"\1_gate."),
        (r"^LayerNorm_(x|y)$", r"\1_norm"),
        (r"^in_project_(x|y)$", r"\1_in"),
        (r"^out_project_(x|y)$", r"\1_out"),
        (r"^ConvTranspose_0$", "upsample"),
    ]:
        name = re.sub(old, new, name)
    return f"{name}.{leaf}"


def maxim_model_key(path: tuple[str, ...], depth: int = 3) -> str:
    """mlplab's name of a parameter of the official ``MAXIM`` model (one supervision scale)."""
    top, *rest = path
    if match := re.fullmatch(r"UpSampleRatio_(\d+)", top):  # unnamed: 2·depth² per stage, in call order
        stage, n = divmod(int(match.group(1)), 2 * depth * depth)
        group = "skip_resizes" if n < depth * depth else "decoder_resizes"
        level, source = divmod(n % (depth * depth), depth)
        return (
            f"stages.{stage}.{group}.{depth - 1 - level}.{source}.proj.{rest[-1].replace('kernel', 'weight')}"
        )
    stage, name, index = re.fullmatch(r"stage_(\d+)_(\w+)_(\d+)", top).groups()
    prefix = f"stages.{stage}"
    leaf = rest[-1].replace("kernel", "weight")
    if name == "input_conv":
        return f"{prefix}.input_convs.{index}.{leaf}"
    if name == "output_conv":
        return f"{prefix}.outputs.{index}.{leaf}"
    if name == "supervised_attention_module":
        part = {"Conv_0": "features", "Conv_1": "to_image", "Conv_2": "attention"}[rest[0]]
        return f"{prefix}.outputs.{index}.{part}.{leaf}"
    if name == "input_fuse_sam":
        return f"{prefix}.sam_fusion.{index}.{maxim_key(tuple(rest), ('x_proj', 'y_proj'))}"
    if name == "cross_gating_block":
        return f"{prefix}.skip_gating.{index}.{maxim_key(tuple(rest), ('x_proj', 'y_proj'))}"
    if name == "global_block":
        return f"{prefix}.bottleneck.{index}.{maxim_key(tuple(rest))}"
    if name == "encoder_block":
        if rest[0] == "cross_gating_block":
            return (
                f"{prefix}.encoders.{index}.cross_gating.{maxim_key(tuple(rest[1:]), ('x_proj', 'y_proj'))}"
            )
        return f"{prefix}.encoders.{index}.{maxim_key(tuple(rest), ('input_proj', 'down'))}"
    if name == "decoder_block":
        if rest[0] == "ConvTranspose_0":
            return f"{prefix}.decoder_ups.{index}.{leaf}"
        return f"{prefix}.decoders.{index}.{maxim_key(tuple(rest[1:]), ('input_proj',))}"
    raise KeyError(path)


def flax_to_torch(path: tuple[str, ...], value, target: torch.Tensor) -> torch.Tensor:
    """An official Flax parameter in PyTorch's layout for ``target`` (Dense, Conv, ConvTranspose, norms)."""
    import numpy as np

    array = torch.from_numpy(np.array(value, dtype=np.float64)).to(DTYPE[0])
    if path[-1] != "kernel":
        return array.reshape(target.shape)
    if array.ndim == 2:  # Dense: (in, out)
        return array.t().contiguous()
    if target.ndim == 2:  # a 1×1 Conv read as a Linear: (1, 1, in, out)
        return array[0, 0].t().contiguous()
    if "ConvTranspose" in path[-2]:  # lax.conv_transpose does not flip the kernel; PyTorch's does
        return array.flip(0, 1).permute(2, 3, 0, 1).contiguous()
    return array.permute(3, 2, 0, 1).contiguous()  # Conv: (kh, kw, in, out) -> (out, in, kh, kw)


#: The variants the official ``Model(variant=...)`` knows; others are built as ``MAXIM(**settings)``.
OFFICIAL_MAXIM_VARIANTS = ("S-1", "S-2", "S-3", "M-1", "M-2", "M-3")
#: The smallest MAXIM-2S/3S-like models that still hold every block type: 3 supervision scales (SAMs and
#: SAM-fusion cross-gating at every scale), two high-resolution levels with block 4 and grid 2 (unequal,
#: so that a swapped block and grid cannot pass) and a low-resolution level and bottleneck with 2, two
#: (MAB, RCAB/RDCAB) groups and two bottleneck blocks, on non-square 32×16 images.
MAXIM_SMALL = {
    "embed_dim": 8, "depth": 3, "num_groups": 2, "num_bottleneck_blocks": 2, "num_supervision_scales": 3,
    "block_size_hr": (4, 4), "grid_size_hr": (2, 2), "block_size_lr": (2, 2),
}  # fmt: skip


def maxim_whole_model(variant: str) -> tuple[dict, tuple[int, int]]:
    """Settings and image size of a whole MAXIM: a registry variant at 64², or ``small-2S``/``small-3S``."""
    if match := re.fullmatch(r"small-(\d)S", variant):
        return MAXIM_SMALL | {"num_stages": int(match.group(1))}, (32, 16)
    return dict(registry.get("MAXIM").variants[variant].args), (64, 64)


def check_maxim(checkout: Path, variants: tuple[str, ...] = ("blocks", "S-1")) -> list[dict]:
    """Three block stacks of MAXIM-S-1 against the official Flax modules, on the CPU with JAX.

    The S-1 bottleneck block (128 channels, block and grid 8, two (MAB, RDCAB) groups), its first encoder
    block (32 channels from 32 + 32, block and grid 16, two (MAB, RCAB) groups, 4×4 stride-2
    convolution) and its coarsest cross-gating block (384 + 128 channels to 128, the gating stream
    upsampled), when ``variants`` holds ``blocks``; then the whole of each other model in ``variants``
    (:func:`maxim_whole_model`: the official ``Model(variant=...)`` or ``MAXIM(**settings)``), every
    output of every stage and scale (also reported one by one, relative to each output's largest
    value). Flax parameters are perturbed, converted to PyTorch's layout and compared with ``jax.grad``
    of the same loss.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import traverse_util

    from mlplab.models.vision import maxim as ours_maxim

    official = load_module(checkout / "maxim" / "models" / "maxim.py", "official_maxim")
    settings = {"num_groups": 2, "factors": (2, 2, 2), "dropout": 0.0, "channels_reduction": 4,
                "use_global_mlp": True, "channel_mlp": ours_maxim.CONVENTIONAL}  # fmt: skip
    cases = [
        (
            "bottleneck block",
            official.BottleneckBlock(features=128, block_size=(8, 8), grid_size=(8, 8), num_groups=2),
            ours_maxim.BottleneckBlock(128, 128, (8, 8), settings),
            [(2, 16, 16, 128)],
            {"deterministic": True},
            (),
        ),
        (
            "encoder block 0",
            official.UNetEncoderBlock(features=32, block_size=(16, 16), grid_size=(16, 16), num_groups=2),
            ours_maxim.EncoderBlock(64, 32, (16, 16), (16, 16), settings, downsample=True),
            [(2, 32, 32, 64)],
            {},
            ("input_proj", "down"),  # the 1×1 convolution-in and the 4×4 stride-2 convolution
        ),
        (
            "cross-gating block 2",
            official.CrossGatingBlock(features=128, block_size=(8, 8), grid_size=(8, 8), upsample_y=True),
            ours_maxim.CrossGatingBlock(384, 128, 128, (8, 8), (8, 8), True),
            [(2, 16, 16, 384), (2, 8, 8, 128)],
            {},
            ("x_proj", "y_proj"),
        ),
    ]
    if "blocks" not in variants:
        cases = []
    jax.config.update("jax_enable_x64", DTYPE[0] == torch.float64)  # off again after a float64 rerun
    real = np.float64 if DTYPE[0] == torch.float64 else np.float32
    for variant in (v for v in variants if v != "blocks"):
        args, size = maxim_whole_model(variant)
        model = ours_maxim.MAXIM((3, *size), (3, *size), **args)
        if variant in OFFICIAL_MAXIM_VARIANTS:
            flax_model = official.Model(variant=variant)
        else:  # the official MAXIM class with the same settings (its Model() names only S-* and M-*)
            flax_model = official.MAXIM(**{"features" if k == "embed_dim" else k: v for k, v in args.items()})
        cases.append((variant, flax_model, model, [(2, *size, 3)], {}, None))
    rows = []
    for name, flax_module, module, shapes, kwargs, convs in cases:
        if convs is None:  # a whole model: its unclamped outputs of every stage
            rename = maxim_model_key
            # a stage's official outputs run from the coarsest scale to the finest, mlplab's the other way
            call = lambda *xs, module=module: tuple(  # noqa: E731
                o for stage in module.forward_all(*xs) for o in reversed(stage)
            )
        else:
            rename, call = functools.partial(maxim_key, convs=convs), module
        generator = np.random.default_rng(0)
        inputs = [generator.standard_normal(shape).astype(real) for shape in shapes]
        params = flax_module.init(jax.random.PRNGKey(0), *inputs, **kwargs)["params"]
        flat = {k: np.asarray(v, dtype=real) for k, v in traverse_util.flatten_dict(params).items()}
        if convs is None:  # a whole model: noise of 5% of each tensor's spread (0.05 where constant),
            # since noise of 0.05 everywhere grows S-2's outputs to ~6e6, past what float32 compares
            spread = {k: float(np.std(v)) or 1.0 for k, v in flat.items()}
        else:
            spread = dict.fromkeys(flat, 1.0)
        flat = {
            k: v + (0.05 * spread[k] * generator.standard_normal(v.shape)).astype(real)
            for k, v in flat.items()
        }
        params = traverse_util.unflatten_dict(flat)

        def loss(p, *xs, flax_module=flax_module, kwargs=kwargs):
            out = flax_module.apply({"params": p}, *xs, **kwargs)
            outs = tuple(o for stage in out for o in stage) if isinstance(out, list) else out
            outs = outs if isinstance(outs, tuple) else (outs,)
            return sum(jnp.mean(o**2) for o in outs), outs

        (_, outs_official), grads = jax.value_and_grad(loss, has_aux=True)(params, *inputs)
        own = module.state_dict()
        state = {rename(k): flax_to_torch(k, v, own[rename(k)]) for k, v in flat.items()}
        module.to(DTYPE[0]).load_state_dict(state, strict=True)
        module.eval()
        outs = call(*(torch.from_numpy(x) for x in inputs))
        outs = outs if isinstance(outs, tuple) else (outs,)
        sum(o.square().mean() for o in outs).backward()
        theirs = [torch.from_numpy(np.array(o)) for o in outs_official]
        scale = max(float(t.abs().max()) for t in theirs)
        if len(outs) != len(theirs) or any(o.shape != t.shape for o, t in zip(outs, theirs)):
            raise SystemExit(f"error: MAXIM {name}: the outputs' shapes differ from the official ones")
        gaps = [float((o - t).detach().abs().max()) for o, t in zip(outs, theirs)]
        output_gap = max(gaps)
        named, gradient_gap = dict(module.named_parameters()), 0.0
        for key, grad in traverse_util.flatten_dict(grads).items():
            g = flax_to_torch(key, grad, own[rename(key)])
            mine = named[rename(key)].grad
            gradient_gap = max(gradient_gap, float((mine - g).abs().max() / g.abs().max().clamp_min(1e-12)))
        rows.append({
            "family": "MAXIM", "variant": name if convs is None else f"S-1 {name}",
            "params_ours": count_parameters(module)[0], "params_official": sum(v.size for v in flat.values()),
            "max_output_difference": output_gap, "max_relative_output_difference": output_gap / scale,
            "max_relative_gradient_difference": gradient_gap,
            **verdict(output_gap / scale, gradient_gap),
        })  # fmt: skip
        if convs is None:  # every stage's outputs, each relative to its own largest official value
            relative = [gap / float(t.abs().max()) for gap, t in zip(gaps, theirs)]
            n = module.num_supervision_scales  # per stage, coarsest scale first as the official list
            rows[-1]["relative_output_difference_by_stage"] = [
                relative[k : k + n] for k in range(0, len(relative), n)
            ]
    return rows


#: What each option's check reads in its checkout: (repository, files).
CHECKOUTS = {
    "efficientmod": ("github.com/ma-xu/EfficientMod", ("models/EfficientMod.py",)),
    "spartan": ("github.com/henry-pay/SpaRTAN", ("src/model/spartan.py",)),
    "activator": (
        "github.com/Abdullah-88/Activator",
        ("activator.py", "train.py", "activator_only_GEGLU.py", "train_only_GEGLU.py"),
    ),
    "ninformer": ("github.com/Abdullah-88/NiNformer", ("ninformer.py", "train.py")),
    "strip_mlp": ("github.com/Med-Process/Strip_MLP", ("models/strip_mlp.py",)),
    "ms_mlp": ("github.com/JegZheng/MS-MLP", ("models/ms_mlp.py",)),
    "raft_mlp": ("github.com/okojoalg/raft-mlp", ("libs/models.py",)),
    "hourglass": ("github.com/mtkresearch/Hourglass_LM", ("hourglass_mlp/utils/model.py",)),
    "scaling_mlps": ("github.com/gregorbachmann/scaling_mlps", ("models/networks.py",)),
    "maxim": ("github.com/google-research/maxim", ("maxim/models/maxim.py",)),
}


def maxim_variants(asked: list[str], failed: list[dict] | None) -> tuple[str, ...]:
    """The MAXIM variants to run: those asked, or for a rerun those of the rows in ``failed``."""
    if failed is None:
        return tuple(asked)
    return tuple(dict.fromkeys("blocks" if "block" in row["variant"] else row["variant"] for row in failed))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    official_code.add_checkout_options(parser, CHECKOUTS, {"maxim": "needs jax, flax, einops"})
    parser.add_argument(
        "--maxim-variants",
        nargs="+",
        default=["blocks", "S-1"],
        help="what of MAXIM to compare: blocks (three S-1 block stacks), whole registry variants at 64² "
        "(S-1 S-2 S-3 M-1 2S 3S) and the smallest multi-scale ones at 32×16 (small-2S small-3S)",
    )
    parser.add_argument(
        "--deps",
        type=Path,
        help="a folder of packages the official code imports (einops; jax, flax for MAXIM), put on sys.path",
    )
    parser.add_argument(
        "--image-size", type=int, default=64, help="side of the random test images (ImageNet models)"
    )
    parser.add_argument(
        "--float64", action="store_true", help="compare in float64 (rounding then drops to ~1e-13)"
    )
    options = parser.parse_args()
    if options.float64:
        DTYPE[0] = torch.float64
    # check(path, failed): ``failed`` the rows of a float32 run that missed the bound, for a float64 rerun
    checks = {
        "efficientmod": lambda path, failed: check_efficientmod(path, options.image_size),
        "spartan": lambda path, failed: check_spartan(path, options.image_size),
        "activator": lambda path, failed: check_activator(path),
        "ninformer": lambda path, failed: check_ninformer(path),
        "strip_mlp": lambda path, failed: check_strip_mlp(path, options.image_size),
        "ms_mlp": lambda path, failed: check_ms_mlp(path, options.image_size),
        "raft_mlp": lambda path, failed: check_raft_mlp(path, options.image_size),
        "hourglass": lambda path, failed: check_hourglass(path),
        "scaling_mlps": lambda path, failed: check_scaling_mlp(path),
        "maxim": lambda path, failed: check_maxim(path, maxim_variants(options.maxim_variants, failed)),
    }
    if all(getattr(options, name) is None for name in checks):
        parser.error(
            "give at least one official checkout: "
            + ", ".join(f"--{name.replace('_', '-')}" for name in checks)
        )
    official_code.require_checkouts(options, CHECKOUTS)
    if options.deps is not None:
        sys.path.append(str(options.deps))  # after the environment's own packages (numpy, torch)
    torch.set_grad_enabled(True)
    verdicts = []
    for name, check in checks.items():
        if getattr(options, name) is None:
            continue
        rows = check(getattr(options, name), None)
        for row in rows:
            print(json.dumps(row), flush=True)
        failed = [row for row in rows if not row["agree"]]
        if failed and DTYPE[0] == torch.float32:  # rounding, or a real difference? float64 tells
            DTYPE[0] = torch.float64
            try:
                again = check(getattr(options, name), failed)
            finally:
                DTYPE[0] = torch.float32
            for row in again:
                print(json.dumps(row), flush=True)
            decided = {(row["family"], row["variant"]) for row in again}
            rows = [row for row in rows if (row["family"], row["variant"]) not in decided] + again
        verdicts += rows
    official_code.exit_status(verdicts, "agree")


if __name__ == "__main__":
    main()
