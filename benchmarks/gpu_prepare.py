"""Prepare a GPU run of ``benchmarks/gpu_suite.py``: data and wheels in one git-ignored folder, the command.

The GPU machine has PyTorch, Lightning, timm and torchmetrics but not jsonargparse (which LightningCLI
needs), cannot download anything, and sees only the repository. This gathers into ``.gpu/`` (ignored
by git, under 60 MiB):

* ``.gpu/data/``: the files the suite reads through ``MLPLAB_DATA`` (the MNIST test files, Tiny
  Shakespeare, the CIFAR-10 JPEG archive), copied from ``--data`` (default ``$MLPLAB_DATA``) and checked
  against the checksums in that folder's ``SHA256SUMS`` when it has one;
* ``.gpu/wheels/``: the pure-Python wheels of jsonargparse and its signature extras and of
  palmerpenguins (the tabular task's GPU test) and timm (the machine's version is not known; mlplab
  needs 1.0.25 or later), at the versions installed here, and of
  flash-linear-attention's Triton kernels (the ``kernels`` extra; version pinned below), for CPython 3.12;
* ``.gpu/commit.txt``: the commit of this tree (the suite records it; the machine gets no ``.git``).

It then prints the command to run from the repository root on the GPU machine, with the folder to carry
along, and a second one for the GPU-marked tests (kernels against the PyTorch reference, training on the
device), for a second call when device time is left after the suite. On any machine with a GPU and
mlplab installed, ``python benchmarks/gpu_suite.py --out DIR`` is all it takes; this script is for
machines that can fetch nothing.

    python benchmarks/gpu_prepare.py                        # data from $MLPLAB_DATA
    python benchmarks/gpu_prepare.py --data ../shared/data --budget-s 450
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlplab.tools.provenance import code_version

REPO = Path(__file__).resolve().parents[1]
DEST = REPO / ".gpu"
DATA_FILES = [
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
    "tinyshakespeare.txt",
    "cifar10-jpg.tar.gz",
]
#: Distributions the GPU machine lacks (KINDS.md's package list), and timm, whose version there is not
#: known (mlplab needs 1.0.25 or later), at the versions installed here; all pure Python.
WHEELS = ["jsonargparse", "docstring-parser", "typeshed-client", "palmerpenguins", "timm"]
#: flash-linear-attention's kernels (Triton, pure Python), not installed here: the version whose
#: ``chunk_gla`` signature ``mlplab.models.sequence.backends.fla_chunk_gla`` was checked against. With
#: them the suite measures GatedLinearAttention with ``backend: fla`` beside ``torch``. (mamba-ssm has
#: CUDA extensions and no wheel on PyPI: it cannot travel this way.)
KERNEL_WHEELS = ["flash-linear-attention==0.6.0", "fla-core==0.6.0"]
#: The tests with a ``gpu`` mark that one GPU can run (tests/ddp needs two).
GPU_TESTS = [
    "tests/models/sequence/test_backends.py",
    "tests/tasks/test_tabular.py",
    "tests/tasks/test_function_fitting.py",
    "tests/tasks/test_image_fitting.py",
    "tests/analysis/test_gpu.py",
    "tests/tools/sweep/test_execute.py",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
LIMIT_MIB = 60


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def known_checksums(folder: Path) -> dict[str, str]:
    """``name -> sha256`` from ``folder/SHA256SUMS`` (``sha256sum`` format), if present."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    pairs = (line.split(maxsplit=1) for line in sums.read_text().splitlines() if line.strip())
    return {name.strip().lstrip("*"): digest for digest, name in pairs}


def copy_data(source: Path, target: Path) -> None:
    checksums = known_checksums(source)
    for name in DATA_FILES:
        origin = source / name
        if not origin.is_file():
            sys.exit(f"error: {origin} is missing: point --data at a folder holding {', '.join(DATA_FILES)}")
        expected = checksums.get(name)
        if expected and sha256(origin) != expected:
            sys.exit(f"error: {origin} fails its sha256 check in {source / 'SHA256SUMS'}")
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.is_file() or destination.stat().st_size != origin.stat().st_size:
            shutil.copyfile(origin, destination)


def download_wheels(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.whl"):
        old.unlink()
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS] + KERNEL_WHEELS
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(target), *pins]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        sys.exit(f"error: cannot download the wheels {' '.join(pins)}: {reason}")


def folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


#: The start of every command on the GPU machine: the carried wheels installed, the project on the path.
SETUP = (
    "set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "
    "--target /tmp/site .gpu/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD/src "
    "MLPLAB_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1 && nvidia-smi -L && "
)


def device_command(budget_s: float) -> str:
    """The one-line command for the GPU machine, run from the repository root with ``.gpu`` carried."""
    return SETUP + (
        f"python3 benchmarks/gpu_suite.py --out $OUT --budget-s {budget_s:.0f} 2>&1 | tee $OUT/gpu_suite.log"
    )


def tests_command() -> str:
    """The GPU-marked tests, for a second call (not timed yet: no GPU so far); the report goes to $OUT.

    In one process (``-n 0``: the image has pytest-xdist; one GPU is not shared by workers).
    """
    return SETUP + (
        f"python3 -m pytest -m gpu -n 0 -p no:cacheprovider -q -rs --junitxml=$OUT/gpu_tests.xml "
        f"{' '.join(GPU_TESTS)} 2>&1 | tee $OUT/gpu_tests.log"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=os.environ.get("MLPLAB_DATA"),
                        help="folder with the datasets (default: $MLPLAB_DATA)")  # fmt: skip
    parser.add_argument("--budget-s", type=float, default=450.0, help="the suite's budget in the command")
    parser.add_argument("--skip-wheels", action="store_true", help="data only (no pip download)")
    options = parser.parse_args()
    if options.data is None:
        parser.error("give --data or set MLPLAB_DATA to the folder holding the datasets")
    copy_data(Path(options.data).expanduser().resolve(), DEST / "data")
    if not options.skip_wheels:
        download_wheels(DEST / "wheels")
    (DEST / "commit.txt").write_text(code_version(REPO) + "\n")
    size = folder_mib(DEST)
    if size > LIMIT_MIB:
        sys.exit(f"error: {DEST} holds {size:.1f} MiB, over the {LIMIT_MIB} MiB the GPU machine takes")
    ignored = subprocess.run(["git", "check-ignore", "-q", str(DEST)], cwd=REPO).returncode == 0
    if not ignored:
        sys.exit(f"error: git does not ignore {DEST}: it would travel as untracked files (see .gitignore)")
    print(f"prepared {DEST} ({size:.1f} MiB, commit {(DEST / 'commit.txt').read_text().strip()})")
    print("on the GPU machine, from the repository root, carrying .gpu (timeout: budget + 120 s):")
    print(device_command(options.budget_s))
    print("then, with device time left (timeout 300 s), the GPU-marked tests, carrying .gpu again:")
    print(tests_command())


if __name__ == "__main__":
    main()
