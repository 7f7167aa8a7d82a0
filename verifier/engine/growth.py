"""Growth expectations over a sweep: one extra result, ``claim-id[growth]``, per swept claim.

A claim with ``expect: {growth: {measure, over, law, ...}}`` is judged over all its points by
:func:`verifier.engine.fits.judge_growth` (docs/theory.md sections 3-6 state the laws). Points that
differ in swept fields other than ``over`` and ``seed`` form separate groups, each fitted on its own
(``seed`` values are repeats of one x); the growth result passes only if every group passes, fails
if any fails, and is ``undecided`` otherwise - including when a point has no measured value for the
measure. Bootstrap draws use ``rng(spec seed, Stream.FIT, law)``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from verifier.engine.fits import GrowthSpec, GrowthVerdict, judge_growth, parse_growth
from verifier.engine.report import ClaimResult, ExpectationResult, Status
from verifier.spec import ClaimBase, Spec

GROWTH_SUFFIX = "[growth]"


def growth_key(claim_id: str) -> str:
    """The growth result's key: ``claim-id[growth]``."""
    return f"{claim_id}{GROWTH_SUFFIX}"


def growth_spec(claim: ClaimBase) -> GrowthSpec | None:
    """The claim's parsed growth expectation, if it has one (and a sweep)."""
    raw = claim.expect.get("growth")
    if raw is None or not claim.sweep:
        return None
    return parse_growth(raw, claim.known_measures(), claim.LABEL_MEASURES, list(claim.sweep))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def growth_result(spec: Spec, claim: ClaimBase, points: list[ClaimResult]) -> ClaimResult:
    """Judge the claim's growth expectation over its point results."""
    start = time.perf_counter()
    g = growth_spec(claim)
    if g is None:
        raise ValueError(f"claim {claim.id!r} has no growth expectation on a sweep")
    groups: dict[tuple[tuple[str, Any], ...], list[tuple[float, float]]] = {}
    missing: list[str] = []
    for r in points:
        point = r.point or {}
        x, y = _number(point.get(g.over)), _number(r.measured.get(g.measure))
        if x is None or y is None or r.status == "error":
            missing.append(r.key)
            continue
        fixed = tuple((k, v) for k, v in point.items() if k not in (g.over, "seed"))
        groups.setdefault(fixed, []).append((x, y))
    verdicts: list[tuple[dict[str, Any], GrowthVerdict]] = []
    for fixed, xy in groups.items():
        v = judge_growth(
            [x for x, _ in xy],
            [y for _, y in xy],
            g.law,
            g.against,
            g.factor,
            seed=spec.instance.seed,
        )
        verdicts.append((dict(fixed), v))
    status: Status
    kinds = {v.verdict for _, v in verdicts}
    if "failed" in kinds:
        status = "failed"
    elif missing or not verdicts or "undecided" in kinds:
        status = "undecided"
    else:
        status = "passed"
    reasons = [
        (f"{', '.join(f'{k}={v}' for k, v in fixed.items())}: " if fixed else "") + v.reason
        for fixed, v in verdicts
    ]
    if missing:
        reasons.append(f"no numeric {g.measure} at {len(missing)} points: {', '.join(missing)}")
    best = [
        min((f for f in v.fits if f.skipped is None), key=lambda f: f.held_out_error).law
        for _, v in verdicts
        if any(f.skipped is None for f in v.fits)
    ]
    expected = f"{g.law} over {g.over}, beating {', '.join(g.against)} by {g.factor:g}x"
    ok = None if status == "undecided" else status == "passed"
    if claim.xfail and status in ("passed", "failed"):
        status = "xpassed" if status == "passed" else "xfailed"
    first = points[0] if points else None
    return ClaimResult(
        key=growth_key(claim.id),
        claim_id=claim.id,
        check=claim.check_kind(),
        status=status,
        method="empirical",
        measured={
            "best_law": best[0] if len(set(best)) == 1 else best,
            **{
                f"held_out_error_{f.law}": f.held_out_error
                for f in (verdicts[0][1].fits if len(verdicts) == 1 else [])
                if math.isfinite(f.held_out_error)
            },
        },
        expectations=[
            ExpectationResult(
                measure="growth", expected=expected, measured=best, ok=ok, detail="; ".join(reasons)
            )
        ],
        evidence={
            "growth": {
                "measure": g.measure,
                "over": g.over,
                "law": g.law,
                "against": list(g.against),
                "factor": g.factor,
            },
            "groups": [{"fixed": fixed, **v.to_evidence()} for fixed, v in verdicts],
            "points": [r.key for r in points],
            "missing": missing,
            "bootstrap_seed": spec.instance.seed,
        },
        message="; ".join(reasons),
        xfail=claim.xfail,
        file=first.file if first else spec.source.file,
        line=first.line if first else None,
        duration_s=time.perf_counter() - start,
    )
