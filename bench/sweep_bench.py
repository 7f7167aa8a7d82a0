"""Sweep executor benchmark: a 32-point construction sweep with --jobs 1 against --jobs 2.

Runs the same spec in this process through ``verifier.engine.executors.run_specs``, after one
untimed warm-up point (imports and first-touch costs, which a ``--jobs 1`` CLI run pays once too):

- ``jobs 1``: in-process, torch/BLAS with every core (the default a user gets);
- ``jobs 1, 1 thread``: in-process with one torch/BLAS thread (the per-point work a worker does);
- ``jobs 2``: a 2-worker spawned pool, one thread each, worker start-up (a fresh interpreter
  importing torch) included; the time to its first finished point is printed as well.

Every run must give the same 32 passing points. Ratios: ``jobs 1 / jobs 2`` (what a user gains
from ``--jobs 2``; the target is about 1.8x on 2 cores) and ``jobs 1 (1 thread) / jobs 2`` (the
pool's scaling, which the first ratio undercuts by as much as BLAS threads already parallelise).

    .venv/bin/python bench/sweep_bench.py [--repeats 1] [--sizes 512,768,...]
"""

from __future__ import annotations

import argparse
import os
import time

from verifier.engine.executors import run_specs, set_threads
from verifier.engine.report import Report
from verifier.spec import load_spec_text

# 32 points: 8 sizes x 4 seeds, each an exact code_dim search plus a float64 forward pass over
# all N*R facts.
SIZES = "512, 768, 1024, 1280, 1536, 2048, 2560, 3072"
SPEC = """\
name: sweep-bench
instance: {{kind: bijection, entities: 256, relations: 4, seed: 0}}
claims:
  - id: exact
    check: construction
    construction: {{name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}}
    sweep: {{N: [{sizes}], seed: [1, 2, 3, 4]}}
    expect: {{accuracy: 1.0, margin: ">= 0.5"}}
"""


def timed(text: str, jobs: int) -> tuple[float, float, Report]:
    """Wall time, time to the first finished point, and the report of one run."""
    spec = load_spec_text(text, file="sweep-bench")
    start = time.perf_counter()
    first: list[float] = []

    def on_point(spec_name: str, key: str, done: int, total: int, status: str) -> None:
        if not first:
            first.append(time.perf_counter() - start)

    [report] = run_specs([spec], jobs=jobs, on_point=on_point)
    return time.perf_counter() - start, first[0], report


def strip(report: Report) -> list[dict[str, object]]:
    return [r.model_dump(exclude={"duration_s"}) for r in report.results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sizes", default=SIZES, help="comma-separated N values (8 of them)")
    args = parser.parse_args()
    text = SPEC.format(sizes=args.sizes)
    cores = os.cpu_count() or 1
    warm = text.replace(f"N: [{args.sizes}], seed: [1, 2, 3, 4]", "N: [256], seed: [1]")
    timed(warm, 1)
    print(f"{cores} cores, load average {os.getloadavg()[0]:.2f} before the runs")
    for i in range(args.repeats):
        t1, _, r1 = timed(text, 1)
        set_threads(1)
        t1_single, _, r1_single = timed(text, 1)
        set_threads(cores)
        t2, first2, r2 = timed(text, 2)
        if not (strip(r1) == strip(r1_single) == strip(r2)):
            raise SystemExit("jobs 1 and jobs 2 disagree")
        if len(r1.results) != 32 or not r1.passed:
            raise SystemExit(f"expected 32 passing points, got {len(r1.results)}")
        print(
            f"run {i}: 32 points | jobs 1: {t1:.2f} s | jobs 1, 1 thread: {t1_single:.2f} s | "
            f"jobs 2: {t2:.2f} s (first point after {first2:.2f} s) | "
            f"jobs1/jobs2 = {t1 / t2:.2f}x | jobs1(1 thread)/jobs2 = {t1_single / t2:.2f}x | "
            f"load average {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
