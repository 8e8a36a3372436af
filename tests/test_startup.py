"""Startup: a run imports what its subcommand and its family need, and nothing else (timm only if used)."""

from __future__ import annotations

import subprocess
import sys

from mlplab.models import registry
from tests.conftest import REPO


def test_every_registered_family_is_found_by_its_short_name_without_importing_the_others():
    defined = registry.defining_modules()
    for spec in registry.families():
        assert spec.cls.__module__ in defined.get(spec.name, ()), (
            f"{spec.name}: the registry looks for `class {spec.name}` in {spec.cls.__module__}'s source"
        )


def test_the_quickstart_imports_neither_timm_nor_the_other_families():
    probe = (
        "import sys\n"
        "from mlplab.cli import MLPLabCLI\n"
        "run = MLPLabCLI(args=['--config', 'configs/quickstart.yaml', '--trainer.logger=false'], run=False)\n"
        "assert type(run.model.backbone).__name__ == 'HourglassMLP'\n"
        "families = sorted(m for m in sys.modules if m.startswith('mlplab.models.') and m.count('.') > 2)\n"
        "print((sorted(m for m in sys.modules if m == 'timm' or m.startswith('timm.')), families))\n"
    )
    command = [sys.executable, "-c", probe]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    timm, families = eval(result.stdout.strip().splitlines()[-1])  # noqa: S307 (our own printed lists)
    assert timm == []
    family_files = {spec.cls.__module__ for spec in registry.families()}  # helpers (FreSh, RevIN) aside
    assert [module for module in families if module in family_files] == ["mlplab.models.vision.hourglass"]
