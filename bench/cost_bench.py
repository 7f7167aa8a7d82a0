"""The preflight cost model against measured time, for every bundled spec.

For each spec under ``specs/`` (``--full``: ``specs/**/full/`` too) a fresh subprocess loads
it, takes the estimate (:meth:`SpecRunner.estimate`: per claim the worst-case flops that limits
judge, the expected flops, and the peak memory) and then times ``SpecRunner.run()`` with no
cache and no stored verdicts (every claim verified, every model trained), imports excluded;
each claim's measured time is the sum of its results' ``duration_s``, and the child's peak
resident memory is read beside the largest memory estimate. The baseline, in the same run, is
this machine's rate: a float32 matmul of the size the small models use (256 x 256, one
thread), giving flops per second; ``predicted = expected flops / rate`` is set beside the
measured seconds, and their ratio printed (the worst case is shown too; it is no prediction of
time). Bounded: ``--timeout`` seconds per spec (a spec that overruns is reported, not waited
for). ``--json FILE`` keeps every figure, per claim, for calibrating the constants of
verifier/engine/cost.py; ``--estimate-only`` prints the estimates without running anything
(in this process); ``--measured FILE`` sets the estimates of the model as it is now beside
the measured seconds a previous ``--json`` run kept (for a constant changed after the run: the
ratio is then in sample, and says so).

    .venv/bin/python bench/cost_bench.py --timeout 600 --json /tmp/cost.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from verifier.spec import load_spec_file
from verifier.engine.runner import SpecRunner
from verifier.limits import Limits
limits = Limits(max_job_flops=10**30, max_job_memory=10**30)
runner = SpecRunner(load_spec_file(sys.argv[1]), limits)
runner.preflight()
claims = {k: {"flops": c.flops, "expected": c.likely, "memory": c.memory, "seconds": 0.0}
          for k, c in runner.estimate().items()}
out = {"claims": claims, "status": None, "seconds": 0.0, "rss": 0.0}
if sys.argv[2] == "run":
    start = time.perf_counter()
    report = runner.run()
    out["seconds"] = time.perf_counter() - start
    out["status"] = report.status
    for r in report.results:
        if r.claim_id in claims:
            claims[r.claim_id]["seconds"] += r.duration_s
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
print(json.dumps(out))
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


def measure(spec: Path, timeout: float, run: bool) -> dict[str, Any]:
    """The estimate and (``run``) the measured run time of one spec, in a fresh process."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(spec), "run" if run else "estimate"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:g} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:120]}
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def estimate_here(spec: Path) -> dict[str, Any]:
    """The estimate of one spec, in this process (nothing runs)."""
    from verifier.engine.runner import SpecRunner
    from verifier.limits import Limits
    from verifier.spec import load_spec_file

    limits = Limits(max_job_flops=10**30, max_job_memory=10**30)
    try:
        runner = SpecRunner(load_spec_file(spec), limits)
        runner.preflight()
    except Exception as exc:  # a bench row, not a crash: the spec's own error
        return {"error": f"{type(exc).__name__}: {exc}"[:120]}
    claims = {
        k: {"flops": c.flops, "expected": c.likely, "memory": c.memory, "seconds": 0.0}
        for k, c in runner.estimate().items()
    }
    return {"claims": claims, "status": None, "seconds": 0.0, "rss": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--full", action="store_true", help="include specs/**/full/")
    parser.add_argument("--estimate-only", action="store_true", help="run nothing")
    parser.add_argument("--json", type=Path, help="write every figure, per claim, here")
    parser.add_argument("--measured", type=Path, help="measured seconds from a --json run")
    parser.add_argument("paths", nargs="*", help="spec files (default: every bundled spec)")
    args = parser.parse_args()
    rate = machine_rate()
    if args.measured is not None:  # the measured run's own baseline, not this one's
        rate = float(json.loads(args.measured.read_text())["rate"])
    print(f"machine rate (baseline): {rate:.3g} flops/s (float32 256x256 matmul, 1 thread)")
    specs = [Path(p) for p in args.paths] or sorted(ROOT.glob("specs/**/*.spec.yaml"))
    if not args.full and not args.paths:
        specs = [s for s in specs if "full" not in s.parts]
    print(
        "| spec | worst case (flops) | expected (flops) | peak est. (MiB) | peak RSS (MiB) "
        "| predicted s | measured s | measured / predicted |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios: list[float] = []
    kept: dict[str, Any] = {"rate": rate, "specs": {}}
    for spec in specs:
        name = str(spec.relative_to(ROOT) if spec.is_absolute() else spec)
        if args.estimate_only or args.measured is not None:
            got = estimate_here(spec)
            if args.measured is not None and "claims" in got:
                old = json.loads(args.measured.read_text())["specs"].get(name, {})
                if "error" in old or "claims" not in old:
                    got = {"error": old.get("error", "not in the measured run")}
                else:
                    got["seconds"], got["rss"] = old["seconds"], old["rss"]
                    for claim_id, figures in got["claims"].items():
                        figures["seconds"] = old["claims"].get(claim_id, {}).get("seconds", 0.0)
        else:
            got = measure(spec, args.timeout, run=True)
        kept["specs"][name] = got
        if "error" in got:
            print(f"| {name} | - | - | - | - | - | {got['error']} | - |")
            continue
        claims = got["claims"].values()
        worst = sum(c["flops"] for c in claims)
        expected = sum(c["expected"] for c in claims)
        peak = max((c["memory"] for c in claims), default=0.0) / 2**20
        predicted, seconds = expected / rate, float(got["seconds"])
        ran = not args.estimate_only
        ratio = seconds / predicted if predicted > 0 and ran else float("nan")
        if ratio == ratio:
            ratios.append(ratio)
        mark = " x" if ratio == ratio and not 1 / 3 <= ratio <= 3 else ""
        print(
            f"| {name} | {worst:.3g} | {expected:.3g} | {peak:,.0f} | {got['rss'] / 2**20:,.0f} "
            f"| {predicted:.3g} | {seconds:.3g} | {ratio:.2f}{mark} |"
        )
        sys.stdout.flush()
    if args.json is not None:
        args.json.write_text(json.dumps(kept, indent=1))
    within = sum(1 / 3 <= r <= 3 for r in ratios)
    print(f"{within} of {len(ratios)} specs within a factor of 3 of the prediction")


if __name__ == "__main__":
    main()
