"""Forecasting families against their official code, weight for weight (CPU, float32).

Builds each official model from a local checkout of its repository (not part of mlplab), copies its
weights into mlplab's family of the same configuration through an explicit conversion of the state
dict, and compares the forecasts in evaluation mode and every weight's gradient under one loss (mean
square of the forecast), on random histories. Before copying, the official BatchNorm statistics and
affine parameters (and RevIN's, where affine) are set to random values, so that evaluation mode
tests them rather than identities. Parameter counts are compared too.

* ``--patchtst``: a checkout of github.com/yuqinie98/PatchTST; ``PatchTST_supervised/models/PatchTST.py``
  with the ETTh1 script's settings (PatchTST/42: L 336, H 96, 7 series, 3 layers, d_model 16, 4 heads,
  d_ff 128, patch 16, stride 8, RevIN without affine), and once with ``affine=1``; also once in
  training mode with every dropout 0 (BatchNorm on batch statistics), in float64 (the statistics'
  mean subtraction amplifies float32 rounding in the gradients: 4.6e-5 measured on ``embedding.bias``).
* ``--dlinear``: a checkout of github.com/cure-lab/LTSF-Linear; ``models/DLinear.py`` (kernel 25,
  shared and ``individual``) at L 336, H 96, 7 series, and at the paper's efficiency setting L 96,
  H 720, 321 series.

* ``--tsmixer``: IBM's TSMixer against Hugging Face's ``PatchTSMixerForPrediction`` (the authors' code
  in ``transformers``; needs it importable, e.g. ``pip install --target DIR transformers`` and
  ``--python-path DIR``): ``ibm/patchtsmixer-etth1-pretrain``'s configuration (L 512, H 96, 7 series,
  patches 16 / 16, d_model 48, 2 layers, expansion 3, gated attention, layer norm, std scaling), then
  with ``mode="mix_channel"`` and with ``norm_mlp="BatchNorm"``. (The hybrid mode's reconciliation head
  has no official code.)

* ``--tsmixer-google``: a checkout of github.com/google-research/google-research (its
  ``tsmixer/tsmixer_basic``); the official Keras ``tsmixer_rev_in.build_model`` at the ETTh1 setting
  (L 512, H 96, 7 series, 2 blocks, ff 64, relu, ``target_slice=slice(0, None)`` as ``run.py``'s
  multivariate data loader), batch and layer norm. Needs TensorFlow and tf-keras (the code is Keras 2:
  the check sets ``TF_USE_LEGACY_KERAS=1``), e.g. ``pip install --target DIR tensorflow-cpu`` and
  ``pip install --no-deps --target DIR2 tf-keras`` with ``--python-path DIR --python-path DIR2``. Its
  forecasts reach about 1e2 after RevIN, so their difference is judged relative to the largest.

    git clone https://github.com/yuqinie98/PatchTST /tmp/PatchTST
    git clone https://github.com/cure-lab/LTSF-Linear /tmp/LTSF-Linear
    python benchmarks/timeseries_official_check.py --patchtst /tmp/PatchTST --dlinear /tmp/LTSF-Linear \
        --tsmixer

Prints one JSON line per comparison: parameters (ours, official), the largest output difference, the
largest relative gradient difference (per weight: max |ours - official| / max |official|), and whether
both are below 1e-5; weights whose gradient is zero up to rounding (below 1e-9 of the largest: in
training mode, a bias right before a BatchNorm) are listed instead. ``--float64`` runs everything in
float64 (tolerance 1e-10), to tell float32 rounding from a real difference. Exits with status 1 when
a comparison disagrees.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path

import official_code
import torch
from official_code import load_module
from torch import nn

from mlplab.models import DLinear, PatchTST, TSMixer, TSMixerGoogle, count_parameters

#: Largest output and relative gradient difference counted as agreement (``--float64``: 1e-10).
TOLERANCE = 1e-5
#: A weight whose official gradient is below this fraction of the largest one has a gradient of zero
#: up to rounding (in training mode, the bias of a layer right before a BatchNorm on batch statistics):
#: it is listed, not compared, as its relative difference is rounding over rounding.
ZERO_GRADIENT = 1e-9


def forget_packages(*names: str) -> None:
    """Drop already imported top-level packages (two official repositories both have ``models``)."""
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]


def randomise_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Random BatchNorm running statistics and affine parameters, random RevIN affine parameters."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            for name in ("weight", "bias", "affine_weight", "affine_bias"):
                parameter = getattr(module, name, None)
                is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm) or name.startswith("affine")
                if is_norm and isinstance(parameter, nn.Parameter):
                    parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))


def compare(
    official: nn.Module,
    ours: nn.Module,
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    x: torch.Tensor,
    train: bool = False,
    tolerance: float | None = None,
) -> dict:
    """Copy the official weights into ours (``convert`` maps an official state or gradient dict to ours);
    compare forecasts and gradients (eval mode unless ``train``)."""
    tolerance = TOLERANCE if tolerance is None else tolerance
    randomise_norms(official, torch.Generator().manual_seed(2))
    ours.load_state_dict(convert(official.state_dict()), strict=True)
    official.train(train), ours.train(train)
    out_official, out_ours = official(x), ours(x)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    theirs = convert({k: p.grad for k, p in official.named_parameters() if p.requires_grad})
    # zero up to rounding below ZERO_GRADIENT of the largest: a bias just before a BatchNorm in training
    gradient_gap, zero = official_code.gradient_gap(ours, theirs, zero_below=ZERO_GRADIENT)
    output_gap = float((out_ours - out_official).detach().abs().max())
    return {
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap,
        "max_relative_gradient_difference": gradient_gap,
        "zero_gradient_weights": zero,
        "dtype": str(x.dtype).removeprefix("torch."),
        "tolerance": tolerance,
        "agree": output_gap < tolerance and gradient_gap < tolerance,
    }


def random_history(lookback: int, series: int, batch: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, lookback, series, generator=generator) * 3 + torch.randn(
        1, 1, series, generator=generator
    )


# ------------------------------------------------------------------------------------ PatchTST


def patchtst_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mlplab's PatchTST state from the official one (W_Q, W_K, W_V fused into ``qkv``)."""
    out, fused = {}, {}
    for key, value in state.items():
        key = key.removeprefix("model.")
        if key.endswith("sdp_attn.scale"):  # a frozen constant head_dim ** -0.5, computed by mlplab
            continue
        if key.startswith("revin_layer."):
            out[key.replace("revin_layer.affine_", "revin.")] = value
            continue
        if key.startswith("head.linear."):
            out[key.replace("head.linear.", "head.")] = value
            continue
        key = key.replace("backbone.W_pos", "position").replace("backbone.W_P.", "embedding.")
        key = re.sub(r"^backbone\.encoder\.layers\.", "layers.", key)
        if match := re.match(r"(layers\.\d+)\.self_attn\.W_([QKV])\.(weight|bias)", key):
            fused.setdefault(f"{match.group(1)}.attention.qkv.{match.group(3)}", {})[match.group(2)] = value
            continue
        key = key.replace(".self_attn.to_out.", ".attention.out.")
        key = re.sub(r"\.norm_attn\.1\.", ".norm_attn.norm.", key)
        key = re.sub(r"\.norm_ffn\.1\.", ".norm_ff.norm.", key)
        out[key] = value
    for key, parts in fused.items():
        out[key] = torch.cat([parts["Q"], parts["K"], parts["V"]])
    return out


