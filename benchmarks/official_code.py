"""What the ``*_official_check.py`` scripts share: checkouts, official files, bounds, exit status.

The official repositories are not packages mlplab depends on: each check script takes a checkout's path
and imports the files it needs from there (``python benchmarks/<domain>_official_check.py --help``).
Each script checks the checkouts it is given before comparing anything (:func:`require_checkout`: one
line naming the option, the path and the files expected there) and exits with status 1 when a
comparison misses its bound (:func:`exit_status`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn


def require_checkout(option: str, path: Path, repository: str, files: Iterable[str]) -> None:
    """Exit with one line unless ``path`` is a folder holding every file of ``files``.

    Args:
        option: The command-line option that gave ``path`` (``--siren``).
        path: The folder given.
        repository: Where the checkout comes from (``github.com/vsitzmann/siren``).
        files: The files the check reads there, relative to the checkout.

    Raises:
        SystemExit: ``error: --siren /x: no such folder; expected a checkout of ... (files)``.
    """
    files = list(files)
    expected = f"expected a checkout of {repository} ({', '.join(files)})"
    if not path.is_dir():
        raise SystemExit(f"error: {option} {path}: no such folder; {expected}")
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise SystemExit(f"error: {option} {path}: no {', '.join(missing)} there; {expected}")


def add_checkout_options(
    parser: argparse.ArgumentParser,
    checkouts: Mapping[str, tuple[str, tuple[str, ...]]],
    notes: Mapping[str, str] | None = None,
) -> None:
    """One ``--<name> PATH`` option per entry of ``checkouts`` (as :func:`require_checkouts` reads them),
    its help ``a checkout of <repository>`` with the option's entry of ``notes`` in parentheses."""
    for dest, (repository, _) in checkouts.items():
        note = (notes or {}).get(dest)
        help_text = f"a checkout of {repository}" + (f" ({note})" if note else "")
        parser.add_argument("--" + dest.replace("_", "-"), type=Path, help=help_text)


def require_checkouts(options: object, checkouts: Mapping[str, tuple[str, tuple[str, ...]]]) -> None:
    """:func:`require_checkout` for every option of ``checkouts`` given on the command line.

    ``checkouts[dest] = (repository, files)``, ``dest`` being the argparse name (``strip_mlp`` for
    ``--strip-mlp``); an option not given (``None``) is skipped.
    """
    for dest, (repository, files) in checkouts.items():
        path = getattr(options, dest)
        if path is not None:
            require_checkout("--" + dest.replace("_", "-"), Path(path), repository, files)


def gradient_gap(
    ours: nn.Module, theirs: Mapping[str, torch.Tensor], zero_below: float
) -> tuple[float, list[str]]:
    """The largest relative difference between ``ours``' gradients and ``theirs`` (by our parameter names).

    Each weight's gap is ``max |ours - theirs| / max |theirs|``; a weight whose official gradient is
    below ``zero_below`` times the largest of all is zero up to rounding: listed, not compared.
    Returns the gap and the names of those weights.
    """
    largest = max(float(gradient.abs().max()) for gradient in theirs.values())
    gap, zero = 0.0, []
    for key, parameter in ours.named_parameters():
        scale = float(theirs[key].abs().max())
        if scale < zero_below * largest:
            zero.append(key)
            continue
        gap = max(gap, float((parameter.grad - theirs[key]).abs().max() / scale))
    return gap, zero


def report(rows: Iterable[Mapping], agree: str) -> None:
    """Print ``rows`` as JSON lines, then :func:`exit_status`."""
    rows = list(rows)
    for row in rows:
        print(json.dumps(row))
    exit_status(rows, agree)


def exit_status(rows: Iterable[Mapping], agree: str) -> None:
    """Exit with status 1 and one line naming them when rows' ``agree`` entries are false.

    Call it after printing the rows; it returns normally when every row agrees.
    """
    failed = [f"{row.get('family', '')} {row.get('variant', '')}".strip() for row in rows if not row[agree]]
    if failed:
        print(f"error: {len(failed)} comparison(s) missed their bound: {'; '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def load_module(path: Path, name: str, register: bool = True) -> types.ModuleType:
    """Import the official source file ``path`` as module ``name``.

    Args:
        path: The file, in a checkout of the official repository.
        name: The module's name (prefixed ``official_`` by the callers, so it cannot shadow a package).
        register: Also enter it in ``sys.modules`` before running it, as an import would (timm's
            ``register_model`` and dataclasses look their module up there).

    Raises:
        SystemExit: With one line, when ``path`` is not a file (a wrong or partial checkout).
    """
    if not path.is_file():
        raise SystemExit(f"error: no {path}; pass the repository's checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
