"""Expectations: ``measure: value`` and ``measure: "<op> formula"``, parsed once, judged later.

Forms a spec may use for one measure:

- a number: equality within ``tol`` (default ``1e-9``, absolute and relative);
- ``{value: x, tol: t}``: equality within an explicit tolerance (finite, ``t >= 0``);
- ``{value: x, rel: r}``: within ``r |x|`` of ``x`` (``rel: 0.3``: within 30% of a published
  figure);
- ``"<op> formula"`` with op in ``<= >= == != < >`` over the instance symbols;
- a word (``feasible``, ``infeasible``, ...): equality of labels for non-numeric measures;
- ``growth: {...}`` on a swept claim (judged over the sweep by :mod:`verifier.engine.fits`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from verifier.errors import FormulaError, SpecError
from verifier.spec.symbols import COMPARATORS, SYMBOL_NAMES

if TYPE_CHECKING:
    from verifier.spec.formulas import Comparison

DEFAULT_TOL = 1e-9

ExpectationKind = Literal["equals", "compare", "label", "growth"]


@dataclass(frozen=True)
class Expectation:
    """One parsed expectation on one measure."""

    measure: str
    kind: ExpectationKind
    text: str  # as the user wrote it
    value: float | str | None = None
    tol: float = DEFAULT_TOL
    rel: float | None = None  # equals: |measured - value| <= rel |value| instead of tol
    comparison: Comparison | None = None
    growth: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """An expectation judged against a measurement."""

    measure: str
    expected: str
    measured: Any
    ok: bool | None  # None: could not be decided
    detail: str = ""
    bound: float | None = None  # the formula's value, for comparisons
    replicates: list[Any] | None = None  # each replicate's measured value (replicated claims)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def parse_expectation(measure: str, raw: Any, symbols: Iterable[str] = SYMBOL_NAMES) -> Expectation:
    """Parse one ``expect:`` entry.

    Raises:
        SpecError: the value is none of the accepted forms, or its formula is bad.
    """
    if isinstance(raw, bool):
        return Expectation(measure, "label", str(raw).lower(), value=str(raw).lower())
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise SpecError(f"expected a finite number, got {raw!r}", key=measure)
        return Expectation(measure, "equals", repr(raw), value=float(raw))
    if isinstance(raw, Mapping):
        if measure == "growth":
            return Expectation(measure, "growth", str(dict(raw)), growth=dict(raw))
        keys = set(raw)
        if keys == {"value", "rel"}:
            value, rel = raw["value"], raw["rel"]
            if not all(_is_number(x) for x in (value, rel)):
                raise SpecError(f"expected numbers for value and rel, got {dict(raw)}", key=measure)
            if not (math.isfinite(value) and math.isfinite(rel) and rel >= 0):
                raise SpecError(f"expected finite value and rel >= 0, got {dict(raw)}", key=measure)
            text = f"{value} ± {rel:.0%}"
            return Expectation(measure, "equals", text, value=float(value), rel=float(rel))
        if "value" not in keys or not keys <= {"value", "tol"}:
            raise SpecError(
                f"expected {{value: <number>, tol: <number>}} or {{value: <number>, rel: "
                f"<number>}}, got keys {sorted(keys)}",
                key=measure,
            )
        value, tol = raw["value"], raw.get("tol", DEFAULT_TOL)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (value, tol)):
            raise SpecError(f"expected numbers for value and tol, got {dict(raw)}", key=measure)
        if not math.isfinite(value):
            raise SpecError(f"value: expected a finite number, got {value!r}", key=measure)
        if not math.isfinite(tol) or tol < 0:  # tol: .inf would pass every measurement
            raise SpecError(f"tol: expected a finite number >= 0, got {tol!r}", key=measure)
        return Expectation(measure, "equals", f"{value} ± {tol}", value=float(value), tol=tol)
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith(COMPARATORS) or text[:1] in "<>=!":
            from verifier.spec.formulas import parse_comparison  # sympy: only for a formula

            try:
                comparison = parse_comparison(text, symbols)
            except FormulaError as exc:
                raise SpecError(exc.message, key=measure) from None
            return Expectation(measure, "compare", text, comparison=comparison)
        if text.replace("_", "").replace("-", "").isalnum():
            return Expectation(measure, "label", text, value=text)
        raise SpecError(
            f"expected a number, a word, or '<op> formula' (op one of {' '.join(COMPARATORS)}), "
            f"got {raw!r}",
            key=measure,
        )
    raise SpecError(
        f"expected a number, a word, or '<op> formula', got {type(raw).__name__}", key=measure
    )


def judge(exp: Expectation, measured: Any, values: Mapping[str, float]) -> Outcome:
    """Judge one expectation; formula symbols take ``values``."""
    if exp.kind == "growth":
        raise ValueError("growth expectations are judged over a sweep, not a point")
    if measured is None:
        return Outcome(exp.measure, exp.text, None, None, "not measured")
    if exp.kind == "label":
        ok = str(measured).lower() == str(exp.value).lower()
        return Outcome(exp.measure, exp.text, measured, ok)
    if isinstance(measured, bool) or not isinstance(measured, int | float):
        return Outcome(
            exp.measure, exp.text, measured, False, f"expected a number, got {measured!r}"
        )
    value = float(measured)
    if exp.kind == "equals":
        assert isinstance(exp.value, float)
        if exp.rel is not None:
            ok = abs(value - exp.value) <= exp.rel * abs(exp.value)
            ratio = f"ratio {value / exp.value:.3g}" if exp.value else ""
            return Outcome(exp.measure, exp.text, measured, ok, ratio)
        ok = math.isclose(value, exp.value, rel_tol=exp.tol, abs_tol=exp.tol)
        return Outcome(exp.measure, exp.text, measured, ok)
    assert exp.comparison is not None
    try:
        bound = exp.comparison.formula.evaluate(values)
        ok = exp.comparison.holds(value, values)
    except FormulaError as exc:
        return Outcome(exp.measure, exp.text, measured, None, exc.message)
    return Outcome(exp.measure, exp.text, measured, ok, bound=bound)
