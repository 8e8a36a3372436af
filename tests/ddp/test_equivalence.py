"""Two processes (DDP, gloo on the CPU) train and evaluate like one process with the same global batch.

One ``torchrun`` of two processes runs the image and text jobs (module fixture); each test runs the
1-process reference in pytest's process and compares. The forecasting case runs through Lightning's
own launcher (``mlplab fit --trainer.devices 2``), on the split whose two halves once differed by one
batch and deadlocked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import require_data
from tests.ddp.conftest import (
    DDP_PRESET,
    TWO_PROCESSES,
    assert_close_weights,
    epoch_metrics,
    forecasting,
    image_classification,
    image_restoration,
    mlplab_command,
    run_process,
    text,
)
from tests.ddp.runs import run

RUNS = Path(__file__).with_name("runs.py")
DRAWS = "tests.ddp.callbacks.RecordRandomDraws"


def denoise_jobs(root: Path, processes: list[str]) -> list[dict]:
    """Fit a denoiser 3 steps (recording random draws), then test its checkpoint at eval batch 7 and 64."""
    fit = image_restoration(
        root / "fit", "denoise", 32, "--trainer.max_steps", "3",
        f"--trainer.callbacks+={DRAWS}", f"--trainer.callbacks.folder={root}", *processes,
    )  # fmt: skip
    checkpoint = root / "fit" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    jobs = [{"name": "denoise", "argv": fit}]
    for size in (7, 64):
        test = ["test", *fit[1:], "--ckpt_path", str(checkpoint), "--data.eval_batch_size", str(size)]
        test[test.index("--trainer.default_root_dir") + 1] = str(root / f"test{size}")
        jobs.append({"name": f"denoise_test{size}", "argv": test})
    return jobs


def resume_jobs(root: Path, processes: list[str]) -> list[dict]:
    """A denoiser fit to step 6 in one go, and one stopped by SIGTERM (rank 0's) and resumed to step 6."""

    def fit(name: str, *extra: str) -> dict:
        argv = image_restoration(root / name, "denoise", 32, "--trainer.max_steps", "6",
                                 "--model.lr_scheduler", "null", *processes, *extra)  # fmt: skip
        return {"name": name, "argv": argv}

    last = root / "stopped" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    return [
        fit("uninterrupted"),
        fit("stopped", "--trainer.callbacks+=tests.ddp.callbacks.SignalAtStep"),
        fit("resumed", "--ckpt_path", str(last)),
    ]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """The 2-process runs, started once by torchrun; their records are ``<name>.rank<r>.pt`` in the folder."""
    out = tmp_path_factory.mktemp("two_processes")
    jobs = [
        {"name": "image", "argv": image_classification(out / "image", 32, *TWO_PROCESSES)},
        *denoise_jobs(out, TWO_PROCESSES),
        {"name": "text", "argv": text(out / "text", 8, 8, *TWO_PROCESSES)},
        *resume_jobs(out, TWO_PROCESSES),
    ]  # fmt: skip
    (out / "jobs.json").write_text(json.dumps(jobs))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(RUNS), str(out / "jobs.json"), str(out)]  # fmt: skip
    done = run_process(command, out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def records(folder: Path, name: str) -> list[dict]:
    """The records of job ``name`` of both processes, rank 0 first."""
    return [torch.load(folder / f"{name}.rank{rank}.pt", weights_only=False) for rank in (0, 1)]


def assert_processes_agree(ranks: list[dict]) -> None:
    """Both processes end with the same weights and the same epoch-level metrics."""
    assert_close_weights(ranks[0]["state_dict"], ranks[1]["state_dict"], atol=0.0)
    assert epoch_metrics(ranks[0]) == epoch_metrics(ranks[1]) and epoch_metrics(ranks[0])


def assert_close_metrics(first: dict, second: dict, rtol: float) -> None:
    assert first.keys() == second.keys()
    for key in first:
        assert first[key] == pytest.approx(second[key], rel=rtol, abs=1e-6), key


def test_image_training_equals_one_process_with_the_global_batch(two_processes, tmp_path):
    ranks = records(two_processes, "image")
    assert_processes_agree(ranks)
    one = run(image_classification(tmp_path, 64))
    assert ranks[0]["train_batches"] == one["train_batches"] == 1399 // 64  # 1,399 images cut to 2 x 699
    assert ranks[0]["global_step"] == one["global_step"]
    # The token-mixing MLP's output bias adds one constant to every channel of a token, which the next
    # LayerNorm (over channels) removes: its gradient is zero up to rounding, and Adam, dividing by the
    # gradient's RMS, turns that rounding into learning-rate-sized steps that differ between the runs.
    # Every weight that learns from the data agrees to 1e-5; those biases stay within lr x steps.
    null_gradient = [key for key in one["state_dict"] if key.endswith("mlp_tokens.fc2.bias")]
    assert null_gradient
    learned = {key: value for key, value in one["state_dict"].items() if key not in null_gradient}
    assert_close_weights({key: ranks[0]["state_dict"][key] for key in learned}, learned, atol=1e-5)
    bound = 1e-3 * one["global_step"]  # the recipe's AdamW learning rate times the steps
    for key in null_gradient:
        assert float((ranks[0]["state_dict"][key] - one["state_dict"][key]).abs().max()) <= bound
    assert_close_metrics(epoch_metrics(ranks[0]), epoch_metrics(one), rtol=1e-5)


def test_text_training_equals_one_process_and_epochs_hold_the_same_tokens(two_processes, tmp_path):
    ranks = records(two_processes, "text")
    assert_processes_agree(ranks)
    assert ranks[0]["train_batches"] == 4  # batches_per_epoch 8 of 8 windows: 4 steps of 2 x 8 windows
    one = run(text(tmp_path, 16, 4))
    assert one["train_batches"] == 4
    assert_close_weights(ranks[0]["state_dict"], one["state_dict"], atol=1e-5)
    assert_close_metrics(epoch_metrics(ranks[0]), epoch_metrics(one), rtol=1e-5)


def test_each_process_draws_its_own_random_numbers(two_processes):
    # Lightning seeds every process alike; without streams of their own both would draw the same noise
    zero, one = (json.loads((two_processes / f"draws.rank{rank}.json").read_text()) for rank in (0, 1))
    assert zero != one


def test_evaluation_does_not_depend_on_processes_or_batch_size(two_processes, tmp_path):
    two = {size: epoch_metrics(records(two_processes, f"denoise_test{size}")[0]) for size in (7, 64)}
    for size in (7, 64):
        assert_processes_agree(records(two_processes, f"denoise_test{size}"))
    checkpoint = two_processes / "fit" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    # the 1-process tests of the 2-process checkpoint
    one = {}
    for job in denoise_jobs(two_processes, [])[1:]:
        argv = [*job["argv"]]
        argv[argv.index("--trainer.default_root_dir") + 1] = str(tmp_path / job["name"])
        assert str(checkpoint) in argv
        one[int(job["name"].removeprefix("denoise_test"))] = epoch_metrics(run(argv))
    assert set(two[7]) >= {"test/psnr", "test/ssim", "test/psnr_input", "test/loss"}
    for size in (7, 64):
        assert_close_metrics(two[size], two[64], rtol=1e-5)
        assert_close_metrics(one[size], two[64], rtol=1e-5)


def test_a_two_process_fit_stopped_by_sigterm_resumes_exactly(two_processes):
    # SIGTERM to rank 0 at step 3: both processes stop after it and write last.ckpt; each process's
    # loader position and random streams (the training noise) come back from it
    last = two_processes / "stopped" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4
    uninterrupted, resumed = records(two_processes, "uninterrupted"), records(two_processes, "resumed")
    for rank in (0, 1):
        assert resumed[rank]["global_step"] == uninterrupted[rank]["global_step"] == 6
        assert_close_weights(resumed[rank]["state_dict"], uninterrupted[rank]["state_dict"], atol=0.0)


def test_uneven_forecasting_split_completes_and_equals_one_process(tmp_path):
    require_data("ETTh1.csv")
    # 8,449 windows: 4,225 and 4,224 per process, 169 and 168 batches of 25 before they were cut equal
    command = mlplab_command(*forecasting(tmp_path / "two", 25, preset=DDP_PRESET))  # the preset + a recipe
    done = run_process(command, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = torch.load(
        tmp_path / "two" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False
    )
    assert saved["global_step"] == 8449 // 50 == 168
    one = run(forecasting(tmp_path / "one", 50))
    assert one["global_step"] == 168
    assert_close_weights(saved["state_dict"], one["state_dict"], atol=1e-5)
    states = saved["callbacks"].values()
    (best,) = [state["best_model_score"] for state in states if "best_model_score" in state]
    assert float(best) == pytest.approx(one["metrics"]["val/mse"], rel=1e-5)  # all 2,785 validation windows
