"""Shared fixtures: paths and a helper to run the CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m verifier.cli ARGS`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from verifier.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


@pytest.fixture
def write_spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a spec text to a file named ``NAME.spec.yaml`` in a temp folder; return its path."""

    def write(text: str, name: str = "case") -> Path:
        path = tmp_path / f"{name}.spec.yaml"
        path.write_text(text)
        return path

    return write


def junit_verdicts(junit: Path) -> dict[str, str]:
    """``spec::claim`` -> passed | failed | xfailed | skipped, from a pytest JUnit XML file
    (JUnit splits the item id into classname, ending in the spec, and name)."""
    verdicts = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            verdict = "failed"
        elif (skipped := case.find("skipped")) is not None:
            verdict = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            verdict = "passed"
        spec = str(case.get("classname")).rsplit(".", 1)[-1]
        verdicts[f"{spec}::{case.get('name')}"] = verdict
    return verdicts


FIXTURES = ROOT / "tests" / "fixtures"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Fixture specs (some fail on purpose) are collected only when named on the command line."""
    if FIXTURES not in (collection_path, *collection_path.parents):
        return None
    named = [Path(a.split("::")[0]).resolve() for a in config.args]
    return not any(FIXTURES in (p, *p.parents) for p in named)


BUNDLED_DOORS = ROOT / "tests" / "verifier" / "test_bundled_doors.py"
BUNDLED_RUNS = pytest.StashKey["BundledRuns"]()


# At nice 10, so that the tests in front (servers, timeouts) come first and the runs take the CPU
# they leave. The runs get their own process group (stop() ends their children) but stay in the
# suite's session: the kernel's autogroups are per session, and nice counts only inside one.
RUNNER = ["nice", "-n", "10", sys.executable, "-m", "tests.verifier.bundled_runs"]


class BundledRuns:
    """The background process of :mod:`tests.verifier.bundled_runs` and its output folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with (folder / "runs.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [*RUNNER, str(folder)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def wait(self, timeout: float) -> None:
        """Until both runs have ended (each records its own end in ``<run>.done``)."""
        self.proc.wait(timeout)

    def stop(self) -> None:
        """End the runs and their children if the session ends first."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """When the bundled-doors test is selected: start its two fresh runs of specs/ in the
    background now, and move its items after the rest of tests/ (and before the spec items,
    which then reuse the reference's stored verdicts), so that the runs overlap the suite."""
    doors = [item for item in items if item.path == BUNDLED_DOORS]
    if not doors or config.option.collectonly or hasattr(config, "workerinput"):
        return  # nothing to run, or an xdist worker (its fixture runs them in place)
    rest = [item for item in items if item.path != BUNDLED_DOORS]
    first_spec = next((i for i, item in enumerate(rest) if item.path.suffix == ".yaml"), len(rest))
    items[:] = rest[:first_spec] + doors + rest[first_spec:]
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    config.stash[BUNDLED_RUNS] = BundledRuns(factory.mktemp("bundled-runs"))


def pytest_unconfigure(config: pytest.Config) -> None:
    runs = config.stash.get(BUNDLED_RUNS, None)
    if runs is not None:
        runs.stop()
