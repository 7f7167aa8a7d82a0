"""``verifier serve`` starts light: what it imports before it listens, when its worker and
validator processes start, and a data folder it cannot write (cheap: no engine is imported)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from api.validator import Validator

# What the server process must not import before /healthz answers: the numeric libraries,
# the spec language and the engine (the validator and worker processes import them).
FORBIDDEN = (
    "numpy",
    "sympy",
    "torch",
    "cvxpy",
    "scipy",
    "matplotlib",
    "verifier.spec",
    "verifier.checks",
    "verifier.theory",
    "verifier.engine.runner",
    "verifier.measure",
    "verifier.constructions",
    "verifier.train",
    "verifier.convex",
    "verifier.cli",  # the full CLI: verifier serve goes through verifier.cli_entry
)

_LIST_FORBIDDEN = """
import json, sys
from verifier.cli_entry import main
try:
    main(["serve", "--help"])  # the console script's path, up to typer's help
except SystemExit:
    pass
import api.main, uvicorn  # what serve imports before uvicorn listens
forbidden = {forbidden!r}
print(json.dumps(sorted(m for m in sys.modules if m in forbidden or m.startswith(
    tuple(f + "." for f in forbidden)))))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_API_")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_the_serve_path_imports_neither_the_engine_nor_numeric_libraries() -> None:
    done = _python(_LIST_FORBIDDEN.format(forbidden=FORBIDDEN))
    assert done.returncode == 0, done.stderr
    assert "verifier serve" in done.stdout  # the help was printed: the path was taken
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_other_commands_still_reach_the_full_cli() -> None:
    done = _python("from verifier.cli_entry import main; main(['--version'])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("verifier ")


def test_workers_and_validators_start_once_the_server_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Validator] = []
    monkeypatch.setattr(Validator, "start", lambda self: started.append(self))
    listening = False
    settings = Settings(data_dir=tmp_path / "data", workers=0, validators=2)
    with TestClient(create_app(settings, listening=lambda: listening)) as client:
        health = client.get("/healthz").json()
        assert (health["status"], health["validators_ready"], started) == ("ok", 0, [])
        listening = True
        deadline = time.monotonic() + 10
        while client.get("/healthz").json()["validators_ready"] < 2:
            assert time.monotonic() < deadline, "the validators were never started"
            time.sleep(0.02)
        assert len(started) == 2


def _serve_refused(data_dir: Path, wrap: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_API_")}
    command = [sys.executable, "-m", "verifier.cli_entry", "serve", "--workers", "0"]
    return subprocess.run(
        [*wrap, *command, "--port", "1", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _read_only_wrap(folder: Path) -> list[str]:
    """A command prefix that runs its command with ``folder`` read-only: a private mount
    namespace with a read-only bind mount as root (mode bits do not stop root), chmod
    otherwise. Skips where neither is possible."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("running as root without unshare/mount: cannot make a folder read-only")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("running as root without mount namespaces: cannot make a folder read-only")
    remount = f'mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && exec "$@"'
    return ["unshare", "-m", "sh", "-c", remount, "sh"]


@pytest.mark.parametrize("with_store", [False, True], ids=["empty", "existing-store"])
def test_a_read_only_data_folder_is_refused_in_one_line(tmp_path: Path, with_store: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if with_store:  # a folder a server has used: its SQLite file and lock file exist
        from api import lock
        from api.store import Store

        folder = lock.acquire(data)
        Store(data / "jobs.sqlite3")
        lock.release(folder)
    try:
        done = _serve_refused(data, _read_only_wrap(tmp_path))
    finally:
        tmp_path.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "error: cannot write the data folder" in done.stderr
    assert str(data) in done.stderr
    assert "Read-only file system" in done.stderr or "Permission denied" in done.stderr
