"""``mlplab analyze``, ``mlplab drop-layers`` and ``mlplab prune``: questions asked of a trained run.

::

    mlplab analyze similarity --run DIR         # cos(input, output) of every block and sub-layer
    mlplab analyze density --run DIR            # share of active channel-MLP activations per block
    mlplab drop-layers --run DIR --part attention --count 2   # without the 2 most redundant attention layers
    mlplab prune --run DIR --sparsity 0.8 [--finetune-steps 200]  # global magnitude pruning

``DIR`` is a run directory of ``mlplab fit`` (``config.yaml``, ``checkpoints/best.ckpt``). Outputs go to
``DIR/analysis/<what>/`` or ``--out``; the run's checkpoint is only read. A folder that is not a run
directory, a checkpoint that cannot be read and a family a command cannot handle end with one
``error:`` line and exit status 2 (``MLPLAB_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlplab.errors import DEBUG_ENV_VAR, ConfigError, MLPLabError, OneLineParser, exit_with_error_line


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", required=True, help="the run directory (lightning_logs/version_N of `mlplab fit`)"
    )
    parser.add_argument("--ckpt", default="best", help="best (default), last, or a checkpoint file")
    parser.add_argument("--out", help="output folder (default: <run>/analysis/<what>)")
    parser.add_argument(
        "--accelerator", default="auto", help="Lightning's accelerator: auto (default), cpu, gpu"
    )


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parsers of ``analyze``, ``drop-layers`` and ``prune``."""
    analyze = OneLineParser(prog="mlplab analyze", description="Measure a trained run without changing it.")
    kinds = analyze.add_subparsers(dest="what", required=True, parser_class=OneLineParser)
    similarity = kinds.add_parser(
        "similarity",
        help="cosine similarity of input and output of every residual block and sub-layer (He et al. 2024)",
        description="Cosine similarity between the input and the output of every residual block and of its "
        "attention (mixer) and channel-MLP sub-layers, on validation batches: similarity.csv, similarity.md, "
        "similarity.png and TensorBoard events in the output folder.",
    )
    _common(similarity)
    similarity.add_argument("--batches", type=_positive_int, default=8, help="validation batches (default 8)")
    density = kinds.add_parser(
        "density",
        help="share of active channel-MLP hidden activations per block (DEFT, Runwal et al. 2024)",
        description="Activation density of the channel MLPs per block on validation batches, at each "
        "--threshold: density.csv and density.md in the output folder.",
    )
    _common(density)
    density.add_argument("--batches", type=_positive_int, default=8, help="validation batches (default 8)")
    density.add_argument("--threshold", type=float, nargs="+", default=[0.0],
                         help="count |a| > threshold as active (default 0: non-zero)")  # fmt: skip

    drop = OneLineParser(
        prog="mlplab drop-layers",
        description="Remove the --count sub-layers of --part whose output is most similar to their input "
        "(one-shot, He et al. 2024), write the model without them (model.ckpt, config.yaml) and report the "
        "test metrics before and after (report.json).",
    )
    _common(drop)
    drop.add_argument(
        "--part",
        required=True,
        choices=("attention", "mlp", "block"),
        help="attention (the mixers), mlp (the channel MLPs) or block (whole blocks)",
    )
    drop.add_argument("--count", required=True, type=_positive_int, help="how many to remove")
    drop.add_argument(
        "--batches", type=_positive_int, default=8, help="validation batches for the similarity"
    )
    drop.add_argument(
        "--test-batches", type=_positive_int, help="evaluate on this many test batches (default all)"
    )

    prune = OneLineParser(
        prog="mlplab prune",
        description="Global magnitude pruning (Gupta et al.) of a trained run to --sparsity, one-shot, "
        "optionally followed by --finetune-steps of training with the masks kept; writes the pruned model "
        "(model.ckpt, config.yaml) and the test metrics before, after pruning and after the fine-tune "
        "(report.json).",
    )
    _common(prune)
    prune.add_argument(
        "--sparsity", required=True, type=float, help="share of prunable weights set to zero, in (0, 1)"
    )
    prune.add_argument("--min-weights-per-layer", type=int, default=0,
                       help="the Minimum Threshold: weights every layer keeps (default 0)")  # fmt: skip
    prune.add_argument(
        "--finetune-steps", type=int, default=0, help="training steps after pruning (default 0)"
    )
    prune.add_argument(
        "--test-batches", type=_positive_int, help="evaluate on this many test batches (default all)"
    )
    return {"analyze": analyze, "drop-layers": drop, "prune": prune}


