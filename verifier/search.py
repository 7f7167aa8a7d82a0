"""Minimal-resource searches: the smallest value of a field at which a measure holds.

docs/theory.md sections 3, 5 and 6 state minimal sizes: the smallest code width with exact recall,
the smallest width an associative memory needs, the smallest d at depth k. Any claim kind can
ask for one with

    minimize: {field: code_dim, until: {accuracy: 1.0, margin: ">= 0.5"}, start: 1, max: 512}

The claim is run at ``start``, ``2 start``, ``4 start``, ... (capped at ``max``) until ``until``
holds, then bisected between the last value that failed and the first that held. The result is
the value ``v`` where ``until`` holds and ``v - 1`` fails - both neighbours are actually run, and
recorded in the evidence. That ``v`` is *the* smallest only if the measure holds monotonically
in the field; the search says so instead of assuming it silently. If ``until`` holds already at
``start`` the lower neighbour is ``None`` (``start`` is the smallest value considered); if it
fails up to ``max`` the claim is ``undecided`` with ``minimum`` unmeasured.

The point's measurement is the one at the minimum, plus the measure ``minimum``; so a sweep can
put a growth law on it: ``growth: {measure: minimum, over: N, law: logarithmic}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from verifier.checks.base import Measurement
from verifier.errors import SpecError
from verifier.expect import parse_expectation
from verifier.replicates import judge_all
from verifier.spec import SWEEP_ALIASES, ClaimBase

Evaluate = Callable[[Any, Any], Measurement]  # (instance, claim) at one value -> measurement


def field_paths(data: dict[str, Any], name: str) -> list[list[str]]:
    """Paths to every key called ``name`` in nested claim data.

    A dotted name (``optim.groups.W_E.optimizer``, ``model.init.W_E``) is one path from the top;
    the mappings along it are created where missing (``init`` and ``groups`` start empty), so
    a path the claim does not accept fails its re-validation, naming the key.
    """
    if "." in name:
        parts = name.split(".")
        node: Any = data
        for part in parts[:-1]:
            if not isinstance(node, dict):
                return []
            node = node.setdefault(part, {})
        return [parts] if isinstance(node, dict) else []
    paths: list[list[str]] = []
    for key, value in data.items():
        if key == name:
            paths.append([key])
        elif isinstance(value, dict):
            paths.extend([key, *p] for p in field_paths(value, name))
    return paths


def substitute(instance: Any, claim: ClaimBase, name: str, value: int) -> tuple[Any, Any]:
    """``(instance, claim)`` with field ``name`` set to ``value``, both re-validated.

    ``name`` is an instance field (``N``, ``R``, ``k`` alias ``entities``, ``relations``,
    ``hops``) or a key that appears exactly once in the claim (``code_dim``, ``d_model``).

    Raises:
        SpecError: the field is unknown or ambiguous, or the value is not accepted there.
    """
    field_name = SWEEP_ALIASES.get(name, name)
    inst = instance.model_dump()
    data = claim.model_dump(exclude={"sweep", "minimize"}, exclude_none=True)
    # one value's run: ``minimum`` and growth belong to the search and the sweep, not to it
    data["expect"] = {k: v for k, v in data["expect"].items() if k not in ("minimum", "growth")}
    if field_name in inst:
        inst[field_name] = value
    else:
        paths = field_paths(data, field_name)
        if len(paths) != 1:
            raise SpecError(
                f"minimize field {name!r}: expected an instance field "
                f"({', '.join(list(SWEEP_ALIASES) + sorted(inst))}) or a field that appears once "
                f"in the claim, got " + (f"{len(paths)} occurrences" if paths else "no such field"),
                key=f"{claim.id}.minimize.field",
            )
        node = data
        for part in paths[0][:-1]:
            node = node[part]
        node[paths[0][-1]] = value
    try:
        return type(instance).model_validate(inst), type(claim).model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(
            f"minimize {name} = {value}: {'.'.join(map(str, err['loc']))}: {err['msg']}",
            key=f"{claim.id}.minimize",
        ) from None


@dataclass
class SearchResult:
    """Where ``until`` first holds, with the runs on either side."""

    minimum: int | None  # None: fails up to max
    below: int | None  # minimum - 1 where it fails; None when minimum == start or not found
    holds: dict[int, bool] = field(default_factory=dict)  # every value run, in order


def find_minimum(holds: Callable[[int], bool], start: int, maximum: int) -> SearchResult:
    """Doubling from ``start`` (capped at ``maximum``), then bisection.

    Returns the smallest evaluated ``v`` with ``holds(v)`` whose ``v - 1`` was evaluated and
    failed (or ``v == start``). Each value is evaluated at most once.
    """
    seen: dict[int, bool] = {}

    def test(v: int) -> bool:
        if v not in seen:
            seen[v] = holds(v)
        return seen[v]

    failing: int | None = None
    v = start
    while not test(v):
        failing = v
        if v >= maximum:
            return SearchResult(None, None, seen)
        v = min(2 * v, maximum)
    passing = v
    if failing is None:
        return SearchResult(passing, None, seen)
    while passing - failing > 1:
        mid = (passing + failing) // 2
        if test(mid):
            passing = mid
        else:
            failing = mid
    return SearchResult(passing, failing, seen)


def run_minimize(instance: Any, claim: ClaimBase, evaluate: Evaluate) -> Measurement:
    """Run ``claim``'s ``minimize:`` search; the measurement at the minimum plus ``minimum``.

    Args:
        instance: the point's instance.
        claim: the point's claim (with ``minimize`` set).
        evaluate: runs the check at one substituted ``(instance, claim)``.
    """
    spec = claim.minimize
    if spec is None:
        raise ValueError(f"claim {claim.id!r} has no minimize: block")
    until = [parse_expectation(m, raw, claim.SYMBOLS) for m, raw in spec.until.items()]
    runs: dict[int, Measurement] = {}
    verdicts: dict[int, list[dict[str, Any]]] = {}

    def holds(value: int) -> bool:
        inst, cl = substitute(instance, claim, spec.field, value)
        measurement = evaluate(inst, cl)
        runs[value] = measurement
        symbols = {**inst.symbol_values(), **measurement.symbols}
        outcomes, verdict = judge_all(
            until, measurement.values, symbols, measurement.replicates, measurement.require
        )
        verdicts[value] = [
            {"measure": o.measure, "expected": o.expected, "measured": o.measured, "ok": o.ok}
            | ({"replicates": o.replicates} if o.replicates is not None else {})
            for o in outcomes
        ]
        return measurement.status != "undecided" and verdict == "passed"

    result = find_minimum(holds, spec.start, spec.max)
    search: dict[str, Any] = {
        "field": spec.field,
        "until": {k: str(v) for k, v in spec.until.items()},
        "start": spec.start,
        "max": spec.max,
        "minimum": result.minimum,
        "holds_at": result.minimum,
        "fails_at": result.below,
        "evaluated": [
            {"value": v, "holds": ok, "until": verdicts[v]} for v, ok in result.holds.items()
        ],
        "assumes": "until holds monotonically in the field; both neighbours were run",
    }
    if result.minimum is None:
        last = runs[max(runs)]
        return Measurement(
            method=last.method,
            values={**last.values, "minimum": None},
            evidence={**last.evidence, "search": search},
            symbols=last.symbols,
            status="undecided",
            replicates=_with_minimum(last.replicates, None),
            require=last.require,
            message=f"{spec.field}: until does not hold at any value up to max = {spec.max}",
        )
    best = runs[result.minimum]
    if result.below is not None:
        search["values_below"] = runs[result.below].values
    note = (
        f"{spec.field} = {result.minimum} holds, {result.below} fails"
        if result.below is not None
        else f"{spec.field} = {result.minimum} holds (= start)"
    )
    return Measurement(
        method=best.method,
        values={**best.values, "minimum": result.minimum},
        evidence={**best.evidence, "search": search},
        symbols=best.symbols,
        artifacts=best.artifacts,
        status=best.status,
        replicates=_with_minimum(best.replicates, result.minimum),
        require=best.require,
        message=f"{note}; {best.message}" if best.message else note,
    )


def _with_minimum(
    replicates: list[dict[str, Any]] | None, minimum: int | None
) -> list[dict[str, Any]] | None:
    """Replicate values with the search's ``minimum`` (one search covers every replicate)."""
    return None if replicates is None else [{**r, "minimum": minimum} for r in replicates]
