"""Peak resident memory and seconds per step of a few training steps of every text recipe, at full size.

Each recipe (``configs/text/*.yaml`` by default) runs in its own subprocess as a user would run it,
``python cli.py fit --config RECIPE --trainer.fast_dev_run N`` (N training and N validation batches at
the recipe's full batch and context, on the CPU unless ``--accelerator`` says otherwise), one recipe at
a time, with ``OMP_NUM_THREADS`` from ``--threads`` (on a CPU shared with other work, one thread per
run avoids OpenMP threads waiting for each other, which slows small operations many times over).
The parent watches the child's resident set (``/proc/<pid>/status``) and kills it when it passes
``--limit-gib`` (so a shared machine is never pushed past that) or runs longer than ``--timeout``.
The peak is the child's maximum resident set size as the kernel reports it at exit (``getrusage``,
the figure ``/usr/bin/time -v`` prints); the child times each training step (forward, backward,
optimiser) and the whole fit. Results: ``<out>/memory.csv`` (one row per recipe and run; finished
recipes are skipped when the command is repeated) and a markdown table.

    python benchmarks/sequence_memory.py --out runs/memory                     # every text recipe
    python benchmarks/sequence_memory.py --out runs/memory --recipes configs/text/mamba_mqar.yaml
    python benchmarks/sequence_memory.py --out runs/memory_old --repo /tmp/old_checkout   # another checkout
    python benchmarks/sequence_memory.py --out runs/m --label ref -- --model.backbone.init_args.mode=recurrent

Arguments after ``--`` go to every run's command line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 1024**3
FIELDS = ["recipe", "label", "status", "peak_rss_gib", "train_step_seconds", "fit_seconds", "wall_seconds",
          "params", "steps", "threads", "extra_args", "commit"]  # fmt: skip


def resident_bytes(pid: int) -> int:
    """Current resident set of ``pid`` in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(options: argparse.Namespace) -> None:
    """In the child: fit the recipe with a step timer and write what it measured as JSON."""
    import lightning as L
    import torch

    from mlplab.cli import MLPLabCLI
    from mlplab.models import count_parameters

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self._start = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.steps.append(time.perf_counter() - self._start)

    args = [f"--config={options.recipe}", f"--trainer.fast_dev_run={options.steps}"]
    args += [f"--trainer.accelerator={options.accelerator}", "--trainer.enable_progress_bar=false"]
    cli = MLPLabCLI(args=args + options.extra, run=False)
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    result = {
        "train_step_seconds": timer.steps,
        "fit_seconds": time.perf_counter() - start,
        "params": count_parameters(cli.model.backbone)[0],
        "threads": torch.get_num_threads(),
    }
    Path(options.child_out).write_text(json.dumps(result))


def measure(recipe: Path, options: argparse.Namespace) -> dict:
    """Run one recipe in a watched subprocess; its row of the results."""
    result_file = options.out / f".{recipe.stem}.{os.getpid()}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--child", f"--recipe={recipe}", f"--child-out={result_file}"]
    command += [f"--steps={options.steps}", f"--accelerator={options.accelerator}", "--", *options.extra]
    env = dict(os.environ, PYTHONPATH=str(options.repo / "src"))
    if options.threads:
        env["OMP_NUM_THREADS"] = str(options.threads)
    limit = options.limit_gib * GIB
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=options.repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    status = ""
    while True:  # os.wait4, not Popen.poll: it returns the child's peak resident set with its exit status
        pid, code, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        rss = resident_bytes(child.pid)
        if not status and rss > limit:
            status = f"killed: resident set passed {options.limit_gib} GiB"
        elif not status and time.perf_counter() - start > options.timeout:
            status = f"killed: ran longer than {options.timeout:g} s"
        if status:
            child.send_signal(signal.SIGKILL)
        time.sleep(0.1)
    child.returncode = code  # reaped here, so Popen must not wait for it again
    wall = time.perf_counter() - start
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    row = {
        "recipe": recipe.stem,
        "label": options.label,
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 2),
        "wall_seconds": round(wall, 1),
        "extra_args": " ".join(options.extra),
        "commit": commit(options.repo),
    }
    if not status and result_file.is_file():
        measured = json.loads(result_file.read_text())
        result_file.unlink()
        steps = measured["train_step_seconds"]
        row.update(
            status="ok",
            train_step_seconds=" ".join(f"{s:.1f}" for s in steps),
            fit_seconds=round(measured["fit_seconds"], 1),
            params=measured["params"],
            steps=len(steps),
            threads=measured["threads"],
        )
    else:
        last = stderr.strip().splitlines()[-1:] or [f"exit status {code}"]
        row["status"] = status or f"failed: {last[0][:200]}"
    return row


def commit(repo: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if out.returncode:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def table(rows: list[dict]) -> str:
    lines = ["| recipe | label | status | peak RSS | training steps (s) | fit (s) | params | commit |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        lines.append(
            f"| {row['recipe']} | {row['label']} | {row['status']} | {row['peak_rss_gib']} GiB "
            f"| {row['train_step_seconds']} | {row['fit_seconds']} | {row['params']} | {row['commit']} |"
        )
    return "\n".join(lines)


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="folder of memory.csv and memory.md")
    parser.add_argument("--recipes", nargs="+", type=Path, default=None, help="default: configs/text/*.yaml")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose src/ and recipes are run")
    parser.add_argument("--steps", type=int, default=2, help="training (and validation) batches")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs")
    parser.add_argument(
        "--limit-gib", type=float, default=12.0, help="kill a run whose resident set passes it"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="kill a run that takes longer (s)")
    parser.add_argument("--label", default="", help="a name for this setting (e.g. before / after)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--recipe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    options.extra = extra
    if options.child:
        run_child(options)
        return
    if options.out is None:
        parser.error("--out is required")
    options.repo = options.repo.resolve()
    recipes = options.recipes or sorted((options.repo / "configs" / "text").glob("*.yaml"))
    options.out.mkdir(parents=True, exist_ok=True)
    results = options.out / "memory.csv"
    done = {(row["recipe"], row["label"], row["extra_args"]) for row in read_rows(results)}
    for recipe in recipes:
        recipe = recipe if recipe.is_absolute() else options.repo / recipe
        if (recipe.stem, options.label, " ".join(extra)) in done:
            continue
        row = measure(recipe, options)
        new = not results.is_file()
        with open(results, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({key: row.get(key, "") for key in FIELDS})
        print(json.dumps(row), flush=True)
    markdown = table(read_rows(results))
    (options.out / "memory.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
