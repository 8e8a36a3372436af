"""Weight-for-weight check of mlplab's TimeMixer against the official ``models/TimeMixer.py``.

Builds the official model (kwuking/TimeMixer, from a local checkout you point to) with the ETTh1 recipe's
settings, copies its weights into ``mlplab.models.TimeMixer`` by name, and compares forecasts (eval
mode) and gradients of an MSE loss on random inputs with random calendar features:

* no calendar features, and features shared by every window of the batch: the two pairings agree, so
  both of mlplab's ``time_feature_pairing`` settings must give the official outputs;
* a different set of features per window: ``official`` must give the official outputs, ``window``
  (each series with its own window's features) must not.

    git clone https://github.com/kwuking/TimeMixer /tmp/TimeMixer
    python benchmarks/timemixer_official_check.py --official /tmp/TimeMixer

The official PDM blocks' ``layer_norm`` is built but never used in their forward pass; mlplab leaves it
out, so it is the one official tensor not copied. Exits with status 1 when a comparison fails.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import official_code
import torch

from mlplab.models import TimeMixer

#: Official parameter-name fragments and mlplab's names for them (applied in order).
RENAMES = [
    ("normalize_layers", "norms"),
    ("affine_weight", "weight"),
    ("affine_bias", "bias"),
    ("enc_embedding.value_embedding.tokenConv", "value_embedding"),
    ("enc_embedding.temporal_embedding.embed", "time_embedding"),
    ("mixing_multi_scale_season.down_sampling_layers", "season_mixing.down"),
    ("mixing_multi_scale_trend.up_sampling_layers", "trend_mixing.up"),
    ("out_cross_layer.0", "out_cross_layer.fc1"),
    ("out_cross_layer.2", "out_cross_layer.fc2"),
    ("projection_layer", "projection"),
]


def mlplab_name(official_name: str) -> str:
    for old, new in RENAMES:
        official_name = official_name.replace(old, new)
    return official_name


def official_model(checkout: Path, lookback: int, horizon: int, series: int) -> torch.nn.Module:
    """The official model with the ETTh1 recipe's settings (``TimeMixer_ETTh1_unify.sh``, run.py defaults)."""
    if not (checkout / "models" / "TimeMixer.py").is_file():
        raise SystemExit(f"error: {checkout} has no models/TimeMixer.py; pass a kwuking/TimeMixer checkout")
    sys.path.insert(0, str(checkout))
    from models.TimeMixer import Model  # the official code, from the user's checkout

    configs = types.SimpleNamespace(
        task_name="long_term_forecast", seq_len=lookback, label_len=0, pred_len=horizon, enc_in=series,
        c_out=series, d_model=16, d_ff=32, e_layers=2, down_sampling_layers=3, down_sampling_window=2,
        down_sampling_method="avg", decomp_method="moving_avg", moving_avg=25, top_k=5, dropout=0.1,
        channel_independence=1, use_norm=1, embed="timeF", freq="h", use_future_temporal_feature=0,
        num_class=0,
    )  # fmt: skip
    return Model(configs)


def copy_weights(official: torch.nn.Module, ours: torch.nn.Module) -> int:
    """Copy every official tensor but the unused PDM ``layer_norm``; check that all of ours are set."""
    ours_parameters = dict(ours.named_parameters())
    copied = set()
    with torch.no_grad():
        for name, parameter in official.named_parameters():
            if ".layer_norm." in name:
                continue
            target = ours_parameters[mlplab_name(name)]
            target.copy_(parameter)
            copied.add(mlplab_name(name))
    missing = set(ours_parameters) - copied
    if missing:
        raise SystemExit(f"error: no official tensor for {sorted(missing)}")
    return len(copied)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official", type=Path, required=True, help="a kwuking/TimeMixer checkout")
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    options = parser.parse_args()
    official_code.require_checkout(
        "--official", options.official, "github.com/kwuking/TimeMixer", ["models/TimeMixer.py"]
    )
    lookback, series, failures = 96, 7, 0
    for horizon in options.horizons:
        torch.manual_seed(0)
        official = official_model(options.official, lookback, horizon, series).eval()
        ours = TimeMixer((lookback, series), (horizon, series), num_time_features=4).eval()
        copied = copy_weights(official, ours)
        x = torch.randn(options.batch, lookback, series) * 3 + 1
        marks = torch.rand(options.batch, lookback, 4) - 0.5
        shared = marks[:1].expand_as(marks).contiguous()
        target = torch.randn(options.batch, horizon, series)
        cases = [
            ("no calendar features", None, "window", True),
            ("shared features", shared, "window", True),
            ("per-window features", marks, "official", True),
            ("per-window features", marks, "window", False),
        ]
        for label, features, pairing, should_match in cases:
            ours.time_feature_pairing = pairing
            official.zero_grad()
            ours.zero_grad()
            expected = official(x, features, None, None)
            got = ours(x, features)
            torch.nn.functional.mse_loss(expected, target).backward()
            torch.nn.functional.mse_loss(got, target).backward()
            output_diff = (expected - got).abs().max().item()
            official_grads = {mlplab_name(n): p.grad for n, p in official.named_parameters()}
            grad_diff = max(
                (official_grads[n] - p.grad).abs().max().item() if p.grad is not None else 0.0
                for n, p in ours.named_parameters()
            )
            same_grads_set = all(
                (official_grads[n] is None) == (p.grad is None) for n, p in ours.named_parameters()
            )
            matches = output_diff < options.tolerance and grad_diff < options.tolerance and same_grads_set
            verdict = "ok" if matches == should_match else "FAILED"
            failures += verdict == "FAILED"
            print(
                f"H={horizon:4d}  {copied} tensors  {label:21s} pairing={pairing:8s}  max |output diff| "
                f"{output_diff:.2e}  max |grad diff| {grad_diff:.2e}  "
                f"{'should match' if should_match else 'should differ'}: {verdict}"
            )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
