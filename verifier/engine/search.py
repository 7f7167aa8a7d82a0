"""Minimal-resource and capacity searches: the boundary of a field at which a measure holds.

docs/theory.md sections 3, 5 and 6 state minimal sizes: the smallest code width with exact recall,
the smallest width an associative memory needs, the smallest d at depth k. Any claim kind can
ask for one with

    minimize: {field: code_dim, until: {accuracy: 1.0, margin: ">= 0.5"}, start: 1, max: 512}

The claim is run at ``start``, ``2 start``, ``4 start``, ... (capped at ``max``) until ``until``
holds, then bisected between the last value that failed and the first that held. The result is
the value ``v`` where ``until`` holds and ``v - 1`` fails - both neighbours are actually run, and
recorded in the evidence. If ``until`` holds already at ``start`` the lower neighbour is
``None`` (``start`` is the smallest value considered); if it fails up to ``max`` the claim is
``undecided`` with ``minimum`` unmeasured. ``maximize:`` is the mirror image, a capacity: the
largest ``v`` where ``until`` holds and ``v + 1`` fails (measure ``maximum``), as the
associative-memory peer bisects the most facts an MLP stores (Nichani, Lee, Bietti 2025).

A boundary found on a trained measure is only worth reporting when the runs behind it can be
trusted, so:

- each value runs the claim's replicates (``seeds:``) and is judged with its ``require``;
- ``lr_ladder: [3e-2, 1e-2, ...]`` tries each learning rate in turn (``optim.lr``), as the peer
  does, and a replicate holds at the first rung that meets ``until``;
- a value whose failing replicates *diverged* (final loss not finite or above the initial loss,
  on every rung tried) is ``diverged``, not a failure: it steers the bisection as a failure, but
  a boundary next to a diverged value is not reported;
- outcomes that are not monotone in the field (an ``until`` measure moving the wrong way
  between two values by more than :data:`MONOTONE_SLACK` of its bound, e.g. accuracy 0.952 at
  width 14 but 0.813 at 15) make the search ``undecided``, with the offending values in the
  evidence, instead of a boundary that the bisection's order happened to pick.

When no value holds, the check kind may explain why (``explain``: for a training claim with a
frozen unembedding, the attributes no hidden state can make the argmax, certified by P1).

The point's measurement is the one at the boundary, plus ``minimum`` (``maximum``); so a sweep
can put a growth law on it: ``growth: {measure: minimum, over: N, law: logarithmic}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import ValidationError

from verifier.bisection import find_maximum, find_minimum
from verifier.checks.base import Measurement
from verifier.engine.replicates import aggregate, judge_all
from verifier.engine.substitution import FieldNotFound, set_field
from verifier.errors import SpecError
from verifier.spec import ClaimBase, Minimize
from verifier.spec.expectations import Expectation, parse_expectation

Evaluate = Callable[[Any, Any], Measurement]  # (instance, claim) at one value -> measurement
Explain = Callable[[Any, Any], dict[str, Any] | None]  # (instance, claim) -> why until fails
Outcome = Literal["holds", "fails", "diverged"]
LR_FIELD = "optim.lr"  # what an lr ladder substitutes
MONOTONE_SLACK = 0.05  # a measure may move the wrong way by this share of its bound (noise)


def substitute(instance: Any, claim: ClaimBase, name: str, value: int | float) -> tuple[Any, Any]:
    """``(instance, claim)`` with field ``name`` set to ``value``, both re-validated.

    ``name`` is an instance field (``N``, ``R``, ``k`` alias ``entities``, ``relations``,
    ``hops``) or a key that appears exactly once in the claim (``code_dim``, ``d_model``).

    Raises:
        SpecError: the field is unknown or ambiguous, or the value is not accepted there.
    """
    inst = instance.model_dump()
    data = claim.model_dump(exclude={"sweep", "minimize", "maximize"}, exclude_none=True)
    # one value's run: the boundary and growth belong to the search and the sweep, not to it
    data["expect"] = {
        k: v for k, v in data["expect"].items() if k not in ("minimum", "maximum", "growth")
    }
    try:
        set_field(inst, data, name, value)
    except FieldNotFound as exc:
        raise SpecError(
            f"{_search_key(claim)} {exc}", key=f"{claim.id}.{_search_key(claim)}.field"
        ) from None
    try:
        return type(instance).model_validate(inst), type(claim).model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(
            f"{_search_key(claim)} {name} = {value}: {'.'.join(map(str, err['loc']))}: "
            f"{err['msg']}",
            key=f"{claim.id}.{_search_key(claim)}",
        ) from None


def _search_key(claim: ClaimBase) -> str:
    return "maximize" if getattr(claim, "maximize", None) is not None else "minimize"


def inversions(
    values: Mapping[int, tuple[float, float]], better: Literal["larger", "smaller"], largest: bool
) -> list[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, where a measure moves the wrong way by more than its slack.

    ``values`` maps each (non-diverged) searched value to ``(measured, bound)`` of one ``until``
    comparison. Growing the field should make the measure better for ``minimize`` (a wider
    model recalls more) and worse for ``maximize`` (more facts are harder); a pair going the
    other way by more than :data:`MONOTONE_SLACK` times the bound is an inversion. (The
    bisection keeps every failing value below every holding one, so the outcomes themselves
    are always ordered: what can betray a noisy search is the measure behind them, as in
    a trained d_mlp search at lr 1e-2: accuracy 0.952 at width 14, then 0.813 at 15.)
    """
    sign = 1.0 if (better == "larger") != largest else -1.0  # +1: should grow with the field
    keys = sorted(values)
    return [
        (x, y)
        for i, x in enumerate(keys)
        for y in keys[i + 1 :]
        if sign * (values[x][0] - values[y][0]) > MONOTONE_SLACK * max(abs(values[x][1]), 1e-12)
    ]


