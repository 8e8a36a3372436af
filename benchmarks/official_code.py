"""What the ``*_official_check.py`` scripts share: importing one official source file by its path.

The official repositories are not packages mlplab depends on: each check script takes a checkout's path
and imports the files it needs from there (``python benchmarks/<domain>_official_check.py --help``).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


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
