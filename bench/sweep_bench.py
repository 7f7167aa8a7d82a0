"""Sweep executor benchmark: a 32-point construction sweep with --jobs 1 against --jobs 2.

Runs the same spec twice in this process through ``verifier.executors.run_specs``: first
in-process (``jobs=1``, the baseline), then on a 2-worker spawned process pool (``jobs=2``),
checks that both reports agree point for point, and prints the wall times and their ratio
(target about 1.8x on 2 cores; the pool pays worker start-up, which imports torch).

    .venv/bin/python bench/sweep_bench.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import time

from verifier.executors import run_specs
from verifier.report import Report
from verifier.spec import load_spec_text

# 32 points: 8 sizes x 4 seeds, each an exact code_dim search plus a full forward pass.
SPEC = """\
name: sweep-bench
instance: {kind: bijection, entities: 256, relations: 4, seed: 0}
claims:
  - id: exact
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}
    sweep: {N: [128, 192, 256, 384, 512, 768, 1024, 1536], seed: [1, 2, 3, 4]}
    expect: {accuracy: 1.0, margin: ">= 0.5"}
"""


def timed(jobs: int) -> tuple[float, Report]:
    spec = load_spec_text(SPEC, file="sweep-bench")
    start = time.perf_counter()
    [report] = run_specs([spec], jobs=jobs)
    return time.perf_counter() - start, report


def strip(report: Report) -> list[dict[str, object]]:
    return [r.model_dump(exclude={"duration_s"}) for r in report.results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    for i in range(args.repeats):
        t1, r1 = timed(1)
        t2, r2 = timed(2)
        if strip(r1) != strip(r2):
            raise SystemExit("jobs 1 and jobs 2 disagree")
        if len(r1.results) != 32 or not r1.passed:
            raise SystemExit(f"expected 32 passing points, got {len(r1.results)}")
        print(
            f"run {i}: 32 points, jobs 1: {t1:.2f} s, jobs 2: {t2:.2f} s, "
            f"speed-up jobs1/jobs2 = {t1 / t2:.2f}x"
        )


if __name__ == "__main__":
    main()
