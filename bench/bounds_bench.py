"""Benchmark: every registry quantity at N = 10^9, cached lambdify against ``subs().evalf()``.

Run: ``.venv/bin/python bench/bounds_bench.py [--repeats 200]``. Prints, per quantity, the
time of one evaluation through :func:`verifier.theory.evaluate_expression` (lambdified once,
cached) and through the naive sympy path ``expr.subs(values).evalf()`` (with N as a sympy
Float; with N as an exact Integer sympy would build gamma(N + 1) = N! exactly), their ratio,
and that the two agree. A final line times the exact-integer naive path at a small N to show
why it is avoided.
"""

from __future__ import annotations

import argparse
import math
import time

import sympy as sp

from verifier.theory import compiled, evaluate_expression, theorems

VALUES: dict[str, int | float] = {
    "N": 10**9,
    "R": 8,
    "k": 3,
    "A": 10**9,
    "m": 128,
    "p": 16,
    "delta": 0.01,
    "gamma": 0.5,
    "P": 10**12,
}


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of one call over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for theorem in theorems():
        supplied = frozenset(VALUES) & {p.name for p in theorem.params}
        for name, expr in theorem.resolved(supplied).items():
            if name.startswith("default:"):
                continue
            subs = {s: sp.Float(VALUES[s.name]) for s in expr.free_symbols}
            fast = evaluate_expression(expr, VALUES)  # compiles once (first call, not timed below)
            slow = float(expr.subs(subs).evalf())
            t_fast = timed(lambda e=expr: evaluate_expression(e, VALUES), args.repeats)
            t_slow = timed(lambda e=expr, s=subs: e.subs(s).evalf(), max(3, args.repeats // 20))
            ok = math.isclose(float(fast), slow, rel_tol=1e-9)
            rows.append((f"{theorem.id}.{name}", t_fast, t_slow, ok))
    print(f"N = {VALUES['N']:.0e}; {len(rows)} quantities; median of repeated calls")
    print(f"{'quantity':40s} {'cached (us)':>12s} {'subs+evalf (us)':>16s} {'ratio':>8s} agree")
    for name, t_fast, t_slow, ok in rows:
        print(f"{name:40s} {t_fast * 1e6:12.2f} {t_slow * 1e6:16.1f} {t_slow / t_fast:8.0f} {ok}")
    total_fast = sum(r[1] for r in rows)
    total_slow = sum(r[2] for r in rows)
    print(
        f"all quantities: cached {total_fast * 1e3:.3f} ms, naive {total_slow * 1e3:.1f} ms, "
        f"ratio {total_slow / total_fast:.0f}x; every pair agrees: {all(r[3] for r in rows)}"
    )
    info = compiled.cache_info()
    print(f"lambdify cache: {info.misses} compiled, {info.hits} hits")
    n = sp.Symbol("N", positive=True, integer=True)
    for small in (10**5, 3 * 10**5):
        start = time.perf_counter()
        float((sp.loggamma(n + 1) / sp.log(2)).subs(n, small).evalf())
        print(
            f"naive exact-integer subs of log2(N!) at N = {small}: "
            f"{time.perf_counter() - start:.3f} s (builds N!)"
        )


if __name__ == "__main__":
    main()
