"""Startup: a run imports what its subcommand and its family need, and nothing else (timm only if used);
the garbage collector skips its full passes over the start-up objects."""

from __future__ import annotations

import gc
import subprocess
import sys

import lightning as L
import pytest

from mlplab import startup
from mlplab.models import registry
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def nothing_frozen():
    """Start each test with no object frozen: Python 3.12 starts with some of its own frozen (375 on
    3.12.1), which in-process commands must leave alone (tested below with objects frozen here)."""
    gc.unfreeze()


def frozen_as_before(frozen: int, built: list) -> bool:
    """Whether the frozen objects are those counted at ``frozen``: none thawed and ``built`` (made since)
    not frozen. A few frozen objects may be freed meanwhile (their count falls), never a thousand."""
    assert len(built) >= 1000
    return frozen - 100 <= gc.get_freeze_count() < frozen + len(built) // 2


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


def test_the_collector_is_off_while_a_command_starts_then_on_without_the_start_up_objects():
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with startup.collector_paused():
        assert not gc.isenabled()
        with startup.collector_paused():  # a command run by a command: the outer one decides
            assert not gc.isenabled()
        assert not gc.isenabled()
        startup.startup_done()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        built = [[] for _ in range(1000)]
        startup.startup_done()  # a second call changes nothing
        assert frozen_as_before(frozen, built)
    assert gc.isenabled() and gc.get_freeze_count() == 0  # the frozen objects are collectable again
    startup.startup_done()  # outside a command: nothing
    assert gc.get_freeze_count() == 0


def test_the_collector_is_left_as_found_on_errors_when_switched_off_and_when_others_froze_objects():
    with pytest.raises(ValueError), startup.collector_paused():
        raise ValueError("a failing start-up")
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with startup.collector_paused():
            startup.startup_done()
            assert not gc.isenabled()  # the user switched it off: it stays off
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with startup.collector_paused():  # objects someone else froze: left alone, and theirs stay frozen
            assert gc.isenabled()
            built = [[] for _ in range(1000)]
            startup.startup_done()
        assert frozen_as_before(frozen, built)
    finally:
        gc.unfreeze()


def test_with_objects_frozen_at_the_start_the_program_still_pauses_and_in_process_commands_do_not():
    gc.freeze()  # as Python 3.12 starts: objects frozen before any command runs
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with startup.collector_paused():  # in-process: unfreezing at the end would thaw those too
            assert gc.isenabled()
            built = [[] for _ in range(1000)]
            startup.startup_done()
            assert frozen_as_before(frozen, built)
        with startup.collector_paused(thaw=False):  # the program thaws nothing: it pauses as ever
            assert not gc.isenabled()
            built = [[] for _ in range(100)]  # what the command's start-up builds
            startup.startup_done()
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(built)  # frozen with the rest
    finally:
        gc.unfreeze()


def test_fit_and_models_run_after_start_up_is_done(cli, monkeypatch, tmp_path):
    seen = {}

    def instantiate_trainer(self, **kwargs):
        seen["building"] = gc.isenabled()
        return original(self, **kwargs)

    from mlplab.cli import MLPLabCLI

    original = MLPLabCLI.instantiate_trainer
    monkeypatch.setattr(MLPLabCLI, "instantiate_trainer", instantiate_trainer)
    collector = lambda: (gc.isenabled(), gc.get_freeze_count())  # noqa: E731
    monkeypatch.setattr(L.Trainer, "fit", lambda *a, **k: seen.update(fit=collector()))
    monkeypatch.setattr(registry, "main", lambda *a: seen.update(models=collector()))
    config = str(REPO / "configs" / "quickstart.yaml")
    root = f"--trainer.default_root_dir={tmp_path}"
    assert cli("fit", "--config", config, "--trainer.logger=false", root) == 0
    assert cli("models") == 0
    assert seen["building"] is False
    assert seen["fit"][0] and seen["fit"][1] > 0
    assert seen["models"][0] and seen["models"][1] > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_program_leaves_its_start_up_objects_frozen_for_the_shutdown(monkeypatch):
    from mlplab.__main__ import main

    monkeypatch.setattr(registry, "main", lambda *a: None)
    monkeypatch.setattr(sys, "argv", ["mlplab", "models"])
    try:
        main()  # the program: the process ends after it, so nothing is thawed for the shutdown to walk
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    main(["models"])  # called in-process with its arguments: everything thawed again
    assert gc.isenabled() and gc.get_freeze_count() == 0
