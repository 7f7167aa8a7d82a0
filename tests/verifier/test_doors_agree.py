"""`verifier check` and `pytest` give the same verdict on every claim of the same specs."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import ROOT, junit_verdicts, run_cli

FIXTURES = ROOT / "tests" / "fixtures" / "agree"


def test_cli_and_pytest_agree(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    cli = run_cli(
        "check", str(FIXTURES), "--json", str(report_file), "--junit", str(tmp_path / "cli.xml")
    )
    assert cli.returncode == 1, cli.stdout + cli.stderr  # one claim fails on purpose
    cli_verdicts = {
        f"{report['spec']}::{r['key']}": r["status"]
        for report in json.loads(report_file.read_text())
        for r in report["results"]
    }
    junit = tmp_path / "pytest.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(FIXTURES),
            "-p",
            "no:cacheprovider",
            "--verifier-no-reuse",  # verify again: not the verdicts the CLI just stored
            f"--junitxml={junit}",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout
    pytest_verdicts = junit_verdicts(junit)
    assert set(pytest_verdicts) == set(cli_verdicts)
    assert pytest_verdicts == cli_verdicts
    assert cli_verdicts == {
        "mixed::passes": "passed",
        "mixed::fails": "failed",
        "mixed::expected-to-fail": "xfailed",
        "mixed::swept[N=8]": "passed",
        "mixed::swept[N=48]": "failed",
        "other::onehot": "passed",
    }
    cli_xml = ET.parse(tmp_path / "cli.xml").getroot()
    assert sum(int(s.get("failures", 0)) for s in cli_xml.iter("testsuite")) == 2