def say(message: str) -> None:
    print(message, flush=True)


def folder_name(what: str, options: argparse.Namespace) -> str:
    """The default output folder's name: ``what``, with the checkpoint when it is not ``best``.

    ``similarity`` of the best checkpoint, ``similarity-last`` of the last one, ``similarity-<stem>`` of a
    checkpoint file: an analysis of another checkpoint does not overwrite the best one's.
    """
    if options.ckpt == "best":
        return what
    return f"{what}-{'last' if options.ckpt == 'last' else Path(options.ckpt).stem}"


# ------------------------------------------------------------------------------------------ commands
def run_similarity(options: argparse.Namespace) -> list[dict[str, Any]]:
    """``mlplab analyze similarity``: the table, the figure and TensorBoard events."""
    from mlplab.analysis import similarity
    from mlplab.analysis.layers import family_layout
    from mlplab.analysis.run import evaluate, load_run, output_folder

    run = load_run(options.run, options.ckpt)
    _, layout = family_layout(run.task.backbone, "analyze similarity")
    out = output_folder(run, options.out, folder_name("similarity", options))
    rows = measure_similarity(run, layout, options.batches, options.accelerator, evaluate)
    similarity.write_csv(rows, out / "similarity.csv")
    table = similarity.markdown(rows)
    (out / "similarity.md").write_text(table + "\n", encoding="utf-8")
    fig = similarity.figure(rows, f"{run.family}: {run.directory}")
    fig.savefig(out / "similarity.png", dpi=120)
    similarity.write_tensorboard(rows, fig, out)
    say(table)
    say(f"wrote {out}/similarity.csv, similarity.md, similarity.png and TensorBoard events")
    return rows


def measure_similarity(run: Any, layout: Any, batches: int, accelerator: str, evaluate: Any) -> list[dict]:
    """The similarity rows of a loaded run on ``batches`` validation batches."""
    from mlplab.analysis.similarity import SimilarityRecorder

    recorder = SimilarityRecorder(run.task.backbone, layout)
    try:
        evaluate(run, "val", batches, accelerator)
    finally:
        recorder.remove()
    return recorder.rows()


