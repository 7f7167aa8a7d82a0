"""``--executor ray`` with no cluster: the server refuses to start (it would accept jobs that
wait queued forever), and ``verifier check`` says so for a given address; both name the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.ray_runner import probe_cluster
from tests.api.conftest import free_port, tiny_spec

pytest.importorskip("ray")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def no_cluster() -> None:
    if probe_cluster("auto") is None:
        pytest.skip("a Ray cluster runs on this machine")


def _cli(*args: str, cwd: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFIER_", "RAY_"))}
    done = subprocess.run(
        [sys.executable, "-c", "from verifier.cli_entry import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def test_serve_with_ray_and_no_cluster_refuses_to_start(no_cluster: None, tmp_path: Path) -> None:
    code, said = _cli(
        "serve",
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path / "data"),
        "--executor",
        "ray",
        cwd=tmp_path,
    )
    assert code == 2, said
    assert "no Ray cluster answers at 'auto'" in said, said
    assert "ray start --head" in said and "--ray-address" in said, said
    assert "Traceback" not in said
    assert not (tmp_path / "data" / "jobs.sqlite3").exists()  # no job could be accepted


def test_check_with_a_ray_address_and_no_cluster_says_so(no_cluster: None, tmp_path: Path) -> None:
    spec = tmp_path / "tiny.spec.yaml"
    spec.write_text(tiny_spec("ray-none"))
    code, said = _cli(
        "check", "--no-cache", "--executor", "ray", "--ray-address", "auto", str(spec), cwd=tmp_path
    )
    assert code == 2, said
    assert "no Ray cluster answers at 'auto'" in said and "ray start --head" in said, said
    assert "Traceback" not in said