def _non_monotone(
    points: Mapping[int, _Point], until: Sequence[Expectation], largest: bool
) -> list[dict[str, Any]]:
    """Every inversion of an ``until`` comparison's measure over the evaluated values."""
    found: list[dict[str, Any]] = []
    for e in until:
        if e.comparison is None or e.comparison.op not in (">=", ">", "<=", "<"):
            continue
        better: Literal["larger", "smaller"] = "larger" if ">" in e.comparison.op else "smaller"
        values = {
            v: (float(o["measured"]), float(o["bound"]))
            for v, p in points.items()
            if p.outcome != "diverged"
            for o in p.until
            if o["measure"] == e.measure and _finite(o["measured"]) and _finite(o["bound"])
        }
        for x, y in inversions(values, better, largest):
            found.append(
                {"measure": e.measure, "values": [x, y], "measured": [values[x][0], values[y][0]]}
            )
    return found


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class _Point:
    """One searched value: its measurement (rungs combined), outcome and what each rung did."""

    measurement: Measurement
    outcome: Outcome
    until: list[dict[str, Any]]
    rungs: list[dict[str, Any]]


def _judged(
    until: Sequence[Expectation], values: Mapping[str, Any], symbols: Mapping[str, float]
) -> bool:
    return judge_all(until, values, symbols)[1] == "passed"


def _evaluate_point(
    instance: Any,
    claim: ClaimBase,
    spec: Minimize,
    value: int,
    evaluate: Evaluate,
    until: Sequence[Expectation],
) -> _Point:
    """Run the claim at ``value``, on each lr rung in turn until every replicate holds.

    A replicate keeps the first rung where ``until`` holds for it; one that never holds keeps
    its last non-diverged rung (a real failure), else its last rung (diverged).
    """
    rungs: list[float | None] = list(spec.lr_ladder) if spec.lr_ladder else [None]
    chosen: list[dict[str, Any]] = []
    status: list[Outcome] = []
    record: list[dict[str, Any]] = []
    last: Measurement | None = None
    symbols: dict[str, float] = {}
    for rung_index, lr in enumerate(rungs):
        inst, cl = substitute(instance, claim, spec.field, value)
        if lr is not None:
            inst, cl = substitute(inst, cl, LR_FIELD, lr)
        last = evaluate(inst, cl)
        symbols = {**inst.symbol_values(), **last.symbols}
        reps = last.replicates or [last.values]
        if not chosen:
            chosen = [dict(r) for r in reps]
            status = ["fails"] * len(reps)
        rung: list[dict[str, Any]] = []
        for i, rep in enumerate(reps):
            ok = last.status != "undecided" and _judged(until, rep, symbols)
            diverged = not ok and bool(rep.get("diverged"))
            rung.append(
                {"holds": ok, "diverged": diverged}
                | {m: rep.get(m) for m in ("accuracy", "final_loss") if m in rep}
            )
            if status[i] == "holds":
                continue
            if rung_index == 0 or ok or not diverged or status[i] == "diverged":
                chosen[i] = {**rep, "lr": lr} if lr is not None else dict(rep)
                status[i] = "holds" if ok else ("diverged" if diverged else "fails")
        record.append({"lr": lr, "replicates": rung})
        if all(s == "holds" for s in status):
            break
    assert last is not None
    replicated = last.replicates is not None
    values = aggregate(chosen) if replicated else chosen[0]
    outcomes, verdict = judge_all(
        until, values, symbols, chosen if replicated else None, last.require
    )
    holds = last.status != "undecided" and verdict == "passed"
    outcome: Outcome = "holds" if holds else ("diverged" if "diverged" in status else "fails")
    measurement = replace(last, values=values, replicates=chosen if replicated else None)
    judged = [
        {
            "measure": o.measure,
            "expected": o.expected,
            "measured": o.measured,
            "ok": o.ok,
            "bound": o.bound,
        }
        | ({"replicates": o.replicates} if o.replicates is not None else {})
        for o in outcomes
    ]
    return _Point(measurement, outcome, judged, record if spec.lr_ladder else [])


