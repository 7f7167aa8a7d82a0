"""The cache folder writes its own ``.gitignore`` (``*``), so it never shows up untracked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from verifier.cache_folder import cache_root, ignore_in_git

SPEC = (
    "name: g\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 0}\nclaims:\n"
    "  - id: c\n    check: construction\n    construction: {name: geometric}\n"
    "    expect: {accuracy: 1.0}\n"
)


def test_default_folder_and_a_chosen_one(tmp_path: Path) -> None:
    assert cache_root(tmp_path / ".verifier" / "artifacts") == tmp_path / ".verifier"
    assert cache_root(tmp_path / "mine") == tmp_path / "mine"
    ignore_in_git(tmp_path / ".verifier" / "artifacts")
    ignore_file = tmp_path / ".verifier" / ".gitignore"
    assert "*" in ignore_file.read_text().splitlines()
    ignore_file.write_text("# mine\n*\n")
    ignore_in_git(tmp_path / ".verifier" / "artifacts")
    assert ignore_file.read_text() == "# mine\n*\n"  # never overwritten
    ignore_in_git(tmp_path / "new" / "cache")  # created here: ignored
    assert (tmp_path / "new" / "cache" / ".gitignore").is_file()
    ignore_in_git(tmp_path)  # a folder that existed (the repository itself?): left alone
    assert not (tmp_path / ".gitignore").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_run_leaves_nothing_untracked(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "g.spec.yaml").write_text(SPEC)
    subprocess.run(["git", "-C", str(tmp_path), "add", "g.spec.yaml"], check=True)
    proc = run_cli("check", "g.spec.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any((tmp_path / ".verifier" / "artifacts" / "verdicts").rglob("*.json"))
    status = subprocess.run(
        ["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ".verifier" not in status, status
