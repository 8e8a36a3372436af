"""``mlplab analyze``, ``drop-layers`` and ``prune`` end to end on trained runs; their one-line refusals."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
#: A tiny character Transformer, trained with DEFT's density loss and pruned to 30% at step 3.
TINY_LM = {
    "seed_everything": 0,
    "trainer": {
        "max_epochs": 1,
        "limit_val_batches": 2,
        "log_every_n_steps": 2,
        "callbacks": [
            {
                "class_path": "mlplab.callbacks.GlobalMagnitudePruning",
                "init_args": {"sparsity": 0.3, "start_step": 3},
            }
        ],
    },  # fmt: skip
    "model": {
        "class_path": "LanguageModeling",
        "init_args": {
            "sample_length": 4,
            "density": {"weight": 0.5},
            "backbone": {
                "class_path": "Transformer",
                "init_args": {"embed_dim": 16, "depth": 3, "num_heads": 2},
            },
        },
    },
    "data": {
        "class_path": "CharTextDataModule",
        "init_args": {
            "corpus": "pydoc_topics",
            "context_length": 16,
            "batch_size": 8,
            "batches_per_epoch": 6,
        },
    },
}
#: The S-MLP (not a stack of residual blocks) on the bundled digits.
TINY_SMLP = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 2},
    "model": {"class_path": "ImageClassification",
              "init_args": {"backbone": {"class_path": "StandardMLP", "init_args": {"variant": "tiny"}}}},
    "data": {"class_path": "DigitsDataModule", "init_args": {"batch_size": 32}},
}  # fmt: skip


#: A one-head Transformer with a symmetric merged W_QK (stored packed) and mixture-of-experts MLPs.
TINY_MOE = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 1, "limit_val_batches": 2},
    "model": {
        "class_path": "LanguageModeling",
        "init_args": {
            "sample_length": 4,
            "backbone": {
                "class_path": "Transformer",
                "init_args": {"embed_dim": 8, "depth": 1, "num_heads": 1, "query_key": "merged",
                              "value_output": "merged", "symmetric_similarity": True,
                              "channel_mlp": {"kind": "moe", "num_experts": 4}},
            },
        },
    },
    "data": TINY_LM["data"],
}  # fmt: skip


def train(root: Path, configs: dict[str, dict]) -> dict[str, Path]:
    """Train runs once, in a process of their own (Lightning's log handlers stay out of pytest's)."""
    script = ["from mlplab.__main__ import main"]
    for name, config in configs.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
        args = ["fit", "--config", f"{name}.yaml", f"--trainer.default_root_dir={name}", *QUIET]
        script.append(f"main({args!r})")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: root / name / "lightning_logs" / "version_0" for name in configs}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The language model and the S-MLP, trained once."""
    return train(tmp_path_factory.mktemp("runs"), {"lm": TINY_LM, "smlp": TINY_SMLP})


@pytest.fixture(scope="module")
def moe_run(tmp_path_factory) -> Path:
    """The mixture-of-experts Transformer with the packed symmetric W_QK, trained once."""
    return train(tmp_path_factory.mktemp("moe"), {"moe": TINY_MOE})["moe"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), "\n".join(err)
    return err[0]


