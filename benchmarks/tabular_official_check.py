"""The tabular families and KAN against their official code, weight for weight.

Builds each official model from a local checkout of its repository (not part of mlplab), copies its
weights into mlplab's family of the same configuration (renaming the keys), and compares the outputs
in evaluation mode and the gradients of every weight under one loss (the mean square of the outputs),
on random inputs, on the CPU in float32. Parameter counts are compared too.

* ``--tabm``: a checkout of github.com/yandex-research/tabm. TabM (every ``arch_type``, with and
  without piecewise-linear embeddings) and the plain MLP at the paper's tuned California-housing
  configurations, against the paper's own model (``paper/bin/model.py``'s ``Model`` on
  ``paper/lib/deep.py``; ``rtdl_num_embeddings`` must be installed, ``rtdl_revisiting_models`` is
  not needed), and TabM again against the ``tabm`` package (``tabm.py`` of the checkout) on a
  table with categorical columns.
* ``--finalmlp``: a checkout of github.com/reczoo/FuxiCTR. FinalMLP (``model_zoo/FinalMLP``) at its
  ``FinalMLP_default`` configuration (mlplab's ``default`` variant) and a small one with batch norm,
  dropout and four fusion heads, on UCI Adult's columns (6 numeric, 8 categorical fields), as a
  regression (FuxiCTR's output before its sigmoid). FuxiCTR's data-loading imports (polars, h5py,
  keras_preprocessing) are stubbed when missing.
* ``--kan``: a checkout of github.com/KindXiaoming/pykan. KAN's named variants (and one with spline
  order 2 on [-2, 2]) against pykan's ``MultKAN`` at its defaults, on inputs inside the grid and up to
  10 % of its range outside; the B-spline bases are compared on their own too. The ``mnist`` variant
  takes minutes (pykan builds a symbolic function per edge).

Run from the repository root, e.g.::

    python benchmarks/tabular_official_check.py --tabm ~/src/tabm --finalmlp ~/src/FuxiCTR --kan ~/src/pykan

Prints one JSON line per model: parameters (ours, official, published), the largest output
difference, the largest relative gradient difference, and whether they agree to 1e-5 (both: outputs
absolute, gradients relative to each weight's largest official gradient; every model here agrees to
rounding or exactly, see docs/results.md). Exits with status 1 when a comparison misses the bound.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import official_code
import torch
from official_code import load_module
from torch import Tensor, nn

from mlplab.models import count_parameters, registry
from mlplab.models.tabular.mlp import TabularMLP
from mlplab.models.tabular.tabm import TabM


def rename_with(rules: list[tuple[str, str]]) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """A conversion of official tensors to mlplab's that renames them by regular-expression rules."""

    def convert(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        renamed = {}
        for key, value in tensors.items():
            for pattern, replacement in rules:
                key = re.sub(pattern, replacement, key)
            renamed[key] = value
        return renamed

    return convert


def compare(
    official: nn.Module,
    ours: nn.Module,
    convert: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    run_official: Callable[[nn.Module], Tensor],
    run_ours: Callable[[nn.Module], Tensor],
    skip_ours: tuple[str, ...] = (),
) -> dict:
    """Copy the official weights into ours; compare outputs (eval) and gradients (eval, one loss).

    ``convert`` maps the official state dict (names and layouts) to ours; it must give every entry of
    our state dict except the buffers named in ``skip_ours`` (set by mlplab itself, e.g. from the same
    training data). The official gradients go through the same conversion before the comparison.
    """
    own = ours.state_dict()
    state = {key: own[key] for key in skip_ours}
    for key, value in convert(official.state_dict()).items():
        if key not in own:
            raise KeyError(f"{key} (from the official weights) is not one of mlplab's")
        state[key] = value.reshape(own[key].shape)
    ours.load_state_dict(state, strict=True)
    official.eval(), ours.eval()
    out_official, out_ours = run_official(official), run_ours(ours)
    out_ours = out_ours.reshape(out_official.shape)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    official_gradients = convert({key: p.grad for key, p in official.named_parameters()})
    gradient_gap = 0.0
    for key, parameter in ours.named_parameters():
        theirs = official_gradients[key]
        scale = theirs.abs().max().clamp_min(1e-12)
        gradient_gap = max(
            gradient_gap, float((parameter.grad.reshape(theirs.shape) - theirs).abs().max() / scale)
        )
    output_gap = float((out_ours - out_official).detach().abs().max())
    return {
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap,
        "max_relative_gradient_difference": gradient_gap,
        "agree_1e-5": output_gap < 1e-5 and gradient_gap < 1e-5,
    }


# ------------------------------------------------------------------------------------------------
# TabM and the plain MLP (yandex-research/tabm)
# ------------------------------------------------------------------------------------------------

#: The official names (the paper's Model and the package's TabM) -> mlplab's.
TABM_RULES = [
    (r"^num_module\.linear0\.", "features.embeddings.linear."),
    (r"^num_module\.linear\.weight$", "features.embeddings.weight"),
    (r"^num_module\.impl\.weight$", "features.embeddings.encoding_weight"),
    (r"^num_module\.impl\.bias$", "features.embeddings.encoding_bias"),
    (r"^backbone\.blocks\.(\d+)\.0\.", r"blocks.\1.linear."),
    (r"^minimal_ensemble_adapter\.weight$", "adapter"),  # the paper's Model
    (r"^backbone\.affine\.weight$", "adapter"),  # the package
    (r"^output\.", "head."),
]
MLP_RULES = [*TABM_RULES[:4], (r"^backbone\.blocks\.(\d+)\.0\.", r"blocks.\1.0."), (r"^output\.", "head.")]


def paper_model_class(checkout: Path) -> type[nn.Module]:
    """The paper's ``Model`` (MLP and TabM), cut out of ``paper/bin/model.py`` with its helpers.

    The rest of that file is the training script (delu, loguru, tensorboard), which the model does not
    use; ``paper/lib/deep.py`` is imported as it is.
    """
    if "rtdl_revisiting_models" not in sys.modules:  # deep.py uses it only inside an optimiser helper
        try:
            import rtdl_revisiting_models  # noqa: F401
        except ImportError:
            sys.modules["rtdl_revisiting_models"] = types.ModuleType("rtdl_revisiting_models")
    deep = load_module(checkout / "paper" / "lib" / "deep.py", "official_tabm_paper_deep")
    source = (checkout / "paper" / "bin" / "model.py").read_text()
    start, end = source.index("def _get_first_ensemble_layer"), source.index("class Config(")
    namespace = {"torch": torch, "nn": nn, "Tensor": Tensor, "Literal": Literal,
                 "lib": types.SimpleNamespace(deep=deep)}  # fmt: skip
    exec(compile(source[start:end], str(checkout / "paper" / "bin" / "model.py"), "exec"), namespace)
    return namespace["Model"]


def paper_config(checkout: Path, experiment: str) -> dict:
    """The model section of the paper's tuned California-housing configuration (evaluation seed 0)."""
    path = checkout / "paper" / "exp" / experiment / "california" / "0-evaluation" / "0" / "report.json"
    report = json.loads(path.read_text())
    return {"model": report["config"]["model"], "bins": report["config"].get("bins"),
            "n_parameters": report["n_parameters"]}  # fmt: skip


def check_tabm(checkout: Path) -> list[dict]:
    import rtdl_num_embeddings

    Model = paper_model_class(checkout)
    generator = torch.Generator().manual_seed(0)
    x_train = torch.randn(2000, 8, generator=generator)  # California housing: 8 numeric columns
    x_num, x_cat = torch.randn(16, 8, generator=generator), torch.zeros(16, 0, dtype=torch.long)
    rows = []
    for family, variant, experiment in [
        (TabM, "california", "tabm"),
        (TabM, "california-ple", "tabm-piecewiselinear"),
        (TabM, "mini-california", "tabm-mini"),
        (TabM, "packed-california", "tabm-packed"),
        (TabularMLP, "california", "mlp"),
        (TabularMLP, "california-ple", "mlp-piecewiselinear"),
    ]:
        config = paper_config(checkout, experiment)
        model = dict(config["model"])
        bins = None
        if "num_embeddings" in model:
            embeddings = model["num_embeddings"]
            bins = rtdl_num_embeddings.compute_bins(x_train, **config["bins"])
            args = dict(registry.get(family.__name__).variants[variant].args)
            assert args["num_bins"] == config["bins"]["n_bins"], (variant, config["bins"])
            assert embeddings["d_embedding"] == args["numeric_embed_dim"]
        model.pop("share_training_batches", None)  # a training option; evaluation sees every member alike
        torch.manual_seed(0)
        official = Model(n_num_features=8, cat_cardinalities=[], n_classes=None, bins=bins, **model)
        ours = family(8, (), 1, **registry.get(family.__name__).variants[variant].args)
        ours.fit_to_data(x_train, torch.zeros(len(x_train), 0, dtype=torch.long), torch.zeros(len(x_train)))
        rules = TABM_RULES if family is TabM else MLP_RULES
        row = compare(official, ours, rename_with(rules), lambda m: m(x_num), lambda m: m(x_num, x_cat),
                      skip_ours=("features.embeddings.single_bin",) if bins is not None else ())  # fmt: skip
        official_name = f"paper/bin/model.py {experiment}"
        rows.append({"family": family.__name__, "variant": variant, "official": official_name, **row,
                     "params_published": config["n_parameters"]})  # fmt: skip

    package = load_module(checkout / "tabm.py", "official_tabm_package")
    cardinalities = (4, 3)
    x_cat = torch.stack([torch.randint(0, c, (16,), generator=generator) for c in cardinalities], 1)
    x_num = x_num[:, :3]
    for arch_type in ("tabm", "tabm-mini", "tabm-packed"):
        for num_bins in (None, 12):
            embeddings = None
            if num_bins is not None:
                edges = rtdl_num_embeddings.compute_bins(x_train[:, :3], n_bins=num_bins)
                embeddings = rtdl_num_embeddings.PiecewiseLinearEmbeddings(
                    edges, 6, activation=False, version="B"
                )
            torch.manual_seed(0)
            official = package.TabM.make(n_num_features=3, cat_cardinalities=list(cardinalities), d_out=2,
                                         num_embeddings=embeddings, arch_type=arch_type, k=5, n_blocks=3,
                                         d_block=24, dropout=0.1)  # fmt: skip
            ours = TabM(3, cardinalities, 2, arch_type=arch_type, ensemble_size=5, depth=3, embed_dim=24,
                        dropout=0.1, num_bins=num_bins, numeric_embed_dim=6)  # fmt: skip
            if num_bins is not None:
                ours.fit_to_data(x_train[:, :3], None, None)
            skip = ("features.embeddings.single_bin",) if num_bins is not None else ()
            run = lambda m: m(x_num, x_cat)  # noqa: E731
            row = compare(official, ours, rename_with(TABM_RULES), run, run, skip_ours=skip)
            variant = f"{arch_type}{'' if num_bins is None else '-ple'}, k=5, 3x24, 3 numeric + 2 categorical"
            rows.append({"family": "TabM", "variant": variant, "official": "tabm.py (the package)", **row})
    return rows


# ------------------------------------------------------------------------------------------------
# FinalMLP (reczoo/FuxiCTR, model_zoo/FinalMLP)
# ------------------------------------------------------------------------------------------------


def fuxictr_finalmlp_class(checkout: Path) -> type[nn.Module]:
    """FuxiCTR's ``FinalMLP`` (``model_zoo/FinalMLP/src/FinalMLP.py``) on the checkout's ``fuxictr``.

    The data-loading modules that ``fuxictr`` imports at start-up (polars, h5py, keras_preprocessing)
    are stubbed when they are not installed: the model does not use them.
    """
    for name in ("polars", "h5py", "keras_preprocessing.sequence"):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name.split(".")[0]] = types.ModuleType(name.split(".")[0])
            sys.modules[name] = types.ModuleType(name)
    if not hasattr(sys.modules["keras_preprocessing.sequence"], "pad_sequences"):
        sys.modules["keras_preprocessing.sequence"].pad_sequences = None
    sys.path.insert(0, str(checkout))
    return load_module(
        checkout / "model_zoo" / "FinalMLP" / "src" / "FinalMLP.py", "official_finalmlp"
    ).FinalMLP


