"""The GPU proof: everything mlplab claims about speed and fidelity, measured in one command of minutes.

A GPU is lent rarely and briefly, so this is one process that measures the most important things
first and appends each result to ``OUT/gpu_suite.jsonl`` the moment it has it (one JSON line per
result: section, figures, bars, device, torch and Lightning versions, commit). Each section has its
own time cap, scaled from the default budget; a section that fails or runs out of time is recorded as
such and the next one starts. At the end a table is printed and written to ``OUT/gpu_suite.md``.

Sections, in priority order:

1. ``ceilings``: GPU name, bf16 matrix product TFLOP/s on 8192^3, device-to-device copy GB/s.
2. ``fit_loop``: mlplab's fit loop against a hand-written compiled bf16 loop on the same model, batch
   and GPU-resident data (``benchmarks/throughput.py``'s two loops): Hourglass 3072->3546/270/L5 and
   B-MLP B-6/Wi-1024 at batch 4096, timm's MLP-Mixer (img 32, patch 4, dim 256, 8 blocks) at batch 1024.
   Bar: mlplab >= 0.95x the hand loop (the better of two hand-loop runs), with MFU.
3. ``nanogpt``: nanoGPT's Shakespeare setting (``configs/text/transformer_shakespeare.yaml``, bf16,
   compiled): steady steps/s and the step and wall time at which validation loss first reaches 1.50.
   Bar: reached, at >= nanoGPT's steps/s (13-15 ms per step on an H100).
4. ``sequence``: every sequence family's Shakespeare recipe (about 10.7M parameters each), 100 bf16
   steps: tokens/s, peak GPU memory, parameters, FLOPs per token.
5. ``hourglass_mnist``: the Hourglass paper's MNIST tasks (denoising, super-resolution x2, generative
   classification), hourglass and conventional at one matched budget (B2 of
   ``benchmarks/hourglass_mnist.py``), 30 epochs on the 8k/1k/1k split of the MNIST test files: test PSNR.
6. ``cifar10``: Activator on CIFAR-10 with the NiNformer/Activator protocol
   (``configs/image/activator_cifar10.yaml`` on the JPEG copy) for as many epochs as the budget leaves
   (up to 100): validation accuracy and seconds per epoch, test accuracy of the best epoch.

Data comes from ``$MLPLAB_DATA`` (MNIST test files, ``tinyshakespeare.txt``, ``cifar10-jpg.tar.gz``).
``benchmarks/gpu_prepare.py`` gathers those and the pure-Python wheels the GPU machine lacks into one
git-ignored folder and prints the command to run there.

    python benchmarks/gpu_suite.py --out runs/gpu                       # everything, ~450 s
    python benchmarks/gpu_suite.py --out runs/gpu --only fit_loop nanogpt --budget-s 200
    python benchmarks/gpu_suite.py --out /tmp/suite --smoke            # every section at toy size, CPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hourglass_mnist  # noqa: E402
import throughput  # noqa: E402
import vision_throughput  # noqa: E402
from sequence_shakespeare import FAMILIES as SEQUENCE_FAMILIES  # noqa: E402

from mlplab.cli import MLPLabCLI  # noqa: E402
from mlplab.models import count_parameters  # noqa: E402
from mlplab.models.sequence.backends import LIBRARIES, backends_in_use, import_problem  # noqa: E402
from mlplab.tools.provenance import code_version  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GPU_PRESET = REPO / "configs" / "trainer" / "gpu-bf16.yaml"
#: Written by benchmarks/gpu_prepare.py: the commit of the prepared tree (the GPU machine has no .git).
PREPARED_COMMIT = REPO / ".gpu" / "commit.txt"
DEFAULT_BUDGET_S = 450.0
#: Dense bf16 peak FLOP/s from the datasheets (without sparsity), for MFU.
DENSE_BF16_PEAK = {"h100": 989e12, "h200": 989e12, "a100": 312e12}


# ----------------------------------------------------------------------------------------- bookkeeping
class SectionTimeout(Exception):
    """A section ran past its hard time limit."""


@dataclass
class Deadline:
    """A point in time (``time.monotonic()``) a piece of work must end by."""

    at: float

    def left(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0

    def share(self, parts: int, reserve: float = 0.0) -> Deadline:
        """The deadline of the next of ``parts`` equal shares of the time left (minus ``reserve``)."""
        return Deadline(time.monotonic() + max(0.0, self.left() - reserve) / max(1, parts))


@dataclass
class Suite:
    """Where results go, what is known about the machine, and how much time is left."""

    out: Path
    budget_s: float
    smoke: bool
    device: str
    scratch: Path
    started: float = field(default_factory=time.monotonic)
    environment: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    matmul_tflops: float | None = None

    @property
    def jsonl(self) -> Path:
        return self.out / "gpu_suite.jsonl"

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def record(self, section: str, **figures: Any) -> dict[str, Any]:
        """Append one result (with the environment) to the JSON lines file at once, and print it."""
        row = {"section": section, **figures, **self.environment}
        self.results.append(row)
        with open(self.jsonl, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"[gpu_suite] {json.dumps(row)}", flush=True)
        return row


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.machine()})"


def commit() -> str:
    version = code_version(REPO)
    if version == "unknown" and PREPARED_COMMIT.is_file():
        return PREPARED_COMMIT.read_text().strip()
    return version


def dense_peak(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name().lower()
    return next((peak for chip, peak in DENSE_BF16_PEAK.items() if chip in name), None)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`SectionTimeout` in the main thread after ``seconds`` (SIGALRM), if still running."""

    def expire(signum, frame):
        raise SectionTimeout(f"ran past its hard limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Recorder(L.Callback):
    """Times a fit, records every validation, and stops it at a deadline or when a target is reached.

    Steady-state training time counts the steps after ``warmup_steps`` (compilation and caches are in
    the first ones) and leaves validation out; the device is synchronised only at those edges.

    Args:
        device: ``cuda`` or ``cpu``.
        deadline: Training stops when it passes (after the current step, or, with ``whole_epochs``, before
            an epoch that would not end in time).
        reserve_s: Seconds kept free before the deadline (e.g. for a test afterwards).
        metric: Validation metric to record (and compare with ``target``).
        target: Stop as soon as ``metric <= target``.
        warmup_steps: Steps left out of the steady-state timing.
        whole_epochs: Stop only between epochs.
    """

    def __init__(
        self,
        device: str,
        deadline: Deadline,
        reserve_s: float = 0.0,
        metric: str | None = None,
        target: float | None = None,
        warmup_steps: int = 0,
        whole_epochs: bool = False,
    ):
        self.device = device
        self.deadline = deadline
        self.reserve_s = reserve_s
        self.metric = metric
        self.target = target
        self.warmup_steps = warmup_steps
        self.whole_epochs = whole_epochs
        self.fit_start = self.epoch_start = 0.0
        self.segment_start: float | None = None
        self.timing = False
        self.timed_steps = 0
        self.timed_seconds = 0.0
        self.epoch_seconds: list[float] = []
        self.validations: list[dict[str, float]] = []
        self.reached: dict[str, float] | None = None
        self.stopped_early = False

    def _stop(self, trainer: L.Trainer) -> None:
        self.stopped_early = True
        trainer.should_stop = True

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.timing and trainer.global_step >= self.warmup_steps:
            synchronize(self.device)
            self.timing, self.segment_start = True, time.perf_counter()
        elif self.timing:
            self.timed_steps += 1
        if not self.whole_epochs and self.deadline.left() <= self.reserve_s:
            self._stop(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.segment_start is None:
            return
        synchronize(self.device)
        self.timed_seconds += time.perf_counter() - self.segment_start
        self.segment_start = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        entry = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "seconds": round(time.perf_counter() - self.fit_start, 2),
        }
        value = trainer.callback_metrics.get(self.metric) if self.metric else None
        if value is not None:
            entry[self.metric] = round(float(value), 5)
            if self.reached is None and self.target is not None and float(value) <= self.target:
                self.reached = entry
                self._stop(trainer)
        self.validations.append(entry)
        synchronize(self.device)
        if self.timing:
            self.segment_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_seconds.append(time.perf_counter() - self.epoch_start)
        if self.whole_epochs:
            typical = sum(self.epoch_seconds[-3:]) / len(self.epoch_seconds[-3:])
            if self.deadline.left() < 1.1 * typical + self.reserve_s:
                self._stop(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        synchronize(self.device)
        if self.segment_start is not None:
            self.timed_seconds += time.perf_counter() - self.segment_start
            self.segment_start = None

    @property
    def steps_per_second(self) -> float | None:
        return self.timed_steps / self.timed_seconds if self.timed_seconds > 0 and self.timed_steps else None


def run_cli(args: list[str], recorder: Recorder) -> MLPLabCLI:
    """Build the run from CLI arguments exactly as ``mlplab fit`` would, then fit with ``recorder``."""
    cli = MLPLabCLI(args=args, run=False)
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def device_args(suite: Suite, bf16: bool = True) -> list[str]:
    """The trainer preset of the suite's device: the bf16 GPU preset, or one CPU process (smoke)."""
    if suite.device == "cuda":
        return [f"--config={GPU_PRESET}"] if bf16 else ["--trainer.accelerator=gpu", "--trainer.devices=1"]
    return ["--trainer.accelerator=cpu", "--trainer.devices=1"]


def quiet_args(root: Path, logger: bool = True) -> list[str]:
    args = [
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    return args if logger else args + ["--trainer.logger=false"]


def drop_checkpoints(cli: MLPLabCLI) -> None:
    """Delete a measured run's checkpoint files: the scratch folder does not come back from the GPU machine,
    and the hourglass and CIFAR-10 runs write ~250 MB of them (a disk filled by them ended a CI run)."""
    callback = cli.trainer.checkpoint_callback
    if callback is not None and callback.dirpath:
        shutil.rmtree(callback.dirpath, ignore_errors=True)


def peak_memory_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device == "cuda" else None


def reset_peak_memory(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def data_file(*names: str) -> Path | None:
    """``$MLPLAB_DATA/<names>`` when every one exists, else ``None``."""
    folder = os.environ.get("MLPLAB_DATA")
    if not folder:
        return None
    paths = [Path(folder) / name for name in names]
    return paths[0] if all(path.exists() for path in paths) else None


# -------------------------------------------------------------------------------------- 1. ceilings
def section_ceilings(suite: Suite, deadline: Deadline) -> None:
    """bf16 matrix product rate on n^3 and device-to-device copy bandwidth (median of timed repeats)."""
    size = 256 if suite.smoke else 8192
    copy_bytes = (16 if suite.smoke else 2048) * 2**20
    device = torch.device(suite.device)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    source = torch.randn(copy_bytes // 4, device=device)
    target = torch.empty_like(source)

    def median_seconds(work: Callable[[], Any], repeats: int) -> float:
        for _ in range(3):
            work()
        times = []
        for _ in range(repeats):
            synchronize(suite.device)
            start = time.perf_counter()
            work()
            synchronize(suite.device)
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    matmul = median_seconds(lambda: a @ b, 10)
    copy = median_seconds(lambda: target.copy_(source), 10)
    suite.matmul_tflops = 2 * size**3 / matmul / 1e12
    figures: dict[str, Any] = {
        "gpu": device_name(suite.device),
        "matmul_size": size,
        "bf16_matmul_tflops": round(suite.matmul_tflops, 1),
        "copy_gb_per_s": round(2 * copy_bytes / copy / 1e9, 1),  # bytes read plus bytes written
        "datasheet_dense_bf16_tflops": (dense_peak(suite.device) or 0) / 1e12 or None,
    }
    if suite.device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        figures |= {
            "multiprocessors": properties.multi_processor_count,
            "memory_gib": round(properties.total_memory / 2**30, 1),
        }
    suite.record("ceilings", status="ok", **figures)


# -------------------------------------------------------------------------------------- 2. fit loop
@dataclass
class LoopCase:
    """One model of the fit-loop comparison."""

    name: str
    family: type
    class_path: str  # how the CLI names the family
    args: dict[str, Any]
    task: str
    batch_size: int
    anchor: float  # hand-written loop's samples/s on one H100 (issue 11)


def fit_loop_cases(smoke: bool) -> list[LoopCase]:
    hourglass, hourglass_args, hourglass_task = throughput.backbone_spec("hourglass", smoke)
    bmlp, bmlp_args, bmlp_task = throughput.backbone_spec("bmlp", smoke)
    mixer_args = {**vision_throughput.MIXER_ARGS}
    if smoke:
        mixer_args |= {"depth": 1, "embed_dim": 32}
    batch = 32 if smoke else None
    return [
        LoopCase(
            "hourglass", hourglass, hourglass.__name__, hourglass_args, hourglass_task, batch or 4096, 0.93e6
        ),
        LoopCase("bmlp", bmlp, bmlp.__name__, bmlp_args, bmlp_task, batch or 4096, 0.75e6),
        LoopCase(
            "mlp_mixer",
            vision_throughput.MlpMixer,
            "mlplab.models.MlpMixer",  # timm has an MlpMixer too
            mixer_args,
            "ImageClassification",
            batch or 1024,
            69e3,
        ),
    ]


def flops_per_sample(case: LoopCase) -> int:
    """Training FLOPs (forward and backward) per sample, counted on the meta device."""
    from lightning.fabric.utilities.throughput import measure_flops

    output = throughput.IMAGE_SHAPE if case.task == "ImageRestoration" else (10,)
    with torch.device("meta"):
        model = case.family(throughput.IMAGE_SHAPE, output, **case.args)
        x = torch.empty(2, *throughput.IMAGE_SHAPE)
        return measure_flops(model, lambda: model(x), loss_fn=lambda y: y.sum()) // 2


def section_fit_loop(suite: Suite, deadline: Deadline) -> None:
    """mlplab's fit loop against the hand-written compiled bf16 loop, model by model."""
    options = argparse.Namespace(
        device=suite.device,
        compile=suite.device == "cuda",
        images=256 if suite.smoke else 262144,
        warmup=2 if suite.smoke else 30,
        steps=3 if suite.smoke else 300,
        scratch=suite.scratch / "fit_loop",
    )
    cases = fit_loop_cases(suite.smoke)
    for number, case in enumerate(cases):
        share = deadline.share(len(cases) - number)
        options.images = 256 if suite.smoke else (262144 if case.batch_size >= 4096 else 65536)
        output = throughput.IMAGE_SHAPE if case.task == "ImageRestoration" else (10,)
        try:
            with hard_limit(share.left() + 15):
                model = case.family(throughput.IMAGE_SHAPE, output, **case.args)
                hand = [throughput.handwritten_samples_per_sec(options, model, case.task, case.batch_size)]
                ours = throughput.mlplab_samples_per_sec(
                    options, case.class_path, case.args, case.task, case.batch_size
                )
                hand.append(
                    throughput.handwritten_samples_per_sec(options, model, case.task, case.batch_size)
                )
        except SectionTimeout as error:
            suite.record("fit_loop", model=case.name, status="timeout", error=str(error))
            continue
        except Exception as error:  # one model's failure must not cost the others their measurement
            traceback.print_exc()
            failure = f"{type(error).__name__}: {error}"
            suite.record("fit_loop", model=case.name, status="error", error=failure)
            continue
        best_hand = max(hand)
        flops = flops_per_sample(case)
        peak = dense_peak(suite.device)
        suite.record(
            "fit_loop",
            model=case.name,
            status="ok",
            backbone=f"{case.family.__name__}({', '.join(f'{k}={v}' for k, v in case.args.items())})",
            params=count_parameters(model)[0],
            batch_size=case.batch_size,
            compiled=options.compile,
            timed_steps=options.steps,
            handwritten_samples_per_sec=[round(value) for value in hand],
            mlplab_samples_per_sec=round(ours),
            ratio=round(ours / best_hand, 3),
            bar=0.95,
            bar_met=ours / best_hand >= 0.95,
            anchor_handwritten_h100=case.anchor,
            train_flops_per_sample=flops,
            mfu=round(ours * flops / peak, 4) if peak else None,
            fraction_of_measured_matmul=(
                round(ours * flops / (suite.matmul_tflops * 1e12), 4) if suite.matmul_tflops else None
            ),
        )


# ---------------------------------------------------------------------------------------- 3. nanoGPT
NANOGPT_BAR = 1.50
NANOGPT_MS_PER_STEP = (13.0, 15.0)  # nanoGPT's Shakespeare character model on one H100 (issue 11)


def text_smoke_args() -> list[str]:
    """A text run small enough for a CPU check: offline corpus, short windows, tiny batches."""
    return [
        "--data.init_args.corpus=pydoc_topics",
        "--data.init_args.context_length=32",
        "--data.init_args.batch_size=4",
        "--data.init_args.batches_per_epoch=2",
        "--trainer.limit_val_batches=2",
        "--model.init_args.backbone.init_args.embed_dim=48",  # divisible by every recipe's head count
        "--model.init_args.backbone.init_args.depth=1",
    ]


def section_nanogpt(suite: Suite, deadline: Deadline) -> None:
    """The Transformer recipe until validation loss <= 1.50 (or the time is up): steps/s and when."""
    recipe = REPO / "configs" / "text" / "transformer_shakespeare.yaml"
    args = device_args(suite) + [f"--config={recipe}"] + quiet_args(suite.scratch / "nanogpt")
    args += [
        f"--compile.enabled={str(suite.device == 'cuda').lower()}",
        "--model.init_args.sample_length=0",  # nanoGPT samples nothing while it trains
        "--checkpoint.save_top_k=0",
        "--checkpoint.save_last=false",
    ]
    if suite.smoke:
        args += text_smoke_args() + ["--trainer.max_steps=4"]
    recorder = Recorder(
        suite.device, deadline, metric="val/loss", target=NANOGPT_BAR, warmup_steps=2 if suite.smoke else 50
    )
    with hard_limit(deadline.left() + 30):
        cli = run_cli(args, recorder)
    data = cli.datamodule
    steps_per_second = recorder.steps_per_second
    nanogpt_steps_per_second = 1000 / NANOGPT_MS_PER_STEP[0]
    losses = [entry["val/loss"] for entry in recorder.validations if "val/loss" in entry]
    suite.record(
        "nanogpt",
        status="ok",
        params=count_parameters(cli.model.backbone)[0],
        steps=cli.trainer.global_step,
        batch=data.batch_size,
        context=data.context_length,
        compiled=suite.device == "cuda",
        steps_per_sec=round(steps_per_second, 2) if steps_per_second else None,
        ms_per_step=round(1000 / steps_per_second, 2) if steps_per_second else None,
        tokens_per_sec=(
            round(steps_per_second * data.batch_size * data.context_length) if steps_per_second else None
        ),
        best_val_loss=min(losses) if losses else None,
        reached_1_50_step=recorder.reached["step"] if recorder.reached else None,
        reached_1_50_wall_s=recorder.reached["seconds"] if recorder.reached else None,
        validations=recorder.validations,
        anchor_nanogpt_h100_ms_per_step=list(NANOGPT_MS_PER_STEP),
        bar_met=bool(recorder.reached and steps_per_second and steps_per_second >= nanogpt_steps_per_second),
        stopped_by_deadline=recorder.stopped_early and recorder.reached is None,
    )


# -------------------------------------------------------------------------------- 4. sequence families
#: The sequence families that can use a fused kernel library, and its name (``backend`` argument).
KERNEL_BACKENDS = {"mamba": "mamba_ssm", "gla": "fla"}


def sequence_cases(device: str) -> list[tuple[str, str | None]]:
    """(family, backend) to measure: every family as configured, and each importable kernel beside torch."""
    cases: list[tuple[str, str | None]] = []
    for family in SEQUENCE_FAMILIES:
        library = KERNEL_BACKENDS.get(family)
        usable = (
            library is not None and device == "cuda" and import_problem(LIBRARIES[library].module) is None
        )
        cases += [(family, "torch"), (family, library)] if usable else [(family, None)]
    return cases


def section_sequence(suite: Suite, deadline: Deadline) -> None:
    """100 bf16 training steps of every sequence family's Shakespeare recipe: tokens/s and peak memory.

    A family that can use a fused kernel library installed here runs twice, with the PyTorch scans and
    with the kernels; the others run as their recipe says (``backend: auto``, which picks the PyTorch path
    when no kernel library is installed).
    """
    steps = 3 if suite.smoke else 100
    warmup = 1 if suite.smoke else 20
    cases = sequence_cases(suite.device)
    for number, (family, backend) in enumerate(cases):
        share = deadline.share(len(cases) - number)
        recipe = REPO / "configs" / "text" / f"{family}_shakespeare.yaml"
        args = device_args(suite) + [f"--config={recipe}"]
        args += quiet_args(suite.scratch / "sequence" / f"{family}_{backend or 'auto'}", logger=False)
        args += [
            f"--trainer.max_steps={steps}",
            "--trainer.limit_val_batches=0",
            "--trainer.num_sanity_val_steps=0",
            "--model.init_args.sample_length=0",
            "--checkpoint.save_top_k=0",
            "--checkpoint.save_last=false",
        ]
        if backend is not None:
            args += [f"--model.init_args.backbone.init_args.backend={backend}"]
        if suite.smoke:
            args += [arg for arg in text_smoke_args() if "limit_val" not in arg and "per_epoch" not in arg]
        reset_peak_memory(suite.device)
        recorder = Recorder(suite.device, share, warmup_steps=warmup)
        try:
            with hard_limit(share.left() + 20):
                cli = run_cli(args, recorder)
        except SectionTimeout as error:
            suite.record("sequence", family=family, backend=backend, status="timeout", error=str(error))
            continue
        except Exception as error:  # one family's failure (e.g. out of memory) must not end the section
            traceback.print_exc()
            failure = f"{type(error).__name__}: {error}"
            suite.record("sequence", family=family, backend=backend, status="error", error=failure)
            reset_peak_memory(suite.device)
            continue
        data = cli.datamodule
        rate = recorder.steps_per_second
        flops = getattr(cli.model, "flops_per_batch", None) or None
        tokens_per_batch = data.batch_size * data.context_length
        suite.record(
            "sequence",
            family=family,
            status="ok",
            backbone=type(cli.model.backbone).__name__,
            backend=backend or "auto",
            backend_used=backends_in_use(cli.model.backbone),
            params=count_parameters(cli.model.backbone)[0],
            steps=cli.trainer.global_step,
            timed_steps=recorder.timed_steps,
            batch=data.batch_size,
            context=data.context_length,
            compiled=False,
            tokens_per_sec=round(rate * tokens_per_batch) if rate else None,
            ms_per_step=round(1000 / rate, 2) if rate else None,
            peak_memory_gib=peak_memory_gib(suite.device),
            train_flops_per_token=round(flops / tokens_per_batch) if flops else None,
            stopped_by_deadline=recorder.stopped_early,
        )
        del cli


# ----------------------------------------------------------------------------------- 5. Hourglass MNIST
#: The paper's MNIST figures (test PSNR, dB) nearest to the measured settings (docs: families.md).
HOURGLASS_PAPER = {
    ("genclass", "hourglass"): "32.83 (785/350/L6, 4.53M, 50 epochs, 50k training digits)",
    ("genclass", "conventional"): "32.64 (L4, 6.15M, 50 epochs, 50k training digits)",
    ("denoise", "hourglass"): "24.2-24.35 (2-7M, 30 epochs, 50k training digits)",
    ("denoise", "conventional"): "24.2-24.35 (2-7M, 30 epochs, 50k training digits)",
}


def section_hourglass_mnist(suite: Suite, deadline: Deadline) -> None:
    """Both designs at budget B2 on the three MNIST tasks, 30 epochs each (fewer if time runs out)."""
    if data_file("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz") is None:
        suite.record("hourglass_mnist", status="skipped", reason="MNIST test files not in $MLPLAB_DATA/mnist")
        return
    runs = [
        (task, design, args)
        for task in ("denoise", "genclass", "sr")
        for design, budget, args in hourglass_mnist.TASKS[task]
        if budget == "B2"
    ]
    if suite.smoke:  # one run per input width is enough to keep the code honest
        runs = [runs[0], runs[-1]]
    for number, (task, design, shape) in enumerate(runs):
        share = deadline.share(len(runs) - number)
        recipe = REPO / "configs" / "image" / f"{design}_mnist_{task}.yaml"
        args = device_args(suite, bf16=False) + [f"--config={recipe}"]
        args += quiet_args(suite.scratch / "hourglass_mnist" / f"{task}_{design}")
        args += [f"--model.backbone.{key}={value}" for key, value in shape.items()]
        args += ["--data.source_split=test", "--data.num_val=1000", "--data.num_test=1000"]
        args += ["--trainer.max_epochs=30", "--seed_everything=0"]
        if suite.smoke:
            args += [
                "--trainer.max_epochs=1",
                "--trainer.limit_train_batches=2",
                "--trainer.limit_val_batches=2",
            ]
            args += ["--trainer.limit_test_batches=2"]
        recorder = Recorder(suite.device, share, reserve_s=4, metric="val/psnr", whole_epochs=True)
        try:
            with hard_limit(share.left() + 20):
                cli = run_cli(args, recorder)
                tested = cli.trainer.test(
                    cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False
                )
        except SectionTimeout as error:
            suite.record("hourglass_mnist", task=task, design=design, status="timeout", error=str(error))
            continue
        except Exception as error:
            traceback.print_exc()
            failure = f"{type(error).__name__}: {error}"
            suite.record("hourglass_mnist", task=task, design=design, status="error", error=failure)
            continue
        suite.record(
            "hourglass_mnist",
            task=task,
            design=design,
            status="ok",
            shape=hourglass_mnist.shape_label(shape),
            params=count_parameters(cli.model.backbone)[0],
            epochs=cli.trainer.current_epoch,
            precision="32 (tf32 matmuls)" if suite.device == "cuda" else "32",
            best_val_psnr=round(float(cli.trainer.checkpoint_callback.best_model_score), 3),
            test_psnr=round(tested[0]["test/psnr"], 3),
            test_ssim=round(tested[0]["test/ssim"], 4),
            test_psnr_input=round(tested[0].get("test/psnr_input", float("nan")), 3),
            seconds_per_epoch=round(sum(recorder.epoch_seconds) / max(1, len(recorder.epoch_seconds)), 2),
            paper=HOURGLASS_PAPER.get((task, design)),
            split="8k/1k/1k of the MNIST test files",
        )
        drop_checkpoints(cli)


# --------------------------------------------------------------------------------------- 6. CIFAR-10
ACTIVATOR_PAPER_ACC = 73.2  # % at 100 epochs (Activator paper)


def section_cifar10(suite: Suite, deadline: Deadline) -> None:
    """Activator with the NiNformer/Activator protocol for as many epochs as the time left allows."""
    archive = data_file("cifar10-jpg.tar.gz")
    if archive is None:
        suite.record("cifar10", status="skipped", reason="cifar10-jpg.tar.gz not in $MLPLAB_DATA")
        return
    recipe = REPO / "configs" / "image" / "activator_cifar10.yaml"
    args = device_args(suite) + [f"--config={recipe}"] + quiet_args(suite.scratch / "cifar10")
    args += ["--data=ImageFolderDataModule", f"--data.root={archive}", "--data.batch_size=128"]
    args += ["--trainer.max_epochs=100"]
    if suite.smoke:
        args += ["--data.max_images_per_class=20", "--data.num_val=20", "--data.batch_size=16"]
        args += [
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_test_batches=2",
        ]
    recorder = Recorder(suite.device, deadline, reserve_s=8, metric="val/acc", whole_epochs=True)
    with hard_limit(deadline.left() + 30):
        cli = run_cli(args, recorder)
        tested = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    epochs = cli.trainer.current_epoch
    suite.record(
        "cifar10",
        status="ok",
        recipe="activator_cifar10 (JPEG copy)",
        params=count_parameters(cli.model.backbone)[0],
        epochs=epochs,
        val_acc_per_epoch=[round(100 * entry["val/acc"], 2) for entry in recorder.validations],
        seconds_per_epoch=[round(seconds, 2) for seconds in recorder.epoch_seconds],
        best_val_acc=round(100 * float(cli.trainer.checkpoint_callback.best_model_score), 2),
        test_acc=round(100 * float(tested[0]["test/acc"]), 2),
        paper_acc_100_epochs=ACTIVATOR_PAPER_ACC,
        stopped_by_deadline=recorder.stopped_early,
    )
    drop_checkpoints(cli)


# -------------------------------------------------------------------------------------------- driver
#: (name, cap in seconds at the default budget, function); the last one takes whatever is left.
SECTIONS: list[tuple[str, float, Callable[[Suite, Deadline], None]]] = [
    ("ceilings", 15, section_ceilings),
    ("fit_loop", 130, section_fit_loop),
    ("nanogpt", 100, section_nanogpt),
    ("sequence", 70, section_sequence),
    ("hourglass_mnist", 75, section_hourglass_mnist),
    ("cifar10", 60, section_cifar10),
]
SECTION_NAMES = [name for name, _, _ in SECTIONS]
MIN_SECTION_S = 10.0


def run_sections(suite: Suite, names: list[str]) -> None:
    chosen = [section for section in SECTIONS if section[0] in names]
    scale = suite.budget_s / sum(cap for _, cap, _ in chosen)
    for number, (name, cap, function) in enumerate(chosen):
        last = number == len(chosen) - 1
        seconds = suite.left() if last else min(cap * scale, suite.left())
        if seconds < MIN_SECTION_S and not suite.smoke:
            suite.record(name, status="skipped", reason=f"budget spent ({suite.left():.0f} s left)")
            continue
        print(f"[gpu_suite] section {name}: {seconds:.0f} s", flush=True)
        started = time.monotonic()
        try:
            function(suite, Deadline(time.monotonic() + max(seconds, 1.0)))
        except SectionTimeout as error:
            suite.record(name, status="timeout", error=str(error))
        except Exception as error:  # record it, keep the traceback in the log, go on with the next section
            traceback.print_exc()
            suite.record(name, status="error", error=f"{type(error).__name__}: {error}")
        print(f"[gpu_suite] section {name} took {time.monotonic() - started:.0f} s", flush=True)


def summary(row: dict[str, Any]) -> str:
    """One table cell of a result's main figures."""
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('error') or row.get('reason')}"
    section = row["section"]
    if section == "ceilings":
        return (
            f"{row['gpu']}: bf16 matmul {row['bf16_matmul_tflops']} TFLOP/s, copy {row['copy_gb_per_s']} GB/s"
        )
    if section == "fit_loop":
        return (
            f"{row['model']}: mlplab {row['mlplab_samples_per_sec']:,}/s vs hand "
            f"{max(row['handwritten_samples_per_sec']):,}/s = {row['ratio']}x (bar 0.95: "
            f"{'met' if row['bar_met'] else 'missed'}), MFU {row['mfu']}"
        )
    if section == "nanogpt":
        reached = (
            f"val loss <= 1.50 at step {row['reached_1_50_step']} ({row['reached_1_50_wall_s']} s)"
            if row["reached_1_50_step"]
            else f"best val loss {row['best_val_loss']}"
        )
        return f"{row['ms_per_step']} ms/step, {reached} (bar: {'met' if row['bar_met'] else 'missed'})"
    if section == "sequence":
        return (
            f"{row['family']} ({row['backend_used']}): {row['tokens_per_sec']} tokens/s, "
            f"{row['peak_memory_gib']} GiB, {row['params'] / 1e6:.2f}M params"
        )
    if section == "hourglass_mnist":
        return (
            f"{row['task']} {row['design']} {row['shape']}: test PSNR {row['test_psnr']} dB "
            f"({row['epochs']} epochs; paper {row['paper'] or '-'})"
        )
    if section == "cifar10":
        return f"Activator: test acc {row['test_acc']}% after {row['epochs']} epochs (paper 73.2% at 100)"
    return json.dumps(row)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| section | result |", "|---|---|"]
    lines += [f"| {row['section']} | {summary(row)} |" for row in rows if row["section"] != "environment"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of gpu_suite.jsonl and gpu_suite.md")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="seconds for all sections")
    parser.add_argument("--only", nargs="+", choices=SECTION_NAMES, default=SECTION_NAMES, metavar="SECTION",
                        help=f"run only these sections (of {', '.join(SECTION_NAMES)})")  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="every section at toy size on the CPU")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "mlplab-gpu-suite",
                        help="run folders (kept out of OUT, which holds only the results)")  # fmt: skip
    options = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not options.smoke else "cpu"
    if device == "cpu" and not options.smoke:
        parser.error("no CUDA device: the suite measures a GPU (use --smoke for a CPU check)")
    options.out.mkdir(parents=True, exist_ok=True)
    torch.set_float32_matmul_precision("high")
    suite = Suite(
        out=options.out,
        budget_s=options.budget_s,
        smoke=options.smoke,
        device=device,
        scratch=options.scratch,
    )
    suite.environment = {
        "device": device_name(device),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "commit": commit(),
    }
    suite.record(
        "environment",
        status="ok",
        python=platform.python_version(),
        cuda=torch.version.cuda,
        budget_s=options.budget_s,
        sections=options.only,
        smoke=options.smoke,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    run_sections(suite, options.only)
    markdown = table(suite.results)
    (options.out / "gpu_suite.md").write_text(markdown + "\n")
    print(markdown, flush=True)
    print(f"[gpu_suite] done in {time.monotonic() - suite.started:.0f} s: {suite.jsonl}", flush=True)


if __name__ == "__main__":
    main()
