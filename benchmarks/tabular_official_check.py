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

Run from the repository root, e.g.::

    python benchmarks/tabular_official_check.py --tabm ~/src/tabm

Prints one JSON line per model: parameters (ours, official, published), the largest output
difference, the largest relative gradient difference, and whether they agree to 1e-5.
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

import torch
from torch import Tensor, nn

from mlplab.models import count_parameters, registry
from mlplab.models.tabular.mlp import TabularMLP
from mlplab.models.tabular.tabm import TabM


def load_module(path: Path, name: str) -> types.ModuleType:
    """Import a single official source file by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rename_with(rules: list[tuple[str, str]]) -> Callable[[str], str]:
    """A function mapping an official weight's name to mlplab's by regular-expression rules."""

    def rename(key: str) -> str:
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        return key

    return rename


def compare(
    official: nn.Module,
    ours: nn.Module,
    rename: Callable[[str], str],
    run_official: Callable[[nn.Module], Tensor],
    run_ours: Callable[[nn.Module], Tensor],
    skip_ours: tuple[str, ...] = (),
) -> dict:
    """Copy the official weights into ours; compare outputs (eval) and gradients (eval, one loss).

    Every entry of our state dict must receive an official tensor of as many elements, except the
    buffers named in ``skip_ours`` (set by mlplab itself, e.g. from the same training data).
    """
    own = ours.state_dict()
    state = {key: own[key] for key in skip_ours}
    for key, value in official.state_dict().items():
        target = rename(key)
        if target not in own:
            raise KeyError(f"official {key} -> {target} is not one of mlplab's weights")
        state[target] = value.reshape(own[target].shape)
    ours.load_state_dict(state, strict=True)
    official.eval(), ours.eval()
    out_official, out_ours = run_official(official), run_ours(ours)
    out_ours = out_ours.reshape(out_official.shape)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tabm", type=Path, help="a checkout of github.com/yandex-research/tabm")
    options = parser.parse_args()
    if options.tabm is None:
        parser.error("give --tabm")
    torch.set_grad_enabled(True)
    rows = []
    if options.tabm is not None:
        rows += check_tabm(options.tabm)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