def finalmlp_converter(
    numeric: list[str], categorical: list[str], gate_depth: int
) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """FuxiCTR's FinalMLP tensors -> mlplab's: per-field tables stacked, the gates' output layers apart."""
    rules = [
        (r"^fs_module\.fs(\d)_ctx_bias$", lambda m: f"gates.{int(m.group(1)) - 1}.context"),
        (r"^fs_module\.fs(\d)_gate\.mlp\.(\d+)\.",
         lambda m: f"gates.{int(m.group(1)) - 1}." + ("out." if int(m.group(2)) == 2 * gate_depth
                                                      else f"mlp.{m.group(2)}.")),
        (r"^mlp(\d)\.mlp\.", r"mlp\1."),
        (r"^fusion_module\.w_xy$", "fusion.weight"),
        (r"^fusion_module\.", "fusion."),
    ]  # fmt: skip
    prefix = "embedding_layer.embedding_layer.embedding_layers."

    def convert(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        converted = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                continue
            for pattern, replacement in rules:
                key = re.sub(pattern, replacement, key)
            converted[key] = value
        if numeric:  # nn.Linear(1, d, bias=False) per field: (d, 1) -> one row of (N, d)
            converted["embeddings.numeric"] = torch.stack(
                [tensors[f"{prefix}{f}.weight"][:, 0] for f in numeric]
            )
        if categorical:  # nn.Embedding per field -> one table, the fields one after another
            converted["embeddings.categorical.weight"] = torch.cat(
                [tensors[f"{prefix}{f}.weight"] for f in categorical]
            )
        return converted

    return convert


def check_finalmlp(checkout: Path) -> list[dict]:
    from mlplab.models.tabular.finalmlp import FinalMLP

    official_class = fuxictr_finalmlp_class(checkout)
    numeric, cardinalities = (
        6,
        (9, 16, 7, 15, 6, 5, 2, 42),
    )  # UCI Adult's columns (codes with the unknown one)
    names = [f"num{i}" for i in range(numeric)], [f"cat{i}" for i in range(len(cardinalities))]
    features = {name: {"type": "numeric", "source": ""} for name in names[0]}
    features |= {name: {"type": "categorical", "source": "", "vocab_size": c}
                 for name, c in zip(names[1], cardinalities)}  # fmt: skip
    feature_map = types.SimpleNamespace(features=features, num_fields=len(features), labels=["label"],
                                        dataset_id="check")  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    x_num = torch.randn(16, numeric, generator=generator)
    x_cat = torch.stack([torch.randint(0, c, (16,), generator=generator) for c in cardinalities], 1)
    inputs = {name: x_num[:, i] for i, name in enumerate(names[0])}
    inputs |= {name: x_cat[:, i] for i, name in enumerate(names[1])}
    default = dict(registry.get("FinalMLP").variants["default"].args)
    small = {"embed_dim": 8, "mlp1_dims": (32, 16), "mlp2_dims": (24, 24, 16), "gate_dims": (12, 10),
             "num_heads": 4, "mlp1_dropout": 0.1, "mlp2_dropout": 0.2, "mlp1_batch_norm": True,
             "mlp2_batch_norm": True}  # fmt: skip
    rows = []
    for variant, args, random_context in [
        ("default (FuxiCTR's FinalMLP_default), FuxiCTR's init", default, False),
        ("default, gate contexts N(0, 1) as mlplab's init", default, True),
        ("batch norm, dropout, 4 heads, contexts N(0, 1), BN statistics random", small, True),
    ]:
        torch.manual_seed(0)
        official = official_class(
            feature_map, task="regression", verbose=0, model_root="/nonexistent", optimizer="adam",
            loss="mse_loss", metrics=["logloss"], embedding_dim=args["embed_dim"],
            mlp1_hidden_units=list(args["mlp1_dims"]), mlp2_hidden_units=list(args["mlp2_dims"]),
            mlp1_dropout=args.get("mlp1_dropout", 0), mlp2_dropout=args.get("mlp2_dropout", 0),
            mlp1_batch_norm=args.get("mlp1_batch_norm", False),
            mlp2_batch_norm=args.get("mlp2_batch_norm", False), use_fs=True,
            fs_hidden_units=list(args["gate_dims"]), num_heads=args["num_heads"],
        )  # fmt: skip
        with torch.no_grad():
            if random_context:
                official.fs_module.fs1_ctx_bias.normal_(generator=generator)
                official.fs_module.fs2_ctx_bias.normal_(generator=generator)
            for module in official.modules():
                if isinstance(module, nn.BatchNorm1d):
                    module.running_mean.normal_(generator=generator)
                    module.running_var.uniform_(0.5, 2.0, generator=generator)
        ours = FinalMLP(numeric, cardinalities, 1, **args)
        convert = finalmlp_converter(names[0], names[1], len(args["gate_dims"]))
        row = compare(official, ours, convert, lambda m: m(inputs)["y_pred"], lambda m: m(x_num, x_cat))
        official_name = "model_zoo/FinalMLP/src/FinalMLP.py"
        rows.append({"family": "FinalMLP", "variant": variant, "official": official_name, **row})
    return rows


# ------------------------------------------------------------------------------------------------
# KAN (KindXiaoming/pykan)
# ------------------------------------------------------------------------------------------------


def kan_converter(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """pykan's MultKAN tensors -> mlplab's KAN: the layers' grid, coef, scale_base and scale_sp.

    Left out: the edge masks (all one), the node and subnode affine parameters (identity, not trainable
    at pykan's defaults) and the symbolic branch (masked to zero until a function is fixed).
    """
    converted = {}
    for key, value in tensors.items():
        if match := re.match(r"act_fun\.(\d+)\.(grid|coef|scale_base|scale_sp)$", key):
            converted[f"layers.{match.group(1)}.{match.group(2)}"] = value
    return converted


def check_kan(checkout: Path) -> list[dict]:
    from mlplab.models.kan.kan import KAN
    from mlplab.models.kan.layers import bspline_basis

    sys.path.insert(0, str(checkout))  # pykan's package ``kan``, from the checkout
    import kan as pykan

    if not str(Path(pykan.__file__).resolve()).startswith(str(checkout.resolve())):
        raise ImportError(f"imported kan from {pykan.__file__}, not from {checkout}")
    rows = []
    generator = torch.Generator().manual_seed(0)
    for variant, (d_in, d_out), width_args in [
        ("toy", (2, 1), None),
        ("tiny", (2, 1), None),
        ("mnist", (784, 10), None),
        ("3 -> 4 -> 2, grid 4, order 2, range [-2, 2]", (3, 2),
         {"embed_dim": 4, "depth": 2, "grid_size": 4, "spline_order": 2, "grid_range": (-2.0, 2.0)}),
    ]:  # fmt: skip
        args = dict(registry.get("KAN").variants[variant].args) if width_args is None else width_args
        width = [d_in] + [args["embed_dim"]] * (args["depth"] - 1) + [d_out]
        low, high = args.get("grid_range", (-1.0, 1.0))
        name = list(width)  # MultKAN rewrites its width argument
        torch.manual_seed(0)
        official = pykan.MultKAN(width=width, grid=args["grid_size"], k=args.get("spline_order", 3),
                                 grid_range=[low, high], auto_save=False, seed=0)  # fmt: skip
        ours = KAN((d_in,), (d_out,), **args)
        span = high - low  # inputs inside the grid and up to 10 % of its range outside
        x = low - 0.1 * span + 1.2 * span * torch.rand(32, d_in, generator=generator)
        row = compare(official, ours, kan_converter, lambda m, x=x: m(x), lambda m, x=x: m(x))
        layer = official.act_fun[0]
        basis = pykan.spline.B_batch(x, layer.grid, layer.k)
        basis_gap = float((bspline_basis(x, layer.grid, layer.k) - basis).abs().max())
        trainable = {key: p.numel() for key, p in official.named_parameters() if p.requires_grad}
        row["params_official"] = sum(trainable.values())  # pykan also holds its grids and masks as parameters
        row["params_official_without_symbolic"] = sum(
            n for key, n in trainable.items() if "symbolic" not in key
        )
        rows.append({"family": "KAN", "variant": variant, "official": f"kan.MultKAN(width={name})", **row,
                     "max_basis_difference": basis_gap})  # fmt: skip
    return rows


#: What each option's check reads in its checkout: (repository, files).
CHECKOUTS = {
    "tabm": ("github.com/yandex-research/tabm", ("paper/lib/deep.py", "paper/bin/model.py", "tabm.py")),
    "finalmlp": ("github.com/reczoo/FuxiCTR", ("model_zoo/FinalMLP/src/FinalMLP.py",)),
    "kan": ("github.com/KindXiaoming/pykan", ("kan/__init__.py", "kan/MultKAN.py")),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    official_code.add_checkout_options(parser, CHECKOUTS)
    options = parser.parse_args()
    if options.tabm is None and options.finalmlp is None and options.kan is None:
        parser.error("give at least one of --tabm, --finalmlp, --kan")
    official_code.require_checkouts(options, CHECKOUTS)
    torch.set_grad_enabled(True)
    rows = []
    if options.tabm is not None:
        rows += check_tabm(options.tabm)
    if options.finalmlp is not None:
        rows += check_finalmlp(options.finalmlp)
    if options.kan is not None:
        rows += check_kan(options.kan)
    official_code.report(rows, "agree_1e-5")


if __name__ == "__main__":
    main()
