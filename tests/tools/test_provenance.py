from __future__ import annotations

import shutil
import subprocess

import pytest

from mlplab.tools.provenance import append_row, code_version


def git(folder, *args):
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_is_the_commit_marked_when_the_code_differs(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("a\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    commit = git(tmp_path, "rev-parse", "--short", "HEAD")
    assert code_version(tmp_path / "src" / "model.py") == commit
    (tmp_path / "notes.txt").write_text("b\n")  # outside src/, configs/, benchmarks/: not code
    assert code_version(tmp_path) == commit
    (tmp_path / "src" / "model.py").write_text("x = 2\n")
    assert code_version(tmp_path) == f"{commit}+uncommitted"
    git(tmp_path, "checkout", "-q", "--", "src")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "new.yaml").write_text("a: 1\n")  # an untracked recipe counts too
    assert code_version(tmp_path) == f"{commit}+uncommitted"


def test_code_version_outside_a_checkout_is_unknown(tmp_path):
    assert code_version(tmp_path) == "unknown"


def test_append_row_writes_the_header_once_and_refuses_an_unknown_column(tmp_path):
    table = tmp_path / "new" / "results.csv"
    append_row(table, ["family", "psnr"], {"family": "siren", "psnr": 42.7})
    append_row(table, ["family", "psnr"], {"family": "cam"})  # a missing column stays empty
    assert table.read_text().splitlines() == ["family,psnr", "siren,42.7", "cam,"]
    with pytest.raises(ValueError, match="fields not in fieldnames"):
        append_row(table, ["family", "psnr"], {"family": "kan", "rmse": 0.01})
