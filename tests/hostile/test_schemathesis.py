"""schemathesis against the live server: every check that applies, a fixed seed, in seconds.

It reads the OpenAPI document (behind the token), then runs its examples, coverage, fuzzing
and stateful phases against every operation. Zero failures means no 5xx, no response that
breaks its documented schema, status or content type, no rejected valid input and no
accepted invalid input (tests/hostile/schemathesis.toml says how 422 counts for a POST).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import TOKEN
from tests.hostile.conftest import HostileServer

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 1
MAX_TIME_S = 20  # fuzzing and stateful phases stop here; schema loading and setup come on top


def test_schemathesis_finds_nothing(hostile_server: HostileServer, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    assert cli.exists(), "schemathesis is not installed: pip install -e '.[dev]'"
    proc = subprocess.run(
        [
            str(cli),
            "--config-file",
            str(CONFIG),
            "run",
            f"{hostile_server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "all",
            # DELETE cancels a job and the job stays readable (nothing accepted is ever
            # deleted, by design); use_after_free takes a 2xx DELETE for a deletion
            "--exclude-checks",
            "use_after_free",
            "--seed",
            str(SEED),
            "--max-time",
            str(MAX_TIME_S),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=MAX_TIME_S * 4,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    print(out[-1500:])
    assert proc.returncode == 0, out[-6000:]
    assert "generated" in out and " passed" in out and "failure" not in out.split("SUMMARY")[-1]
