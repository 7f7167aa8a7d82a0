"""Every bundled spec (specs/, without full/) through every door, with the same verdicts.

Two fresh runs, each verifying every claim: ``verifier check specs/ --no-reuse`` (serial, the
reference) and ``pytest specs -n 2 --verifier-no-reuse`` (two xdist workers, each spec on one).
Then, reusing what they stored:

- ``verifier check specs/`` again: at most a tenth of the reference's time, identical results
  (verdicts and figures), every one marked reused;
- the Python door, ``verifier.check("specs")``: every result reused - it derives the very keys
  the other doors do (same claim points, instances, dependencies, limits, settings and code), so
  it stands for the same computation - and its verdicts are the CLI's. (The door's own fresh
  path runs in test_python_door.py; a third full computation here would cost minutes.)

Every run uses the repository's default cache folder (``<root>/.verifier/artifacts``), as
``make test``'s own ``pytest specs`` does: models train once (in the reference, on a fresh
clone), every later run loads their checkpoints, and the suite's spec items then reuse the
verdicts stored here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import verifier
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration

CACHE = ROOT / ".verifier" / "artifacts"
Results = dict[str, dict[str, Any]]


def _results(report_file: Path) -> Results:
    return {
        f"{report['spec']}::{r['key']}": r
        for report in json.loads(report_file.read_text())
        for r in report["results"]
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, float]:
    """A fresh serial CLI run of specs/: its results and wall time."""
    out = tmp_path_factory.mktemp("reference") / "fresh.json"
    start = time.perf_counter()
    args = ["check", "specs", "--no-reuse", "--no-progress", "--json", str(out)]
    proc = run_cli(*args, timeout=1800)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = _results(out)
    assert results and not any(r["reused"] for r in results.values())
    return results, elapsed


def _verdicts(results: Results) -> dict[str, str]:
    return {name: r["status"] for name, r in results.items()}


def test_a_second_run_reuses_every_verdict_in_a_tenth_of_the_time(
    reference: tuple[Results, float], tmp_path: Path
) -> None:
    fresh, fresh_s = reference
    out = tmp_path / "again.json"
    start = time.perf_counter()
    proc = run_cli("check", "specs", "--no-progress", "--json", str(out))
    again_s = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:]
    again = _results(out)
    assert all(r["reused"] and r["verified_at"] for r in again.values())

    def verdict(r: dict[str, Any]) -> tuple[Any, ...]:
        return r["status"], r["method"], r["measured"], r["expectations"], r["evidence"]

    assert {k: verdict(r) for k, r in again.items()} == {k: verdict(r) for k, r in fresh.items()}
    print(f"fresh {fresh_s:.1f} s, reused {again_s:.1f} s ({again_s / fresh_s:.1%})")
    assert again_s <= 0.1 * fresh_s


@pytest.fixture(scope="module")
def xdist_verdicts(
    reference: tuple[Results, float], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A fresh ``pytest specs -n 2`` run (after the reference): item -> verdict."""
    junit = tmp_path_factory.mktemp("xdist") / "xdist.xml"
    args = ["specs", "-n", "2", "--verifier-no-reuse", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, f"--junitxml={junit}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    verdicts = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            verdict = "failed"
        elif (skipped := case.find("skipped")) is not None:
            verdict = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            verdict = "passed"
        spec = str(case.get("classname")).rsplit(".", 1)[-1]  # junit: classname ends in the spec
        verdicts[f"{spec}::{case.get('name')}"] = verdict
    return verdicts


def test_pytest_xdist_gives_the_serial_verdicts(
    reference: tuple[Results, float], xdist_verdicts: dict[str, str]
) -> None:
    fresh, _ = reference
    assert xdist_verdicts == _verdicts(fresh)


def test_the_python_door_gives_the_clis_verdicts(
    reference: tuple[Results, float], xdist_verdicts: dict[str, str]
) -> None:
    fresh, _ = reference
    reports = verifier.check(ROOT / "specs", cache_dir=CACHE)
    door = {f"{rep.spec}::{r.key}": r for rep in reports for r in rep.results}
    assert all(r.reused for r in door.values())  # the same keys as the CLI and pytest derive
    assert {k: r.status for k, r in door.items()} == _verdicts(fresh) == xdist_verdicts