def check_patchtst(checkout: Path) -> list[dict]:
    root = checkout / "PatchTST_supervised"
    if not (root / "models" / "PatchTST.py").is_file():
        raise SystemExit(f"error: {checkout} has no PatchTST_supervised/models/PatchTST.py")
    sys.path.insert(0, str(root))
    forget_packages("models", "layers")
    from models.PatchTST import Model  # the official code, from the user's checkout

    sys.path.remove(str(root))
    rows = []
    lookback, horizon, series = 336, 96, 7
    settings = [("etth1-336", 0, 0.3, False), ("etth1-336, affine RevIN", 1, 0.3, False)]
    settings.append(("etth1-336, train mode, no dropout", 0, 0.0, True))
    for variant, affine, dropout, train in settings:
        configs = types.SimpleNamespace(
            enc_in=series, seq_len=lookback, pred_len=horizon, e_layers=3, n_heads=4, d_model=16, d_ff=128,
            dropout=dropout, fc_dropout=dropout, head_dropout=0.0, individual=0, patch_len=16, stride=8,
            padding_patch="end", revin=1, affine=affine, subtract_last=0, decomposition=0, kernel_size=25,
        )  # fmt: skip
        torch.manual_seed(0)
        official = Model(configs)
        ours = PatchTST((lookback, series), (horizon, series), dropout=dropout, fc_dropout=dropout,
                        revin_affine=bool(affine))  # fmt: skip
        x, tolerance = random_history(lookback, series), None
        if train:  # BatchNorm's batch statistics amplify float32 rounding in the gradients: float64
            official.double(), ours.double()
            x, tolerance = x.double(), 1e-10
        row = compare(official, ours, patchtst_state, x, train=train, tolerance=tolerance)
        rows.append({"family": "PatchTST", "variant": variant, **row})
    return rows


