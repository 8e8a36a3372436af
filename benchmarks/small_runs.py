"""Small runs against hand-written PyTorch: the quickstart, a small model's steps, startup, text validation.

Issue 16's bars, each measured against the hand-written equivalent on the same machine, the two
interleaved (A, B, A, B, ...; one torch thread each) so that a loaded machine slows both alike; every
section reports the median ratio and its range over the repeats, wall-clock and CPU time both (CPU
time, the process's own, is far less disturbed by other jobs than the wall clock):

* ``quickstart``: wall time of ``python cli.py fit --config configs/quickstart.yaml`` (the README's
  command, its output to /dev/null) against ``benchmarks/handwritten_quickstart.py``, which trains
  the same model on the same data with the same validation schedule. Bar: <= 1.2x.
* ``steps``: samples/s of training steps of the quickstart's model (batch 64), mlplab's fit loop as a
  user runs it (the quickstart config, its logger, callbacks and progress bar; validation off) against
  a hand-written loop (same model, data, AdamW, LR schedule, ``loss.item()`` every 10 steps), after
  20 warm-up steps. Bar: >= 0.9x.
* ``interleaved``: the same two loops, interleaved step by step in one process (25 hand-written steps
  after every 25 steps of mlplab's fit, CPU time summed per side over 1,000+ steps): the steady,
  repeatable form of ``steps``. Bar: >= 0.9x.
* ``startup``: wall time from the command to the end of a one-step fit, mlplab's quickstart with
  ``--trainer.max_steps=1`` and no validation against the hand-written script with ``--epochs 0``.
* ``validation``: the share of a text recipe's fit spent validating (Shakespeare: one epoch of 250
  training batches of 64 x 256 and the validation after it, with its generated sample), from the
  measured time of training steps and of one validation, at a reduced width (the shipped width needs
  7 GiB and 25 s per step on this CPU). Bar: < 15 %.

    OMP_NUM_THREADS=1 python benchmarks/small_runs.py --out runs/small_runs              # all, ~15 min
    OMP_NUM_THREADS=1 python benchmarks/small_runs.py --out runs/small_runs --sections steps --repeats 9

Results: ``OUT/small_runs.jsonl`` (one line per measurement) and a markdown summary on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"
HAND = REPO / "benchmarks" / "handwritten_quickstart.py"
STEPS_WARMUP = 20


# ----------------------------------------------------------------------------------------- helpers
def child_environment(src: Path = REPO / "src") -> dict[str, str]:
    """This environment with one thread per process and ``src`` (this checkout's) first on the path."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env


def timed_command(command: list[str], src: Path = REPO / "src") -> tuple[float, float, str]:
    """Run ``command`` in the repository, mlplab imported from ``src``; return its wall seconds, CPU
    seconds and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=child_environment(src), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout


def spread(values: list[float]) -> dict[str, float]:
    """Median, minimum and maximum."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def spreads(rows: list[dict[str, Any]], keys: Any) -> dict[str, dict[str, float]]:
    """:func:`spread` of each of ``keys`` over ``rows``."""
    return {key: spread([row[key] for row in rows]) for key in keys}


def record(out: Path, row: dict[str, Any]) -> None:
    """Append ``row`` (with the load average and the time) to ``OUT/small_runs.jsonl``."""
    row = {**row, "load_average": [round(x, 1) for x in os.getloadavg()], "time": time.strftime("%F %T")}
    with open(out / "small_runs.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")


def quiet_fit(args: list[str], clock: Any, bare: bool = False) -> Any:
    """Fit mlplab's CLI run of ``args`` with ``clock`` added to its callbacks (only it when ``bare``),
    its output to /dev/null; return the CLI object."""
    from mlplab.cli import MLPLabCLI
    from mlplab.startup import collector_paused, startup_done

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        with collector_paused():  # the garbage collector as `mlplab fit` runs it (mlplab.startup)
            cli = MLPLabCLI(args=args, run=False)
            if bare:
                cli.trainer.callbacks = []
            cli.trainer.callbacks.append(clock)
            startup_done()
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def code_version() -> str:
    """The checkout's commit."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -------------------------------------------------------------------------------------- quickstart
def quickstart(out: Path, repeats: int, base_src: Path | None = None) -> dict[str, Any]:
    """The README's quickstart against the hand-written script, interleaved, each in a fresh process.

    With ``base_src`` (the ``src`` folder of a checkout of another commit), the same command is run a
    third time with mlplab imported from there, so that a change is measured against its base in the
    same minutes (the order of the three rotates).
    """
    sides = ["mlplab", "hand"] + (["base"] if base_src else [])
    pairs = []
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as scratch:
            runs = {}
            turn = repeat % len(sides)  # rotate which goes first
            for which in sides[turn:] + sides[:turn]:
                if which == "hand":
                    command = [sys.executable, str(HAND), "--out", f"{scratch}/hand"]
                    wall, cpu, printed = timed_command(command)
                    psnr = float(re.search(r"best val/psnr ([0-9.]+)", printed).group(1))
                    runs[which] = (wall, cpu, psnr)
                    continue
                root = Path(scratch, which)
                command = [sys.executable, "cli.py", "fit", "--config", str(QUICKSTART),
                           f"--trainer.default_root_dir={root}"]  # fmt: skip
                wall, cpu, _ = timed_command(command, base_src if which == "base" else REPO / "src")
                summary = json.loads(next(root.rglob("summary.json")).read_text())
                runs[which] = (wall, cpu, summary["best_val"])
        row: dict[str, Any] = {"section": "quickstart", "repeat": repeat}
        for which in sides:
            row[f"{which}_wall_s"] = round(runs[which][0], 2)
            row[f"{which}_cpu_s"] = round(runs[which][1], 2)
            row[f"{which}_best_val_psnr"] = round(runs[which][2], 2)
        row["wall_ratio"] = round(runs["mlplab"][0] / runs["hand"][0], 3)
        row["cpu_ratio"] = round(runs["mlplab"][1] / runs["hand"][1], 3)
        if base_src:
            row["base_src"] = str(base_src)
            row["base_wall_ratio"] = round(runs["base"][0] / runs["hand"][0], 3)
            row["base_cpu_ratio"] = round(runs["base"][1] / runs["hand"][1], 3)
        record(out, row)
        pairs.append(row)
        against = f"; base {row['base_wall_s']} s ({row['base_wall_ratio']}x)" if base_src else ""
        print(
            f"quickstart {repeat}: mlplab {row['mlplab_wall_s']} s, hand {row['hand_wall_s']} s "
            f"(wall {row['wall_ratio']}x, CPU {row['cpu_ratio']}x){against}",
            flush=True,
        )
    keys = ["wall_ratio", "cpu_ratio"] + (["base_wall_ratio", "base_cpu_ratio"] if base_src else [])
    keys += [f"{which}_{what}" for which in sides for what in ("wall_s", "best_val_psnr")]
    return spreads(pairs, keys)


# ------------------------------------------------------------------------------------------- steps
class HandLoop:
    """The hand-written training loop (``benchmarks/handwritten_quickstart.py``'s model, data, AdamW and
    linear LR decay over ``total_steps``; ``loss.item()`` every 10 steps), run ``n`` steps at a time.
    ``fused``: AdamW with ``fused=True``, as mlplab builds it (torch's default otherwise)."""

    def __init__(self, total_steps: int, fused: bool = False) -> None:
        import torch

        sys.path.insert(0, str(REPO / "benchmarks"))
        from handwritten_quickstart import Hourglass, digits_splits

        self.images = digits_splits()["train"]
        self.model = Hourglass()
        implementation = {"fused": True} if fused else {}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, **implementation)
        decay = lambda step: 1.0 - min(1.0, step / total_steps)  # noqa: E731
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, decay)
        self.batches: list = []
        self.step = 0

    def run(self, n: int) -> None:
        import torch
        import torch.nn.functional as F
        from handwritten_quickstart import noisy

        for _ in range(n):
            if not self.batches:
                order = torch.randperm(len(self.images))
                batches = range(len(self.images) // 64)
                self.batches = [self.images[order[b * 64 : (b + 1) * 64]] for b in batches]
            x = self.batches.pop()
            loss = F.mse_loss(self.model(noisy(x)), x)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            self.step += 1
            if self.step % 10 == 0:
                loss.item()


def hand_steps(steps: int) -> tuple[float, float]:
    """Samples/s (wall, CPU) of the hand-written loop over ``steps`` steps after the warm-up."""
    loop = HandLoop(steps + STEPS_WARMUP)
    loop.run(STEPS_WARMUP)
    start = (time.perf_counter(), time.process_time())
    loop.run(steps)
    end = (time.perf_counter(), time.process_time())
    return steps * 64 / (end[0] - start[0]), steps * 64 / (end[1] - start[1])


def mlplab_steps(steps: int, scratch: str) -> tuple[float, float]:
    """Samples/s (wall, CPU) of mlplab's fit loop on the quickstart config, validation off."""
    import lightning as L

    class StepClock(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == STEPS_WARMUP:
                self.start = (time.perf_counter(), time.process_time())

        def on_train_end(self, trainer, *args) -> None:
            self.end = (time.perf_counter(), time.process_time())

    args = [
        "--config",
        str(QUICKSTART),
        f"--trainer.max_steps={steps + STEPS_WARMUP}",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        f"--trainer.default_root_dir={scratch}",
    ]
    clock = StepClock()
    quiet_fit(args, clock)
    return steps * 64 / (clock.end[0] - clock.start[0]), steps * 64 / (clock.end[1] - clock.start[1])


def training_steps(out: Path, repeats: int, steps: int) -> dict[str, Any]:
    """mlplab's fit loop against the hand-written loop, interleaved in this process."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as scratch:
            if repeat % 2:
                ours, hand = mlplab_steps(steps, scratch), hand_steps(steps)
            else:
                hand, ours = hand_steps(steps), mlplab_steps(steps, scratch)
        row = {
            "section": "steps",
            "repeat": repeat,
            "steps": steps,
            "batch_size": 64,
            "mlplab_samples_per_s_wall": round(ours[0]),
            "hand_samples_per_s_wall": round(hand[0]),
            "mlplab_samples_per_s_cpu": round(ours[1]),
            "hand_samples_per_s_cpu": round(hand[1]),
            "wall_ratio": round(ours[0] / hand[0], 3),
            "cpu_ratio": round(ours[1] / hand[1], 3),
        }
        record(out, row)
        rows.append(row)
        print(
            f"steps {repeat}: mlplab {row['mlplab_samples_per_s_wall']}/s, "
            f"hand {row['hand_samples_per_s_wall']}/s (wall {row['wall_ratio']}x, CPU {row['cpu_ratio']}x)",
            flush=True,
        )
    return spreads(rows, ("wall_ratio", "cpu_ratio", "hand_samples_per_s_cpu", "mlplab_samples_per_s_cpu"))


# ------------------------------------------------------------------------------------- interleaved
def interleaved_steps(
    out: Path, repeats: int, steps: int, every: int = 25, bare: bool = False
) -> dict[str, Any]:
    """The ``steps`` comparison interleaved step by step: inside one mlplab fit, ``every`` hand steps
    after every ``every`` steps of the fit, the CPU time of each side summed over ``steps`` steps.
    ``bare``: the fit without a logger and without any callback (Lightning's loop and the task alone).

    Two hand loops take turns after the fit's steps: the benchmark's (torch's default AdamW, the bar's
    reference, ``cpu_ratio``) and the same with ``fused=True``, the implementation mlplab builds
    (``cpu_ratio_same_optimizer``: what the framework itself costs).

    The two loops alternate every quarter of a second, so a machine that slows down or speeds up
    (other jobs, the clock) slows both alike: the ratio's run-to-run spread is about ±1 % here, where
    alternating whole runs (section ``steps``) gives ±10 %.
    """
    import lightning as L
    import torch

    torch.set_num_threads(1)
    warmup = 50

    class Interleave(L.Callback):
        def __init__(self) -> None:
            self.hands = [HandLoop(steps + warmup), HandLoop(steps + warmup, fused=True)]
            self.ours = 0.0
            self.theirs = [0.0, 0.0]
            self.count = 0
            self.mark = 0.0

        def on_train_batch_end(self, trainer, *args) -> None:
            step = trainer.global_step
            if step == warmup:
                for hand in self.hands:
                    hand.run(warmup)
            elif step < warmup or step % every:
                return
            else:
                self.ours += time.process_time() - self.mark
                for which, hand in enumerate(self.hands):
                    start = time.process_time()
                    hand.run(every)
                    self.theirs[which] += time.process_time() - start
                self.count += every
            self.mark = time.process_time()

    rows = []
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as scratch:
            args = [
                "--config",
                str(QUICKSTART),
                f"--trainer.max_steps={steps + warmup}",
                "--trainer.limit_val_batches=0",
                "--trainer.num_sanity_val_steps=0",
                f"--trainer.default_root_dir={scratch}",
                *(["--trainer.logger=false"] if bare else []),
            ]
            clock = Interleave()
            quiet_fit(args, clock, bare=bare)
        row = {
            "section": "interleaved",
            "bare": bare,
            "repeat": repeat,
            "steps": clock.count,
            "every": every,
            "mlplab_ms_per_step_cpu": round(clock.ours / clock.count * 1e3, 3),
            "hand_ms_per_step_cpu": round(clock.theirs[0] / clock.count * 1e3, 3),
            "hand_fused_ms_per_step_cpu": round(clock.theirs[1] / clock.count * 1e3, 3),
            "cpu_ratio": round(clock.theirs[0] / clock.ours, 3),  # samples/s: mlplab's over the hand loop's
            "cpu_ratio_same_optimizer": round(clock.theirs[1] / clock.ours, 3),
        }
        record(out, row)
        rows.append(row)
        print(
            f"interleaved {repeat}: mlplab {row['mlplab_ms_per_step_cpu']} ms, hand "
            f"{row['hand_ms_per_step_cpu']} ms, hand with fused AdamW {row['hand_fused_ms_per_step_cpu']} ms "
            f"per step (CPU; samples/s ratio {row['cpu_ratio']}x, same optimiser "
            f"{row['cpu_ratio_same_optimizer']}x)",
            flush=True,
        )
    keys = ("cpu_ratio", "cpu_ratio_same_optimizer", "mlplab_ms_per_step_cpu", "hand_ms_per_step_cpu")
    return spreads(rows, (*keys, "hand_fused_ms_per_step_cpu"))


# ----------------------------------------------------------------------------------------- startup
def startup(out: Path, repeats: int) -> dict[str, Any]:
    """Command to the end of a one-step fit: mlplab's quickstart against the hand-written script."""
    rows = []
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as scratch:
            ours_command = [
                sys.executable,
                "cli.py",
                "fit",
                "--config",
                str(QUICKSTART),
                "--trainer.max_steps=1",
                "--trainer.limit_val_batches=0",
                "--trainer.num_sanity_val_steps=0",
                f"--trainer.default_root_dir={scratch}/mlplab",
            ]
            hand_command = [sys.executable, str(HAND), "--out", f"{scratch}/hand", "--epochs", "0"]
            if repeat % 2:
                ours, hand = timed_command(ours_command), timed_command(hand_command)
            else:
                hand, ours = timed_command(hand_command), timed_command(ours_command)
        row = {
            "section": "startup",
            "repeat": repeat,
            "mlplab_wall_s": round(ours[0], 2),
            "hand_wall_s": round(hand[0], 2),
            "mlplab_cpu_s": round(ours[1], 2),
            "hand_cpu_s": round(hand[1], 2),
        }
        record(out, row)
        rows.append(row)
        print(
            f"startup {repeat}: mlplab {row['mlplab_wall_s']} s ({row['mlplab_cpu_s']} s CPU), hand "
            f"{row['hand_wall_s']} s ({row['hand_cpu_s']} s CPU)",
            flush=True,
        )
    return spreads(rows, ("mlplab_wall_s", "hand_wall_s", "mlplab_cpu_s", "hand_cpu_s"))


# -------------------------------------------------------------------------------------- validation
def validation_share(out: Path, config: str, extra: list[str], steps: int) -> dict[str, Any]:
    """Share of a text recipe's epoch spent validating, from measured step and validation times."""
    import lightning as L

    class Clock(L.Callback):
        def __init__(self):
            self.step_times: list[float] = []
            self.validation = 0.0

        def on_train_batch_start(self, *args) -> None:
            self._step = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            self.step_times.append(time.perf_counter() - self._step)

        def on_validation_start(self, trainer, *args) -> None:
            self._validation = time.perf_counter()

        def on_validation_end(self, trainer, *args) -> None:
            if not trainer.sanity_checking:
                self.validation = time.perf_counter() - self._validation

    import yaml

    batches_per_epoch = yaml.safe_load((REPO / config).read_text())["data"]["init_args"]["batches_per_epoch"]
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "--config",
            str(REPO / config),
            "--trainer.max_epochs=1",
            "--trainer.num_sanity_val_steps=0",
            f"--data.init_args.batches_per_epoch={steps}",
            f"--trainer.default_root_dir={scratch}",
            *extra,
        ]
        clock = Clock()
        cli = quiet_fit(args, clock)
        windows = len(cli.datamodule.splits["val"][0])
    step = statistics.median(clock.step_times[1:])
    epoch = batches_per_epoch * step
    row = {
        "section": "validation",
        "config": config,
        "settings": " ".join(extra),
        "val_windows": windows,
        "batches_per_epoch": batches_per_epoch,
        "step_s": round(step, 3),
        "validation_s": round(clock.validation, 2),
        "share": round(clock.validation / (epoch + clock.validation), 4),
    }
    record(out, row)
    print(
        f"validation {config}: {windows} windows in {row['validation_s']} s against "
        f"{batches_per_epoch} steps of {row['step_s']} s: {row['share']:.1%} of the epoch",
        flush=True,
    )
    return row


# -------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of small_runs.jsonl")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["interleaved", "steps", "startup", "quickstart", "validation"],
        choices=["interleaved", "steps", "startup", "quickstart", "validation"],
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved pairs per section")
    parser.add_argument("--steps", type=int, default=400, help="timed training steps per run (section steps)")
    parser.add_argument(
        "--bare", action="store_true", help="section interleaved: the fit without logger and callbacks"
    )
    parser.add_argument(
        "--base-src",
        type=Path,
        help="section quickstart: also run mlplab from this src folder (a checkout of the commit to compare)",
    )
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: dict[str, Any] = {"commit": code_version(), "load_average_start": os.getloadavg()}
    if "interleaved" in options.sections:
        results["interleaved"] = interleaved_steps(
            options.out, options.repeats, max(options.steps, 1000), bare=options.bare
        )
    if "steps" in options.sections:
        results["steps"] = training_steps(options.out, options.repeats, options.steps)
    if "startup" in options.sections:
        results["startup"] = startup(options.out, options.repeats)
    if "quickstart" in options.sections:
        results["quickstart"] = quickstart(options.out, options.repeats, options.base_src)
    if "validation" in options.sections:
        small = [
            "--model.init_args.backbone.init_args.embed_dim=96",
            "--model.init_args.backbone.init_args.depth=2",
            "--model.init_args.backbone.init_args.num_heads=2",
        ]
        results["validation"] = [
            validation_share(options.out, "configs/text/transformer_shakespeare.yaml", small, steps=6),
        ]
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
