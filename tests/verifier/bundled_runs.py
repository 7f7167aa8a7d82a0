"""The two fresh runs of specs/ that tests/verifier/test_bundled_doors.py compares, one after
the other in a background process that the suite starts as soon as it has collected
(tests/conftest.py): they take minutes of one core each, which the rest of tests/ (mostly
servers and subprocesses waiting on each other) leaves free.

1. the reference: ``verifier check specs --no-reuse`` serially, its JSON report and wall time;
2. ``pytest specs -n 2`` with :data:`ANOTHER_TRAJECTORY`, its JUnit XML. The example order is
   in the keys of the training and transfer claims (and their dependents) only, so on a fresh
   clone those train and verify again, in another order, and the others reuse the verdicts the
   reference has just stored.

``python -m tests.verifier.bundled_runs OUT`` writes ``reference.json``, ``xdist.xml`` and one
``<run>.done`` file per run (return code, wall seconds, output tail) into OUT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 1800
# the examples in another order: another float32 trajectory. (2 threads give the bits of 1 at
# these sizes, tests/verifier/test_train_stacked.py, and would oversubscribe 2 xdist workers.)
ANOTHER_TRAJECTORY = {"VERIFIER_TRAIN_ORDER": "1"}


def _run(name: str, args: list[str], env: dict[str, str], out: Path) -> None:
    """Run one command from the repository root; record how it ended in ``OUT/<name>.done``."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=TIMEOUT_S
        )
        code, tail = proc.returncode, (proc.stdout[-3000:] + proc.stderr[-3000:])
    except subprocess.TimeoutExpired:
        code, tail = -1, f"no end within {TIMEOUT_S} s"
    record = {"returncode": code, "seconds": time.perf_counter() - start, "tail": tail}
    (out / f"{name}.done").write_text(json.dumps(record))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    cli = [sys.executable, "-c", "from verifier.cli import main; main()"]
    reference = ["check", "specs", "--no-reuse", "--no-progress", "--json"]
    _run("reference", [*cli, *reference, str(out / "reference.json")], env, out)
    xdist = ["specs", "-n", "2", "-p", "no:cacheprovider", "-q"]
    pytest = [sys.executable, "-m", "pytest", *xdist, f"--junitxml={out / 'xdist.xml'}"]
    _run("xdist", pytest, {**env, **ANOTHER_TRAJECTORY}, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