def test_the_density_option_and_the_pruning_callback_from_a_config(runs):
    events = EventAccumulator(str(runs["lm"]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/density_loss",
        "val/density",
        "val/density/block0",
        "val/density/block2",
        "prune/sparsity",
    } <= tags
    assert events.Scalars("prune/sparsity")[-1].value == pytest.approx(0.3, abs=1e-3)


def test_analyze_writes_tables_figures_and_events_and_leaves_the_checkpoint(cli, capsys, runs):
    run = runs["lm"]
    before = digest(run / "checkpoints" / "best.ckpt")
    assert cli("analyze", "similarity", "--run", str(run), "--batches", "2") == 0
    out = run / "analysis" / "similarity"
    lines = (out / "similarity.csv").read_text().splitlines()
    assert lines[0] == "index,block,part,sublayer,similarity,importance" and len(lines) == 1 + 3 * 3
    assert (out / "similarity.png").stat().st_size > 0 and list(out.glob("events.out.tfevents.*"))
    assert "| blocks.2 |" in capsys.readouterr().out
    assert cli("analyze", "density", "--run", str(run), "--batches", "2", "--threshold", "0", "0.05") == 0
    rows = (run / "analysis" / "density" / "density.csv").read_text().splitlines()
    assert rows[0] == "threshold,group,density" and len(rows) == 1 + 2 * 4  # block0..2 and all, per threshold
    assert digest(run / "checkpoints" / "best.ckpt") == before


def test_drop_layers_removes_the_most_similar_and_writes_a_model_that_tests(cli, capsys, runs, tmp_path):
    from mlplab.analysis.run import evaluate, load_run

    run = runs["lm"]
    before = digest(run / "checkpoints" / "best.ckpt")
    out = tmp_path / "dropped"
    args = ["--run", str(run), "--part", "attention", "--count", "2", "--batches", "2", "--test-batches", "2"]
    assert cli("drop-layers", *args, "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    ranked = sorted(report["similarities"], key=report["similarities"].get, reverse=True)
    assert [d["sublayer"] for d in report["dropped"]] == ranked[:2]
    assert report["params_after"] < report["params_before"] and report["metric"] == "test/loss"
    assert (
        yaml.safe_load((out / "config.yaml").read_text())["model"]["init_args"]["dropped_layers"]
        == ranked[:2]
    )
    dropped = load_run(out, str(out / "model.ckpt"))
    assert dropped.task.dropped_layers == ranked[:2]
    assert evaluate(dropped, "test", 2, "cpu")["test/loss"] == pytest.approx(
        report["after"]["test/loss"], rel=1e-5
    )
    capsys.readouterr()
    test_args = [f"--ckpt_path={out / 'model.ckpt'}", "--trainer.limit_test_batches=2", *QUIET]
    assert cli("test", "--config", str(out / "config.yaml"), *test_args) == 0
    capsys.readouterr()
    # the run's own config says dropped_layers: null, an architecture argument: refused in one line
    assert cli("test", "--config", str(run / "config.yaml"), *test_args) == 2
    assert "model.dropped_layers: the checkpoint model.ckpt was trained with" in one_error_line(capsys)
    assert digest(run / "checkpoints" / "best.ckpt") == before


def test_prune_reaches_the_sparsity_fine_tunes_and_loads_into_the_run_config(cli, capsys, runs, tmp_path):
    import torch

    run = runs["lm"]
    before = digest(run / "checkpoints" / "best.ckpt")
    out = tmp_path / "pruned"
    args = ["--run", str(run), "--sparsity", "0.6", "--finetune-steps", "2", "--test-batches", "2"]
    assert cli("prune", *args, "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity"] == pytest.approx(0.6, abs=1e-3) and report["sparsity_written"] >= 0.6 - 1e-3
    assert {"before", "after_pruning", "after_finetune"} <= set(report)
    state = torch.load(out / "model.ckpt", weights_only=True)["state_dict"]
    assert not any(key.endswith(("weight_orig", "weight_mask")) for key in state)
    capsys.readouterr()
    test_args = [f"--ckpt_path={out / 'model.ckpt'}", "--trainer.limit_test_batches=2", *QUIET]
    assert cli("test", "--config", str(run / "config.yaml"), *test_args) == 0  # the same architecture
    assert digest(run / "checkpoints" / "best.ckpt") == before


def test_prune_covers_the_experts_and_the_packed_w_qk_and_the_fine_tune_keeps_them_zero(
    cli, capsys, moe_run, tmp_path
):
    # the experts' w1 / w2 and the symmetric W_QK stored packed are no nn.Linear's weight: prune left them
    # dense and out of prunable_weights; and the fine-tune failed at its second step (the router's weight
    # was read, not called, so the mask's forward pre-hook never recomputed it)
    import torch

    out = tmp_path / "pruned"
    args = ["--run", str(moe_run), "--sparsity", "0.5", "--finetune-steps", "3", "--test-batches", "2"]
    assert cli("prune", *args, "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    state = torch.load(out / "model.ckpt", weights_only=True)["state_dict"]
    assert not any(key.endswith(("_orig", "_mask")) for key in state)
    names = ("mixer.query.weight", "mixer.out_proj.weight", "mlp.router.weight", "mlp.w1", "mlp.w2")
    prunable = {name: state[f"backbone.blocks.0.{name}"] for name in names}
    assert prunable["mixer.query.weight"].shape == (8 * 9 // 2,)  # the packed lower triangle
    assert report["prunable_weights"] == sum(t.numel() for t in prunable.values())
    assert report["sparsity"] == pytest.approx(0.5, abs=1e-3)
    zeros = sum(int((t == 0).sum()) for t in prunable.values())  # after the fine-tune: the masks held
    assert zeros / report["prunable_weights"] == pytest.approx(report["sparsity_written"])
    assert report["sparsity_written"] >= 0.5 - 1e-3 and "after_finetune" in report
    assert (prunable["mlp.w1"] == 0).any() and (prunable["mlp.w2"] == 0).any()
    capsys.readouterr()
    test_args = [f"--ckpt_path={out / 'model.ckpt'}", "--trainer.limit_test_batches=2", *QUIET]
    assert cli("test", "--config", str(moe_run / "config.yaml"), *test_args) == 0  # the same architecture


def test_prune_reports_the_sparsity_the_model_has(cli, capsys, runs, tmp_path):
    # the lm run is 30% sparse already (its pruning callback): a 10% target leaves it at 30%, and the
    # report said 10%; a Minimum Threshold that keeps every weight prunes nothing, and the report said
    # nothing of it
    out = tmp_path / "pruned"
    assert (
        cli("prune", "--run", str(runs["lm"]), "--sparsity", "0.1", "--test-batches", "1", "--out", str(out))
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity_before"] == pytest.approx(0.3, abs=1e-3)
    assert report["sparsity"] == pytest.approx(0.3, abs=1e-3) == report["sparsity_written"]
    assert "(30.0%; target 10.0%; 30.0% were zero already)" in capsys.readouterr().out
    args = [
        "--sparsity",
        "0.5",
        "--min-weights-per-layer",
        "100000",
        "--test-batches",
        "1",
        "--out",
        str(out),
    ]
    assert cli("prune", "--run", str(runs["smlp"]), *args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity"] == report["sparsity_before"] < 0.5
    assert "the target is out of reach with 100,000 weights kept per layer" in capsys.readouterr().out


def test_the_fine_tune_keeps_the_runs_gradient_clipping_and_accumulation(cli, runs, tmp_path, monkeypatch):
    # the fine-tune's Trainer was built without them: a recipe's clipping (nanoGPT's 1.0) was dropped
    from mlplab.analysis import run as run_module

    copy = tmp_path / "run"
    shutil.copytree(runs["lm"], copy, ignore=shutil.ignore_patterns("analysis"))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["trainer"].update(
        gradient_clip_val=0.5, gradient_clip_algorithm="value", accumulate_grad_batches=2
    )
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    built = []
    original = run_module.trainer
    monkeypatch.setattr(run_module, "trainer", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    args = ["--sparsity", "0.5", "--finetune-steps", "1", "--test-batches", "1"]
    assert cli("prune", "--run", str(copy), *args) == 0
    tuner = next(t for t in built if t.max_steps == 1)
    assert (tuner.gradient_clip_val, tuner.gradient_clip_algorithm) == (0.5, "value")
    assert tuner.accumulate_grad_batches == 2


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_the_fine_tune_trains_in_the_runs_precision(cli, runs, tmp_path, monkeypatch, precision):
    # the fine-tune's Trainer ran in float32 whatever the run's precision; a "-true" precision converts
    # the weights, which are back in float32 for the test after the fine-tune and in model.ckpt
    import torch

    from mlplab.analysis import run as run_module

    copy = tmp_path / "run"
    shutil.copytree(runs["lm"], copy, ignore=shutil.ignore_patterns("analysis"))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["trainer"]["precision"] = precision
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    built = []
    original = run_module.trainer
    monkeypatch.setattr(run_module, "trainer", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    args = ["--sparsity", "0.5", "--finetune-steps", "1", "--test-batches", "1", "--accelerator", "cpu"]
    assert cli("prune", "--run", str(copy), *args) == 0
    assert next(t for t in built if t.max_steps == 1).precision == precision
    assert {t.precision for t in built if t.max_steps != 1} == {"32-true"}  # measurements in float32
    out = copy / "analysis" / "prune-0.5-ft1"
    assert json.loads((out / "report.json").read_text())["after_finetune"]["test/loss"] > 0
    state = torch.load(out / "model.ckpt", weights_only=True)["state_dict"]
    assert {value.dtype for value in state.values() if value.is_floating_point()} == {torch.float32}


def test_a_rerun_of_the_fine_tune_replaces_its_tensorboard_events(cli, runs, tmp_path):
    # each rerun into the same folder added an events file to OUT/finetune: TensorBoard overlaid the runs
    out = tmp_path / "pruned"
    args = ["--run", str(runs["lm"]), "--sparsity", "0.5", "--finetune-steps", "1", "--test-batches", "1"]
    for _ in range(2):
        assert cli("prune", *args, "--out", str(out)) == 0
    assert len(list((out / "finetune").glob("events.out.tfevents.*"))) == 1


def test_other_checkpoints_and_settings_get_folders_of_their_own(cli, runs, tmp_path):
    # the analysis of --ckpt last, or a prune with a Minimum Threshold, overwrote the folder of the best
    # checkpoint's, or of the plain prune's, silently
    run = tmp_path / "run"
    shutil.copytree(runs["lm"], run, ignore=shutil.ignore_patterns("analysis"))
    shutil.copy(run / "checkpoints" / "best.ckpt", tmp_path / "epoch3.ckpt")
    for ckpt in ("best", "last", str(tmp_path / "epoch3.ckpt")):
        assert cli("analyze", "density", "--run", str(run), "--batches", "1", "--ckpt", ckpt) == 0
    for extra in ([], ["--min-weights-per-layer", "2"]):
        assert cli("prune", "--run", str(run), "--sparsity", "0.5", "--test-batches", "1", *extra) == 0
    assert sorted(path.name for path in (run / "analysis").iterdir()) == [
        "density", "density-epoch3", "density-last", "prune-0.5", "prune-0.5-mt2",
    ]  # fmt: skip
    report = json.loads((run / "analysis" / "prune-0.5-mt2" / "report.json").read_text())
    assert report["min_weights_per_layer"] == 2


def test_what_cannot_be_read_or_handled_is_refused_in_one_line(cli, capsys, runs, tmp_path):
    run, smlp = runs["lm"], runs["smlp"]
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken"
    shutil.copytree(run, broken, ignore=shutil.ignore_patterns("analysis"))
    best = broken / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])
    cases = [
        (["analyze", "similarity", "--run", "nowhere"], "error: --run nowhere: no such folder"),
        (["prune", "--run", str(tmp_path / "empty"), "--sparsity", "0.5"], "no config.yaml there"),
        (["analyze", "density", "--run", str(broken)], "best.ckpt"),
        (["analyze", "similarity", "--run", str(run), "--ckpt", "other.ckpt"], "--ckpt other.ckpt: no such"),
        (["analyze", "similarity", "--run", str(smlp)],
         "error: analyze similarity: StandardMLP is not a stack of residual blocks (no block layout; "),
        (["drop-layers", "--run", str(smlp), "--part", "block", "--count", "1"],
         "error: drop-layers: StandardMLP is not a stack of residual blocks"),
        (["drop-layers", "--run", str(run), "--part", "attention", "--count", "9"],
         "--count 9 but this Transformer has 3 attention sub-layers"),
        (["prune", "--run", str(run), "--sparsity", "1.5"], "error: prune: --sparsity must lie between"),
        (["drop-layers", "--run", str(run), "--count", "1"],
         "error: mlplab drop-layers: the following arguments are required: --part (see --help)"),
        (["analyze", "sideways", "--run", str(run)], "error: mlplab analyze: argument what: invalid choice"),
        (["analyze", "density", "--run", str(run), "--accelerator", "sideways"],
         "error: --accelerator sideways: You selected an invalid accelerator name"),  # was a traceback
        (["prune", "--run", str(run), "--sparsity", "0.5", "--accelerator", "tpu"],
         "error: --accelerator tpu: "),
    ]  # fmt: skip
    for args, expected in cases:
        assert cli(*args) == 2, args
        assert expected in one_error_line(capsys), args
    density = ["analyze", "density", "--run", str(smlp)]  # S-MLP: its GELU, no layout needed
    assert cli(*density, "--batches", "1") == 0