def run_minimize(
    instance: Any, claim: ClaimBase, evaluate: Evaluate, explain: Explain | None = None
) -> Measurement:
    """Run ``claim``'s ``minimize:`` or ``maximize:`` search; the measurement at the boundary
    plus ``minimum`` (``maximum``).

    Args:
        instance: the point's instance.
        claim: the point's claim (with ``minimize`` or ``maximize`` set).
        evaluate: runs the check at one substituted ``(instance, claim)``.
        explain: the check kind's diagnosis of a value where ``until`` cannot hold (or None).
    """
    spec = claim.search_spec()
    if spec is None:
        raise ValueError(f"claim {claim.id!r} has no minimize: or maximize: block")
    until = [parse_expectation(m, raw, claim.SYMBOLS) for m, raw in spec.until.items()]
    points: dict[int, _Point] = {}

    def holds(value: int) -> bool:
        points[value] = _evaluate_point(instance, claim, spec, value, evaluate, until)
        return points[value].outcome == "holds"

    find = find_maximum if spec.largest else find_minimum
    result = find(holds, spec.start, spec.max)
    outcomes = {v: p.outcome for v, p in points.items()}
    bad_pairs = _non_monotone(points, until, spec.largest)
    diverged = sorted(v for v, o in outcomes.items() if o == "diverged")
    name = spec.measure
    search: dict[str, Any] = {
        "field": spec.field,
        "direction": "largest" if spec.largest else "smallest",
        "until": {k: str(v) for k, v in spec.until.items()},
        "start": spec.start,
        "max": spec.max,
        "lr_ladder": spec.lr_ladder,
        name: result.minimum,
        "holds_at": result.minimum,
        "fails_at": result.below,
        "evaluated": [
            {"value": v, "outcome": p.outcome, "until": p.until}
            | ({"rungs": p.rungs} if p.rungs else {})
            for v, p in points.items()
        ],
        "diverged": diverged,
        "non_monotone": bad_pairs,
        "assumes": "until holds monotonically in the field; both neighbours were run",
    }
    why: str | None = None
    if result.minimum is None:
        why = (
            f"until does not hold at any value up to max = {spec.max}"
            if not spec.largest
            else f"until does not hold at start = {spec.start}"
        )
    elif bad_pairs:
        pairs = ", ".join(
            f"{p['measure']} {p['measured'][0]:.4g} at {p['values'][0]} but "
            f"{p['measured'][1]:.4g} at {p['values'][1]}"
            for p in bad_pairs[:4]
        )
        why = f"outcomes are not monotone in {spec.field} ({pairs}): no boundary reported"
    elif result.below is not None and outcomes[result.below] == "diverged":
        why = (
            f"training diverged at {spec.field} = {result.below}, next to "
            f"{result.minimum}: no boundary reported from a diverged run"
        )
    if why is not None and diverged:
        why += f"; diverged at {', '.join(map(str, diverged))}"
    failing: int | None = result.below
    shown: int = result.minimum if result.minimum is not None else 0
    if result.minimum is None:  # nothing held: the last value tried (minimize), start (maximize)
        failing = shown = spec.start if spec.largest else max(points)
    if explain is not None and failing is not None and outcomes.get(failing) != "holds":
        diagnosis = explain(*substitute(instance, claim, spec.field, failing))
        if diagnosis is not None:
            search["diagnosis"] = {"value": failing, **diagnosis}
            if why is not None and "message" in diagnosis:
                why += f"; at {spec.field} = {failing}: {diagnosis['message']}"
    if why is not None:
        m = points[shown].measurement
        return Measurement(
            method=m.method,
            values={**m.values, name: None},
            evidence={**m.evidence, "search": search},
            symbols=m.symbols,
            status="undecided",
            replicates=_with_boundary(m.replicates, name, None),
            require=m.require,
            message=f"{spec.field}: {why}"
            + (f" (the bisection ended at {shown})" if result.minimum is not None else ""),
        )
    assert result.minimum is not None
    best = points[result.minimum].measurement
    if result.below is not None:
        search["values_" + ("above" if spec.largest else "below")] = points[
            result.below
        ].measurement.values
    edge = "max" if spec.largest else "start"
    note = (
        f"{spec.field} = {result.minimum} holds, {result.below} fails"
        if result.below is not None
        else f"{spec.field} = {result.minimum} holds (= {edge})"
    )
    return Measurement(
        method=best.method,
        values={**best.values, name: result.minimum},
        evidence={**best.evidence, "search": search},
        symbols=best.symbols,
        artifacts=best.artifacts,
        status=best.status,
        replicates=_with_boundary(best.replicates, name, result.minimum),
        require=best.require,
        message=f"{note}; {best.message}" if best.message else note,
    )


def _with_boundary(
    replicates: list[dict[str, Any]] | None, name: str, value: int | None
) -> list[dict[str, Any]] | None:
    """Replicate values with the search's boundary (one search covers every replicate)."""
    return None if replicates is None else [{**r, name: value} for r in replicates]
