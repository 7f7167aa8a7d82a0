"""Incremental verification benchmark: `verifier check specs/` fresh, then again on the same tree.

Every run is the real CLI in a subprocess, from the repository root, with one cache folder:

1. ``first``: ``verifier check specs/ --no-reuse`` - every claim verified (training loads its
   checkpoints when the folder has them; ``--cold`` starts from an empty folder, so the first
   run trains as a fresh clone's does);
2. ``second``: the same command without ``--no-reuse``: the baseline for the ratio is the first
   run, measured in the same process; the verdicts must be identical and all reused;
3. ``edit``: specs/ copied, one claim edited (``exact-recall`` of specs/bounds/sandwich.spec.yaml,
   which three bound claims read through ``against:``); what re-ran is reported;
4. ``source``: for a few engine files, an edited copy of the package keys every bundled point
   (no run: the keys decide) and the count of points that would re-run is reported.

    .venv/bin/python bench/reuse_bench.py [--cold]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EDITED_SPEC = "bounds/sandwich.spec.yaml"
SOURCE_EDITS = (
    "checks/bound.py",
    "train/__init__.py",
    "convex/solver.py",
    "spec/__init__.py",
    "cli.py",
)


def check(specs: Path, cache: Path, out: Path, *extra: str) -> tuple[float, list[dict[str, Any]]]:
    """Wall time and results of one ``verifier check`` run."""
    start = time.perf_counter()
    cli = [sys.executable, "-c", "from verifier.cli import main; main()"]
    options = ["--no-progress", "--cache-dir", str(cache), "--json", str(out), *extra]
    proc = subprocess.run(
        [*cli, "check", str(specs), *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"verifier check failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    results = [
        {"name": f"{rep['spec']}::{r['key']}", **r} for rep in json.loads(out.read_text())
        for r in rep["results"]
    ]  # fmt: skip
    return elapsed, results


def verdict(r: dict[str, Any]) -> tuple[Any, ...]:
    return r["name"], r["status"], r["measured"]


def source_edits(cache: Path) -> dict[str, tuple[int, int]]:
    """Edited engine file -> (points that would re-run, points), from keys alone."""
    from verifier.engine.runner import SpecRunner
    from verifier.engine.session import load_specs
    from verifier.engine.verdicts import VerdictStore
    from verifier.limits import Limits

    specs = load_specs([ROOT / "specs"], Limits(), include_full=False)
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for edit in SOURCE_EDITS:
            root = Path(tmp) / edit.replace("/", "_") / "verifier"
            shutil.copytree(ROOT / "verifier", root, ignore=shutil.ignore_patterns("__pycache__"))
            with (root / edit).open("a") as f:
                f.write("\n# an edit\n")
            store = VerdictStore(str(cache), root=root)
            total = rerun = 0
            for spec in specs:
                runner = SpecRunner(spec, verdicts=store)
                for points in runner.points.values():
                    for point in points:
                        total += 1
                        key = runner.key_of(point)
                        rerun += key is None or not store.path(key).is_file()
            counts[edit] = (rerun, total)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="start from an empty cache folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "cache"
        if not args.cold and (ROOT / ".verifier" / "artifacts" / "training").is_dir():
            cache.mkdir()  # checkpoints shared with the repository's folder, verdicts not
            (cache / "training").symlink_to(ROOT / ".verifier" / "artifacts" / "training")
        first_s, first = check(ROOT / "specs", cache, work / "first.json", "--no-reuse")
        second_s, second = check(ROOT / "specs", cache, work / "second.json")
        assert [verdict(r) for r in second] == [verdict(r) for r in first], "verdicts differ"
        assert all(r["reused"] for r in second), "a result was not reused"
        print(f"first  (--no-reuse): {first_s:7.1f} s, {len(first)} results")
        print(f"second (reuse):      {second_s:7.1f} s, {sum(r['reused'] for r in second)} reused")
        print(f"ratio second/first:  {second_s / first_s:.3f}")

        specs = work / "specs"
        shutil.copytree(ROOT / "specs", specs)
        path = specs / EDITED_SPEC
        path.write_text(path.read_text().replace('margin: ">= 0.5"}', 'margin: ">= 0.45"}', 1))
        edit_s, edited = check(specs, cache, work / "edit.json")
        reran = [r["name"] for r in edited if not r["reused"]]
        print(f"edit one claim:      {edit_s:7.1f} s, re-ran {len(reran)}: {', '.join(reran)}")

        for file, (rerun, total) in source_edits(cache).items():
            print(f"edit verifier/{file:<17} re-runs {rerun:3d} of {total} points")


if __name__ == "__main__":
    main()
