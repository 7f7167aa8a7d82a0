"""The preflight cost model against measured time, for every bundled spec.

For each spec under ``specs/`` (``--full``: ``specs/**/full/`` too) a fresh subprocess loads
it, takes the estimate (:meth:`SpecRunner.estimate`, summed over claims) and then times
``SpecRunner.run()`` with no cache and no stored verdicts (every claim verified, every model
trained), imports excluded. The baseline, in the same run, is this machine's rate: a float32
matmul of the size the small models use (256 x 256, one thread), giving flops per second;
``predicted = flops / rate`` is set beside the measured seconds, and their ratio printed.
Bounded: ``--timeout`` seconds per spec (a spec that overruns is reported, not waited for).

    .venv/bin/python bench/cost_bench.py --timeout 600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, time, torch
torch.set_num_threads(1)
from verifier.spec import load_spec_file
from verifier.engine.runner import SpecRunner
from verifier.limits import Limits
limits = Limits(max_job_flops=10**30, max_job_memory=10**30)
runner = SpecRunner(load_spec_file(sys.argv[1]), limits)
runner.preflight()
flops = sum(c.flops for c in runner.estimate().values())
start = time.perf_counter()
report = runner.run()
print(json.dumps({"flops": flops, "seconds": time.perf_counter() - start,
                  "status": report.status}))
"""


def machine_rate(size: int = 256, seconds: float = 2.0) -> float:
    """float32 matmul flops per second on one thread (the baseline)."""
    torch.set_num_threads(1)
    a, b = torch.randn(size, size), torch.randn(size, size)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2.0 * size**3 * count / (time.perf_counter() - start)


def measure(spec: Path, timeout: float) -> dict[str, object]:
    """The estimate and the measured run time of one spec, in a fresh process."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:g} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1][:120]}
    data: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--full", action="store_true", help="include specs/**/full/")
    parser.add_argument("paths", nargs="*", help="spec files (default: every bundled spec)")
    args = parser.parse_args()
    rate = machine_rate()
    print(f"machine rate (baseline): {rate:.3g} flops/s (float32 256x256 matmul, 1 thread)")
    specs = [Path(p) for p in args.paths] or sorted(ROOT.glob("specs/**/*.spec.yaml"))
    if not args.full and not args.paths:
        specs = [s for s in specs if "full" not in s.parts]
    print("| spec | estimate (flops) | predicted s | measured s | measured / predicted |")
    print("|---|---|---|---|---|")
    ratios = []
    for spec in specs:
        name = spec.relative_to(ROOT) if spec.is_absolute() else spec
        got = measure(spec, args.timeout)
        if "error" in got:
            print(f"| {name} | - | - | {got['error']} | - |")
            continue
        flops, seconds = float(got["flops"]), float(got["seconds"])  # type: ignore[arg-type]
        predicted = flops / rate
        ratio = seconds / predicted if predicted > 0 else float("inf")
        ratios.append(ratio)
        print(f"| {name} | {flops:.3g} | {predicted:.3g} | {seconds:.3g} | {ratio:.3g} |")
        sys.stdout.flush()
    within = sum(1 / 3 <= r <= 3 for r in ratios)
    print(f"{within} of {len(ratios)} specs within a factor of 3 of the prediction")


if __name__ == "__main__":
    main()
