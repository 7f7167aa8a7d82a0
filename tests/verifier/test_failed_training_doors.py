"""A training claim whose accuracy fails and whose steps_to_perfect is never reached is
``failed`` (not ``undecided``) through every door: the CLI, the pytest plugin, verifier.check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import verifier
from tests.conftest import ROOT, junit_verdicts, run_cli

SPEC = ROOT / "tests" / "fixtures" / "failing_training" / "stalls.spec.yaml"
ENV = {"VERIFIER_TRAIN_THREADS": "1"}

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


def _assert_failed_with_unmeasured_steps(result: dict[str, object]) -> None:
    assert result["status"] == "failed"
    oks = {e["measure"]: e["ok"] for e in result["expectations"]}  # type: ignore[attr-defined]
    assert oks == {"accuracy": False, "steps_to_perfect": None}


def test_python_door() -> None:
    [report] = verifier.check(SPEC, cache=False)
    [result] = report.results
    _assert_failed_with_unmeasured_steps(result.model_dump(mode="json"))


def test_cli_door(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    cli = run_cli("check", str(SPEC), "--no-cache", "--json", str(out), env=ENV)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    [report] = json.loads(out.read_text())
    [result] = report["results"]
    _assert_failed_with_unmeasured_steps(result)
    assert "1 failed" in cli.stdout
    assert not [
        line for line in cli.stdout.splitlines() if "undecided" in line and "too-short" in line
    ]


def test_pytest_door(tmp_path: Path) -> None:
    junit = tmp_path / "pytest.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SPEC),
            "-p",
            "no:cacheprovider",
            "--verifier-no-cache",
            f"--junitxml={junit}",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, **ENV},
    )
    assert proc.returncode == 1, proc.stdout
    assert junit_verdicts(junit) == {"stalls::too-short": "failed"}
    assert "failed" in proc.stdout and "undecided" not in proc.stdout
