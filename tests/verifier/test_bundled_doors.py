"""Every bundled spec (specs/, without full/) through every door, with the same verdicts.

Two runs (tests/verifier/bundled_runs.py: they start in the background as soon as the suite has
collected, and these tests run after the rest of tests/):

- ``verifier check specs/ --no-reuse``: serial, every claim verified, the reference;
- ``pytest specs -n 2`` (two xdist workers, each spec on one) with ``VERIFIER_TRAIN_ORDER=1``:
  the example order enters the keys of the training and transfer claims and their dependents
  only, so on a fresh clone (CI) each of those trains again with its examples in another
  order, a different float32 trajectory (the nearest thing to another CPU that one machine
  has), and must give the serial verdict; the other claims reuse the reference's verdicts.
  (A second thread changes no bit at these sizes: test_train_stacked.py.) Those runs store
  beside the reference, never over it.

Then, reusing what the reference stored:

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
import time
from pathlib import Path
from typing import Any

import pytest

import verifier
from tests.conftest import BUNDLED_RUNS, ROOT, junit_verdicts, run_cli
from tests.verifier import bundled_runs

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
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the two fresh runs, once both have ended: started in the background when
    the suite collected (tests/conftest.py), or here where none was (an xdist worker)."""
    background = request.config.stash.get(BUNDLED_RUNS, None)
    if background is None:
        folder = tmp_path_factory.mktemp("bundled-runs")
        bundled_runs.main(folder)
        return folder
    background.wait(timeout=2 * bundled_runs.TIMEOUT_S)
    return background.folder


def _ended(runs: Path, name: str) -> dict[str, Any]:
    """How run ``name`` ended; it must have ended with exit 0."""
    done: dict[str, Any] = json.loads((runs / f"{name}.done").read_text())
    assert done["returncode"] == 0, done["tail"]
    return done


@pytest.fixture(scope="module")
def reference(runs: Path) -> tuple[Results, float]:
    """The fresh serial CLI run of specs/: its results and wall time."""
    elapsed = float(_ended(runs, "reference")["seconds"])
    results = _results(runs / "reference.json")
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
def xdist_verdicts(runs: Path) -> dict[str, str]:
    """The ``pytest specs -n 2`` run on another float32 trajectory: item -> verdict."""
    _ended(runs, "xdist")
    return junit_verdicts(runs / "xdist.xml")


def test_pytest_xdist_on_another_trajectory_gives_the_serial_verdicts(
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