# ------------------------------------------------------------------------------------ DLinear


def dlinear_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mlplab's DLinear state from the official one."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"^Linear_Seasonal\.(weight|bias)$", r"seasonal.0.\1", key)
        key = re.sub(r"^Linear_Trend\.(weight|bias)$", r"trend.0.\1", key)
        key = key.replace("Linear_Seasonal.", "seasonal.").replace("Linear_Trend.", "trend.")
        out[key] = value
    return out


def check_dlinear(checkout: Path) -> list[dict]:
    module = load_module(checkout / "models" / "DLinear.py", "official_dlinear", register=False)
    rows = []
    for lookback, horizon, series, individual in [
        (336, 96, 7, False),
        (336, 96, 7, True),
        (96, 720, 321, False),
    ]:
        configs = types.SimpleNamespace(
            seq_len=lookback, pred_len=horizon, individual=individual, enc_in=series
        )
        torch.manual_seed(0)
        official = module.Model(configs)
        ours = DLinear((lookback, series), (horizon, series), moving_avg=25, individual=individual)
        row = compare(official, ours, dlinear_state, random_history(lookback, series))
        variant = f"L{lookback}-H{horizon}, {series} series" + (", individual" if individual else "")
        rows.append({"family": "DLinear", "variant": variant, **row})
    return rows


# ------------------------------------------------------------------------------------ TSMixer (IBM)


