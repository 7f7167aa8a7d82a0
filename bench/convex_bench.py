"""P1 over all targets at N = 4096, m = 64 (ours) against a fresh cp.Problem per target (naive,
on a sample of 64 targets, same run); P2 time per subject at N = 1024, R = 4 (G1 at m = 40,
fresh bijections re-embedded from the old subject rows, every fact confirmed by the forward pass).

Run: .venv/bin/python bench/convex_bench.py [--skip-p1] [--skip-p2] [--p2-n N] [--p2-m M]
"""

from __future__ import annotations

import argparse
import os
import time

import cvxpy as cp
import numpy as np

from verifier.constructions.codebooks import codebook
from verifier.constructions.geometric import build_geometric
from verifier.convex.codebook_margin import codebook_margin
from verifier.convex.reembed import reembed
from verifier.facts.bijections import BijectionFacts
from verifier.seeds import Stream, rng


def naive_target(codes: np.ndarray, t: int, box: float) -> float:
    """A fresh problem with all N-1 constraints."""
    diff = np.delete(codes[t] - codes, t, axis=0)
    v, gamma = cp.Variable(codes.shape[1]), cp.Variable()
    problem = cp.Problem(cp.Maximize(gamma), [diff @ v >= gamma, cp.abs(v) <= box])
    problem.solve(solver="HIGHS")
    assert problem.status == cp.OPTIMAL
    return float(gamma.value)


def bench_p1(n: int, m: int, sample: int) -> None:
    codes = codebook("rademacher", n, m, seed=0)
    box = float(np.abs(codes).max())
    targets = rng(0, Stream.BENCH_SAMPLE, 99).choice(n, sample, replace=False)
    start = time.perf_counter()
    naive = [naive_target(codes, int(t), box) for t in targets]
    naive_s = (time.perf_counter() - start) / sample
    start = time.perf_counter()
    ours = codebook_margin(codes)
    ours_s = (time.perf_counter() - start) / n
    by_target = {c.target: c for c in ours.certificates}
    for t, value in zip(targets, naive, strict=True):
        c = by_target[int(t)]
        assert c.lower - 1e-6 <= value <= c.upper + 1e-6, (t, c.lower, value, c.upper)
    gap = max(c.upper - c.lower for c in ours.certificates)
    print(
        f"P1 N={n} m={m}: ours {ours_s * 1e3:.2f} ms/target over all {n} targets "
        f"({ours.solves} solves), naive {naive_s * 1e3:.1f} ms/target on {sample} targets, "
        f"ratio {naive_s / ours_s:.1f}x; margin in [{ours.margin_lower:.6g}, "
        f"{ours.margin_upper:.6g}], max gap {gap:.2g}"
    )


def bench_p2(n: int, r: int, m: int, margin: float) -> None:
    facts = BijectionFacts(n, r, seed=0)
    model, _ = build_geometric(facts, codebook("rademacher", n, m, seed=0))
    perms = [rng(0, Stream.TRANSFER, i).permutation(n) for i in range(r)]
    new = facts.with_perms(np.stack(perms))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    res = reembed(model, new, model.W_E.detach().numpy()[:n].copy(), margin=margin)
    total = time.perf_counter() - start
    rows = r * (n - 1 + model.cfg.d_mlp)
    print(
        f"P2 N={n} R={r} m={m} (d={model.cfg.d_model}, d_mlp={model.cfg.d_mlp}): "
        f"{total / n * 1e3:.1f} ms/subject ({total:.1f} s total), found={res.found}, "
        f"accuracy={res.accuracy:.4f}, forward margin={res.margin:.4g} (asked {margin}), "
        f"rounds={res.rounds}, solves={res.solves} ({res.solves / n:.1f}/subject), "
        f"largest working set {res.rows_used} of {rows} rows, "
        f"max violation {res.max_violation:.2g}, load {load:.1f} -> {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--sample", type=int, default=64)
    parser.add_argument("--p2-n", type=int, default=1024)
    parser.add_argument("--p2-r", type=int, default=4)
    parser.add_argument("--p2-m", type=int, default=40)
    parser.add_argument("--p2-margin", type=float, default=0.1)
    parser.add_argument("--skip-p1", action="store_true")
    parser.add_argument("--skip-p2", action="store_true")
    args = parser.parse_args()
    if not args.skip_p1:
        bench_p1(args.n, args.m, args.sample)
    if not args.skip_p2:
        bench_p2(args.p2_n, args.p2_r, args.p2_m, args.p2_margin)
