"""Round three of the hostile review: the items that are not one request or one spec file.

The spec-level items (formulas, sweeps, overflowing numbers, strict integers, the BOM, an id
with a trailing newline) are corpus cases (corpus.py, ``r3-``), run through both doors by
test_cli.py and test_http.py; here are a memory error in the CLI and a request body that
never finishes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.api.conftest import TOKEN
from tests.hostile.conftest import HostileServer
from tests.hostile.corpus import GOOD
from verifier.checks import REGISTRY
from verifier.cli import app
from verifier.engine.runner import OUT_OF_MEMORY, out_of_memory


def _check(tmp_path: Path) -> tuple[int, str, BaseException | None]:
    spec = tmp_path / "oom.spec.yaml"
    spec.write_text(GOOD)
    result = CliRunner().invoke(
        app, ["check", "--no-cache", str(spec)], env={"COLUMNS": "400"}, catch_exceptions=True
    )
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout + result.stderr, exc


def test_a_claim_out_of_memory_is_its_error_verdict_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(type(REGISTRY["construction"]), "run", exhausted)
    code, out, exc = _check(tmp_path)
    assert exc is None and code == 1, out
    assert OUT_OF_MEMORY in out and "Traceback" not in out
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"


def test_a_memory_error_outside_any_claim_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr("verifier.cli.run_checks", exhausted)
    code, out, exc = _check(tmp_path)
    assert exc is None and code == 2, out
    assert f"error: {OUT_OF_MEMORY}" in " ".join(out.split())
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 8 GB"), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_out_of_memory_recognises_allocation_failures_only(
    exc: BaseException, expected: bool
) -> None:
    assert out_of_memory(exc) is expected


@pytest.mark.integration
def test_a_body_that_never_finishes_gets_408(hostile_server: HostileServer) -> None:
    idle_s = 2.0  # VERIFIER_API_BODY_IDLE_S of the hostile server
    port = int(hostile_server.url.rsplit(":", 1)[1])
    head = (
        "POST /v1/verifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/yaml\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        start = time.monotonic()
        sock.sendall(head.encode() + b"name: never-finished\n")  # 21 of 1,000 bytes, then quiet
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"body_idle_s" in answer
    assert idle_s <= waited < idle_s + 20, waited  # 20 s: a loaded 2-core machine


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VERIFIER_MAX_JOB_FLOPS", "1e16"),
        ("VERIFIER_MAX_STEPS", "many"),
        ("VERIFIER_MAX_CLAIMS", ""),
    ],
)
def test_a_limit_variable_that_does_not_parse_is_one_line_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    """A ``VERIFIER_<LIMIT>`` the settings cannot read: exit 2 naming the variable and what it
    expected, through the CLI and pytest doors; never pydantic's traceback."""
    spec = tmp_path / "good.spec.yaml"
    spec.write_text(GOOD)
    env = {"COLUMNS": "400", variable: value}
    result = CliRunner().invoke(app, ["check", "--no-cache", str(spec)], env=env)
    assert result.exit_code == 2, result.output
    assert variable in result.stderr and "expected" in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr
    if variable != "VERIFIER_MAX_JOB_FLOPS":
        return  # the pytest door reads the limits by the same function: one case shows it
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, variable: value},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode != 0 and variable in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