def tsmixer_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mlplab's TSMixer state from Hugging Face's ``PatchTSMixerForPrediction`` one."""
    out = {}
    blocks = {"channel_feature_mixer": None, "patch_mixer": None, "feature_mixer": None}
    mixing = any(".channel_feature_mixer." in key for key in state)
    order = list(blocks) if mixing else list(blocks)[1:]
    for key, value in state.items():
        key = key.replace("model.encoder.patcher.", "embedding.").replace(
            "head.base_forecast_block.", "head."
        )
        if match := re.match(r"model\.encoder\.mlp_mixer_encoder\.mixers\.(\d+)\.(\w+)\.(.*)", key):
            rest = match.group(3).replace("gating_block.attn_layer.", "gate.attention.")
            rest = rest.replace("norm.norm.batchnorm.", "norm.norm.")
            key = f"layers.{match.group(1)}.{order.index(match.group(2))}.{rest}"
        out[key] = value
    return out


def check_tsmixer() -> list[dict]:
    from transformers import PatchTSMixerConfig, PatchTSMixerForPrediction

    class Forecast(nn.Module):  # the forecast tensor of the official model's output
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(past_values=x).prediction_outputs

    rows = []
    lookback, horizon, series = 512, 96, 7
    # ibm/patchtsmixer-etth1-pretrain's configuration; then inter-channel mixing, then batch norm.
    settings = [("etth1", "common_channel", "LayerNorm"), ("etth1, mode mixing", "mix_channel", "LayerNorm")]
    settings.append(("etth1, batch norm", "common_channel", "BatchNorm"))
    for variant, mode, norm in settings:
        config = PatchTSMixerConfig(
            context_length=lookback, prediction_length=horizon, num_input_channels=series, patch_length=16,
            patch_stride=16, d_model=48, num_layers=2, expansion_factor=3, dropout=0.5, head_dropout=0.5,
            mode=mode, gated_attn=True, norm_mlp=norm, scaling="std", use_positional_encoding=False,
            self_attn=False,
        )  # fmt: skip
        torch.manual_seed(0)
        official = Forecast(PatchTSMixerForPrediction(config))
        ours = TSMixer((lookback, series), (horizon, series),
                       mode="mixing" if mode == "mix_channel" else "independent",
                       norm="batch" if norm == "BatchNorm" else "layer")  # fmt: skip

        def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return tsmixer_state({key.removeprefix("model."): value for key, value in state.items()})

        row = compare(official, ours, convert, random_history(lookback, series))
        rows.append({"family": "TSMixer", "variant": variant, **row})
    return rows


# ------------------------------------------------------------------------------------ TSMixerGoogle


def check_tsmixer_google(checkout: Path) -> list[dict]:
    """Google's TSMixer: the official Keras model (TensorFlow, tf-keras) against mlplab's."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # the official code is Keras 2 (tf.keras), not Keras 3
    root = checkout / "tsmixer" / "tsmixer_basic"
    if not (root / "models" / "tsmixer_rev_in.py").is_file():
        raise SystemExit(f"error: {checkout} has no tsmixer/tsmixer_basic/models/tsmixer_rev_in.py")
    sys.path.insert(0, str(root))
    forget_packages("models")
    import numpy as np
    import tensorflow as tf
    from models import tsmixer_rev_in  # the official code, from the user's checkout

    sys.path.remove(str(root))
    rows = []
    lookback, horizon, series, blocks, ff = 512, 96, 7, 2, 64
    for variant, norm in [("etth1", "B"), ("etth1, layer norm", "L")]:
        tf.keras.utils.set_random_seed(0)
        # run.py's multivariate setting passes target_slice=slice(0, None) (data_loader.py)
        official = tsmixer_rev_in.build_model(
            (lookback, series), horizon, norm, "relu", blocks, 0.9, ff, slice(0, None)
        )
        ours = TSMixerGoogle((lookback, series), (horizon, series), depth=blocks, mlp_dim=ff,
                             norm="batch" if norm == "B" else "layer")  # fmt: skip
        generator = np.random.default_rng(2)
        # (Keras variable, mlplab name, Keras value -> mlplab tensor); norms and RevIN made random
        pairs = []
        norms = [layer for layer in official.layers if "normalization" in type(layer).__name__.lower()]
        denses = [layer for layer in official.layers if isinstance(layer, tf.keras.layers.Dense)]
        revin = [layer for layer in official.layers if type(layer).__name__ == "RevNorm"][0]
        for variable, name in zip(revin.weights, ("revin.weight", "revin.bias"), strict=True):
            variable.assign(variable.numpy() + 0.3 * generator.standard_normal(variable.shape))
            pairs.append((variable, name, lambda a: torch.from_numpy(np.array(a))))
        for index in range(blocks):
            for norm_layer, part in zip(
                norms[2 * index : 2 * index + 2], ("time_norm", "feature_norm"), strict=True
            ):
                for variable in norm_layer.weights:
                    kind = variable.name.split("/")[-1].split(":")[0]
                    value = variable.numpy()
                    if kind in ("gamma", "beta", "moving_mean"):
                        value = value + 0.3 * generator.standard_normal(value.shape)
                    else:  # moving_variance
                        value = generator.uniform(0.5, 1.5, value.shape)
                    variable.assign(value.astype(np.float32))
                    mine = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                            "moving_variance": "running_var"}[kind]  # fmt: skip
                    if norm == "B":
                        convert = lambda a: torch.from_numpy(np.array(a)).reshape(-1)  # noqa: E731
                    else:
                        convert = lambda a: torch.from_numpy(np.array(a)).reshape(lookback, series)  # noqa: E731
                    pairs.append((variable, f"blocks.{index}.{part}.norm.{mine}", convert))
            names = ("time_linear", "feature_mlp.fc1", "feature_mlp.fc2")
            for dense, name in zip(denses[3 * index : 3 * index + 3], names, strict=True):
                pairs.append(
                    (dense.kernel, f"blocks.{index}.{name}.weight", lambda a: torch.from_numpy(np.array(a)).T)
                )
                pairs.append(
                    (dense.bias, f"blocks.{index}.{name}.bias", lambda a: torch.from_numpy(np.array(a)))
                )
        pairs.append((denses[-1].kernel, "head.weight", lambda a: torch.from_numpy(np.array(a)).T))
        pairs.append((denses[-1].bias, "head.bias", lambda a: torch.from_numpy(np.array(a))))
        state = {name: convert(variable.numpy()) for variable, name, convert in pairs}
        own = ours.state_dict()
        missing = sorted(key for key in own if key not in state and not key.endswith("num_batches_tracked"))
        if missing:
            raise SystemExit(f"error: no official weight for {missing}")
        ours.load_state_dict(state, strict=False)
        ours.eval()
        x = random_history(lookback, series)
        with tf.GradientTape() as tape:
            out_official = official(x.numpy(), training=False)
            loss = tf.reduce_mean(tf.square(out_official))
        trainable = [(variable, name, convert) for variable, name, convert in pairs if variable.trainable]
        gradients = tape.gradient(loss, [variable for variable, _, _ in trainable])
        out_ours = ours(x)
        out_ours.square().mean().backward()
        named = dict(ours.named_parameters())
        gradient_gap = 0.0
        for (_, name, convert), gradient in zip(trainable, gradients, strict=True):
            theirs = convert(gradient.numpy())
            scale = float(theirs.abs().max())
            gradient_gap = max(gradient_gap, float((named[name].grad - theirs).abs().max()) / scale)
        output_gap = float((out_ours.detach() - torch.from_numpy(out_official.numpy())).abs().max())
        output_scale = float(out_ours.detach().abs().max())
        rows.append({
            "family": "TSMixerGoogle", "variant": variant, "params_ours": count_parameters(ours)[0],
            "params_official": int(sum(np.prod(v.shape) for v in official.trainable_weights)),
            "max_output_difference": output_gap, "max_relative_gradient_difference": gradient_gap,
            "max_abs_output": output_scale, "dtype": "float32", "tolerance": TOLERANCE,
            # RevIN's denormalisation scales the forecasts up to about 1e2: relative to the largest
            "agree": output_gap < TOLERANCE * max(1.0, output_scale) and gradient_gap < TOLERANCE,
        })  # fmt: skip
    return rows


