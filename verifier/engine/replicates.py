"""Replicated claims: one measurement per seed, judged together (docs/theory.md section 7).

A training claim with ``seeds: [0, 1, 2]`` trains one replicate per seed (the instance redrawn
and the model re-initialised from it); its transfer claims inherit the replicates. ``require``
says how the replicates meet ``expect``:

- ``all`` (default): every expectation holds on every replicate;
- ``majority``: more than half of the replicates meet every expectation (each replicate is
  judged as a whole, so two expectations cannot pass on different replicates);
- ``median``: each expectation holds on the median over replicates.

A claim with any failed expectation is ``failed``, whatever else is unmeasured; it is
``undecided`` only where nothing failed and something could not be decided (a measure left
unmeasured, such as ``steps_to_perfect`` when recall never became exact). An expectation that
cannot be decided on some replicates fails when too few of the others hold for the rule to be met
even if every undecided one held. The measurement's values
are the medians over replicates (where every replicate measured a number); the report shows
every replicate's value beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from verifier.spec.expectations import Expectation, Outcome, judge

Require = Literal["all", "majority", "median"]
REQUIRE_RULES: tuple[str, ...] = ("all", "majority", "median")
Status = Literal["passed", "failed", "undecided"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def median_value(values: Sequence[Any]) -> Any:
    """The median of numbers (None if any is missing), or the common value of non-numbers."""
    if values and all(_is_number(v) for v in values):
        med = float(np.median(np.asarray(values, dtype=np.float64)))
        return int(med) if all(isinstance(v, int) for v in values) and med.is_integer() else med
    if values and all(v == values[0] for v in values):
        return values[0]
    return None


def aggregate(replicates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per measure, :func:`median_value` over replicates (measures every replicate reports)."""
    names = [n for n in replicates[0] if all(n in r for r in replicates)]
    return {n: median_value([r[n] for r in replicates]) for n in names}


def _status(oks: Sequence[bool | None]) -> Status:
    """``failed`` if any is False, else ``undecided`` if any is None, else ``passed``."""
    if any(ok is False for ok in oks):
        return "failed"
    return "undecided" if any(ok is None for ok in oks) else "passed"


def judge_all(
    expectations: Sequence[Expectation],
    values: Mapping[str, Any],
    symbols: Mapping[str, float],
    replicates: Sequence[Mapping[str, Any]] | None = None,
    require: Require = "all",
) -> tuple[list[Outcome], Status]:
    """Judge ``expectations`` against one measurement, or against its replicates.

    Args:
        expectations: the claim's point expectations (no growth).
        values: the measured values (the aggregate when replicated).
        symbols: formula symbol values.
        replicates: per-replicate values, or None for an unreplicated measurement.
        require: how replicates meet the expectations.

    Returns:
        One outcome per expectation and the verdict (``passed``, ``failed``, ``undecided``).
    """
    if not replicates:
        single = [judge(e, values.get(e.measure), symbols) for e in expectations]
        return single, _status([o.ok for o in single])
    count = len(replicates)
    per = [[judge(e, rep.get(e.measure), symbols) for rep in replicates] for e in expectations]
    outcomes: list[Outcome] = []
    for e, judged in zip(expectations, per, strict=True):
        shown = [o.measured for o in judged]
        holds = sum(o.ok is True for o in judged)
        unknown = sum(o.ok is None for o in judged)
        if require == "median":
            med = judge(e, median_value(shown), symbols)
            ok, measured, bound = med.ok, med.measured, med.bound
            detail = f"median of {count} replicates"
        else:
            need = count if require == "all" else count // 2 + 1
            ok = True if holds >= need else (None if holds + unknown >= need else False)
            measured, bound = median_value(shown), judged[0].bound
            detail = f"{holds}/{count} replicates hold (need {need})"
        if unknown:
            detail += f"; {unknown} not measured"
        outcomes.append(Outcome(e.measure, e.text, measured, ok, detail, bound, replicates=shown))
    if require == "majority":
        rep_ok = [_status([per[i][j].ok for i in range(len(per))]) for j in range(count)]
        passing = rep_ok.count("passed")
        undecided = rep_ok.count("undecided")
        need = count // 2 + 1
        if passing >= need:
            return outcomes, "passed"
        return outcomes, "undecided" if passing + undecided >= need else "failed"
    return outcomes, _status([o.ok for o in outcomes])
