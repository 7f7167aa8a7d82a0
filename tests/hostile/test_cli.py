"""The hostile corpus through the CLI door: ``verifier check FILE`` on every case.

Each case must give its exit code and phrase, print no traceback, answer within the per-case
limit, and write nothing into the working directory, ``HOME`` or ``TMPDIR`` but the documented
verdict cache (``./.verifier/artifacts/verdicts/<2 hex>/<64 hex>.json``, for the cases that verify)
and the cache's own ``./.verifier/.gitignore``.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.hostile.conftest import CASE_LIMIT_S, snapshot
from tests.hostile.corpus import CASES, Case

CLI_CASES = [c for c in CASES if c.cli is not None]
CACHE = Path(".verifier", "artifacts")  # the CLI's default cache folder, under the working dir
VERDICT_FILE = re.compile(r"verdicts/([0-9a-f]{2})/\1[0-9a-f]{62}\.json")


def _args(case: Case, file: Path, empty: Path) -> list[str]:
    if not case.cli_args:
        return ["check", str(file)]
    return ["check", *(a.format(file=file, empty=empty) for a in case.cli_args)]


def _problem(case: Case, answer: dict[str, object]) -> str | None:
    out = str(answer["out"])
    if answer["crash"] is not None or "Traceback" in out:
        return f"a traceback ({answer['crash']}): {out[-300:]}"
    if answer["code"] != case.cli:
        return f"exit {answer['code']}, expected {case.cli}: {out[-300:]}"
    phrase = case.cli_phrase or case.phrase
    if phrase not in out:
        return f"{phrase!r} is not in the output: {out[-300:]}"
    return None


def test_corpus_through_the_cli(tmp_path: Path) -> None:
    assert len(CLI_CASES) >= 120
    work, cases, empty = tmp_path / "work", tmp_path / "cases", tmp_path / "empty"
    for folder in (work / "home", work / "tmp", cases, empty):
        folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env.update(HOME=str(work / "home"), TMPDIR=str(work / "tmp"), PYTHONPATH=str(ROOT))
    before = snapshot(work, skip=work / CACHE)
    log = (tmp_path / "driver.log").open("wb")
    driver = subprocess.Popen(
        [sys.executable, "-m", "tests.hostile.cli_driver"],
        cwd=work,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert driver.stdin is not None and driver.stdout is not None
    failures: list[str] = []
    slowest = (0.0, "")
    try:
        for case in CLI_CASES:
            file = cases / f"{case.id}.spec.yaml"
            file.write_bytes(case.body)
            driver.stdin.write((json.dumps(_args(case, file, empty)) + "\n").encode())
            driver.stdin.flush()
            start = time.monotonic()
            ready, _, _ = select.select([driver.stdout], [], [], CASE_LIMIT_S * 4)  # 1st: imports
            elapsed = time.monotonic() - start
            if not ready:
                failures.append(f"{case.id}: no answer within {CASE_LIMIT_S * 4:g} s (a hang)")
                break
            answer = json.loads(driver.stdout.readline())
            if case is not CLI_CASES[0] and elapsed > CASE_LIMIT_S:
                failures.append(f"{case.id}: took {elapsed:.1f} s, over {CASE_LIMIT_S:g} s")
            slowest = max(slowest, (elapsed, case.id))
            if (problem := _problem(case, answer)) is not None:
                failures.append(f"{case.id}: {problem}")
    finally:
        driver.kill()
        driver.wait(10)
        log.close()
    print(f"{len(CLI_CASES)} CLI cases; slowest {slowest[1]} at {slowest[0]:.2f} s")
    assert not failures, "\n".join(failures)
    outside = snapshot(work, skip=work / CACHE)
    ignore = outside.pop(str(CACHE.parent / ".gitignore"), None)  # the cache keeps out of git
    assert ignore is None or (work / CACHE.parent / ".gitignore").read_text().endswith("*\n")
    assert outside == before, "the CLI wrote files outside the spec folder"
    cached = [p.relative_to(work / CACHE).as_posix() for p in (work / CACHE).rglob("*")]
    files = [name for name in cached if (work / CACHE / name).is_file()]
    assert all(VERDICT_FILE.fullmatch(name) for name in files), files