#: What each option's check reads in its checkout: (repository, files).
CHECKOUTS = {
    "patchtst": ("github.com/yuqinie98/PatchTST", ("PatchTST_supervised/models/PatchTST.py",)),
    "dlinear": ("github.com/cure-lab/LTSF-Linear", ("models/DLinear.py",)),
    "tsmixer_google": (
        "github.com/google-research/google-research",
        ("tsmixer/tsmixer_basic/models/tsmixer_rev_in.py",),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    notes = {"tsmixer_google": "or of its tsmixer/ folder's parent; needs tensorflow and tf-keras importable"}
    official_code.add_checkout_options(parser, CHECKOUTS, notes)
    parser.add_argument(
        "--tsmixer",
        action="store_true",
        help="IBM's TSMixer against Hugging Face's PatchTSMixer (needs transformers importable)",
    )
    parser.add_argument(
        "--python-path",
        type=Path,
        action="append",
        default=[],
        help="a folder appended to sys.path (a pip --target folder holding transformers or tensorflow)",
    )
    parser.add_argument(
        "--float64", action="store_true", help="compare in float64 (to tell rounding from a real difference)"
    )
    options = parser.parse_args()
    if (
        options.patchtst is None
        and options.dlinear is None
        and not options.tsmixer
        and not options.tsmixer_google
    ):
        parser.error("give at least one of --patchtst, --dlinear, --tsmixer, --tsmixer-google")
    official_code.require_checkouts(options, CHECKOUTS)
    sys.path += [str(path) for path in options.python_path]
    if options.tsmixer_google is not None:  # before anything imports TensorFlow (transformers may)
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    torch.set_grad_enabled(True)
    if options.float64:
        global TOLERANCE
        TOLERANCE = 1e-10
        torch.set_default_dtype(torch.float64)
    rows = []
    if options.patchtst is not None:
        rows += check_patchtst(options.patchtst)
    if options.dlinear is not None:
        rows += check_dlinear(options.dlinear)
    if options.tsmixer:
        rows += check_tsmixer()
    if options.tsmixer_google is not None:
        rows += check_tsmixer_google(options.tsmixer_google)
    official_code.report(rows, "agree")


if __name__ == "__main__":
    main()