def run_density(options: argparse.Namespace) -> list[dict[str, Any]]:
    """``mlplab analyze density``: the share of active channel-MLP activations per block, per threshold."""
    from mlplab.analysis.density import ActivationDensity, DensityProbe
    from mlplab.analysis.run import evaluate, load_run, output_folder

    run = load_run(options.run, options.ckpt)
    out = output_folder(run, options.out, folder_name("density", options))
    rows = []
    for threshold in options.threshold:
        config = ActivationDensity(threshold=threshold)
        probe = DensityProbe(run.task.backbone, config, "analyze density")
        saved = run.task.density, run.task.density_probe
        run.task.density, run.task.density_probe = config, probe
        try:
            metrics = evaluate(run, "val", options.batches, options.accelerator)
        finally:
            probe.remove()
            run.task.density, run.task.density_probe = saved
        for key, value in metrics.items():
            if key.startswith("val/density"):
                group = key[len("val/density/") :] if key != "val/density" else "all"
                rows.append({"threshold": threshold, "group": group, "density": value})
    (out / "density.csv").write_text(
        "threshold,group,density\n"
        + "".join(f"{r['threshold']},{r['group']},{r['density']:.6f}\n" for r in rows),
        encoding="utf-8",
    )
    groups = list(dict.fromkeys(row["group"] for row in rows))
    lines = ["| threshold | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for threshold in options.threshold:
        values = {row["group"]: row["density"] for row in rows if row["threshold"] == threshold}
        lines.append(
            f"| {threshold:g} | " + " | ".join(f"{values.get(g, float('nan')):.4f}" for g in groups) + " |"
        )
    table = "\n".join(lines)
    (out / "density.md").write_text(table + "\n", encoding="utf-8")
    say(table)
    say(f"wrote {out}/density.csv and density.md")
    return rows


def run_drop_layers(options: argparse.Namespace) -> dict[str, Any]:
    """``mlplab drop-layers``: drop the most redundant sub-layers, test before and after, write the model."""
    from mlplab.analysis.layers import drop_layers, family_layout, sublayers
    from mlplab.analysis.run import evaluate, load_run, output_folder, write_model

    run = load_run(options.run, options.ckpt)
    spec, layout = family_layout(run.task.backbone, "drop-layers")
    candidates = sublayers(run.task.backbone, layout, options.part)
    if not candidates:
        raise ConfigError(
            f"drop-layers: {spec.name}'s blocks have no {options.part} sub-layer (its layout: mixer "
            f"{list(layout.mixer) or 'none'}, mlp {list(layout.mlp) or 'none'})"
        )
    if options.count > len(candidates):
        raise ConfigError(
            f"drop-layers: --count {options.count} but this {spec.name} has {len(candidates)} {options.part} "
            "sub-layers"
        )
    out = output_folder(run, options.out, folder_name(f"drop-{options.part}-{options.count}", options))
    rows = measure_similarity(run, layout, options.batches, options.accelerator, evaluate)
    by_path = {row["sublayer"]: row["similarity"] for row in rows}
    ranked = sorted(candidates, key=lambda c: by_path.get(c.path, float("-inf")), reverse=True)
    dropped = ranked[: options.count]
    say(
        f"{spec.name}: {options.part} similarities "
        + ", ".join(f"{c.path} {by_path.get(c.path, float('nan')):.4f}" for c in ranked)
    )
    before = evaluate(run, "test", options.test_batches, options.accelerator)
    params_before = sum(p.numel() for p in run.task.backbone.parameters())
    paths = [*run.task.dropped_layers, *(c.path for c in dropped)]
    drop_layers(run.task.backbone, [c.path for c in dropped])
    run.task.dropped_layers = paths
    after = evaluate(run, "test", options.test_batches, options.accelerator)
    params_after = sum(p.numel() for p in run.task.backbone.parameters())
    report = {
        "run": str(run.directory),
        "checkpoint": str(run.checkpoint_path),
        "family": spec.name,
        "part": options.part,
        "dropped": [{"sublayer": c.path, "similarity": by_path.get(c.path)} for c in dropped],
        "similarities": {c.path: by_path.get(c.path) for c in candidates},
        "metric": run.monitor,
        "before": before,
        "after": after,
        "params_before": params_before,
        "params_after": params_after,
    }
    write_model(run, out, {"dropped_layers": paths}, {"command": "drop-layers", "part": options.part,
                                                       "dropped": paths})  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    metric = run.monitor
    say(
        f"dropped {', '.join(c.path for c in dropped)}: {metric} {before.get(metric, float('nan')):.4f} -> "
        f"{after.get(metric, float('nan')):.4f}; parameters {params_before:,} -> {params_after:,}"
    )
    say(f"wrote {out}/model.ckpt, config.yaml and report.json "
        f"(mlplab test --config {out}/config.yaml --ckpt_path {out}/model.ckpt)")  # fmt: skip
    return report


def run_prune(options: argparse.Namespace) -> dict[str, Any]:
    """``mlplab prune``: one-shot global magnitude pruning, an optional fine-tune, test at each stage."""
    from mlplab.analysis import pruning
    from mlplab.analysis.run import evaluate, load_run, output_folder, trainer, write_model

    if not 0 < options.sparsity < 1:
        raise ConfigError(f"prune: --sparsity must lie between 0 and 1, got {options.sparsity}")
    if options.finetune_steps < 0 or options.min_weights_per_layer < 0:
        raise ConfigError("prune: --finetune-steps and --min-weights-per-layer must not be negative")
    run = load_run(options.run, options.ckpt)
    layers = pruning.prunable_weights(run.task.backbone)
    if not layers:
        raise ConfigError(f"prune: {run.family} has no linear or convolution layer to prune")
    name = (
        f"prune-{options.sparsity:g}"
        + (f"-mt{options.min_weights_per_layer}" if options.min_weights_per_layer else "")
        + (f"-ft{options.finetune_steps}" if options.finetune_steps else "")
    )
    out = output_folder(run, options.out, folder_name(name, options))
    before = evaluate(run, "test", options.test_batches, options.accelerator)
    zeros_before, total = pruning.sparsity(layers)
    pruning.global_magnitude_prune(layers, options.sparsity, options.min_weights_per_layer)
    zeros, total = pruning.sparsity(layers)  # the weights that are zero now, masked or zero already
    after = evaluate(run, "test", options.test_batches, options.accelerator)
    report: dict[str, Any] = {
        "run": str(run.directory),
        "checkpoint": str(run.checkpoint_path),
        "family": run.family,
        "metric": run.monitor,
        "sparsity_target": options.sparsity,
        "min_weights_per_layer": options.min_weights_per_layer,
        "sparsity_before": zeros_before / total,
        "sparsity": zeros / total,
        "prunable_weights": total,
        "before": before,
        "after_pruning": after,
    }
    metric = run.monitor
    notes = []
    if zeros_before:
        notes.append(f"{zeros_before / total:.1%} were zero already")
    if zeros < round(options.sparsity * total):
        notes.append(
            f"the target is out of reach with {options.min_weights_per_layer:,} weights kept per layer"
        )
    say(f"{run.family}: {zeros:,} of {total:,} weights zero ({zeros / total:.1%}; target "
        f"{options.sparsity:.1%}{''.join('; ' + note for note in notes)}); {metric} "
        f"{before.get(metric, float('nan')):.4f} -> {after.get(metric, float('nan')):.4f}")  # fmt: skip
    if options.finetune_steps:
        from lightning.pytorch.loggers import TensorBoardLogger

        for earlier in (out / "finetune").glob("events.out.tfevents.*"):  # a rerun replaces its curves
            earlier.unlink()
        tuner = trainer(
            options.accelerator,
            max_steps=options.finetune_steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=TensorBoardLogger(str(out), name="", version="finetune"),
            **run_training_settings(run.config),
        )
        tuner.fit(run.task, datamodule=run.datamodule)
        run.task.float()  # a "-true" precision (bf16-true, 64-true) converted the weights; measure in float32
        tuned = evaluate(run, "test", options.test_batches, options.accelerator)
        report["after_finetune"] = tuned
        report["finetune_steps"] = options.finetune_steps
        value = tuned.get(metric, float("nan"))
        say(f"after {options.finetune_steps} fine-tuning steps: {metric} {value:.4f}")
    pruning.make_permanent(layers)
    zeros, total = pruning.sparsity(layers)
    report["sparsity_written"] = zeros / total
    write_model(run, out, {}, {"command": "prune", "sparsity": options.sparsity,
                                "finetune_steps": options.finetune_steps})  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    say(f"wrote {out}/model.ckpt, config.yaml and report.json "
        f"(mlplab test --config {out}/config.yaml --ckpt_path {out}/model.ckpt)")  # fmt: skip
    return report


#: The run's Trainer settings a fine-tune keeps: they shape its optimiser steps and its arithmetic.
TRAINING_SETTINGS = ("gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches", "precision")


def run_training_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The run's clipping, accumulation and precision that are set (``trainer`` keys of its config.yaml)."""
    settings = config.get("trainer") or {}
    return {key: settings[key] for key in TRAINING_SETTINGS if settings.get(key) is not None}


def main(command: str, argv: Sequence[str]) -> None:
    """Entry point of ``mlplab analyze | drop-layers | prune``; user errors as one ``error:`` line."""
    parser = build_parsers()[command]
    options = parser.parse_args(list(argv))
    action = {"drop-layers": run_drop_layers, "prune": run_prune}.get(command)
    if action is None:
        action = {"similarity": run_similarity, "density": run_density}[options.what]
    try:
        action(options)
    except Exception as error:
        from mlplab.cli import find_user_error

        user_error = error if isinstance(error, MLPLabError) else find_user_error(error)
        if user_error is None or os.environ.get(DEBUG_ENV_VAR):
            raise
        exit_with_error_line(user_error)


__all__ = ["build_parsers", "main", "run_density", "run_drop_layers", "run_prune", "run_similarity"]
