"""The vocabulary of a bound claim: which symbols, theorem quantities (``versus`` ones as
``<ID>_<name>``), inline quantities, ``given:`` keys and ``measured_<name>`` its formulas and
expectations may name, parsed once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sympy as sp

from verifier.errors import SpecError
from verifier.spec.formulas import parse_formula
from verifier.theory.asymptotics import split_order
from verifier.theory.declarations import Param, Theorem
from verifier.theory.registry import get_theorem
from verifier.theory.symbols import (
    CODE_DIM,
    DELTA,
    GAMMA,
    INSTANCE_PARAMS,
    PARAM_COUNT,
    PRECISION,
)

STANDARD_PARAMS: tuple[Param, ...] = (
    *INSTANCE_PARAMS,
    PRECISION,
    DELTA,
    GAMMA,
    CODE_DIM,
    PARAM_COUNT,
)
# The largest magnitude of a given number (or a given formula at the instance): far above
# any real code width or parameter count, far below where the closed forms overflow float64.
MAX_GIVEN = 1e12
MEASURED_PREFIX = "measured_"


@dataclass(frozen=True)
class Vocabulary:
    """What a bound claim's formulas and expectations may name, parsed once.

    Attributes:
        theorems: the claim's theorem (if any), then its ``versus`` theorems.
        registry_names: measure name -> (theorem, quantity name).
        user: inline quantities, in order, as formulas over ``table``.
        table: formula symbol name -> sympy symbol (placeholders for quantity names).
        givens: ``given:`` key -> param.
        measures: every measure name (``expect:`` keys).
        symbols: every formula symbol name.
    """

    theorems: tuple[Theorem, ...]
    registry_names: dict[str, tuple[Theorem, str]]
    user: tuple[tuple[str, Any], ...]
    table: dict[str, sp.Symbol]
    givens: dict[str, Param]
    measures: tuple[str, ...]
    symbols: tuple[str, ...]


def qualified(theorem_id: str, quantity: str) -> str:
    """``G1``, ``params`` -> ``G1_params`` (the name a ``versus`` quantity has in formulas)."""
    return f"{theorem_id}_{quantity}"


def claim_vocabulary(claim: Any, claim_measures: set[str]) -> Vocabulary:
    """The names a bound claim may use; parses its inline quantities, limit and order.

    Args:
        claim: a ``BoundClaim`` (theorem, versus, given, against, quantities, limit, order).
        claim_measures: measures any claim kind reports (``measured_<name>`` candidates).

    Raises:
        SpecError: unknown theorem, ``given:`` key, clashing or unparsable inline quantity,
            or a bad ``limit``/``order`` formula, each naming the key.
    """

    ids = ([claim.theorem] if claim.theorem else []) + list(claim.versus)
    if len(set(ids)) != len(ids):
        raise SpecError(f"versus: expected distinct theorems, got {ids}")
    theorems = tuple(get_theorem(i) for i in ids)
    params: dict[str, Param] = {p.name: p for p in STANDARD_PARAMS}
    for t in theorems:
        params.update({p.name: p for p in t.params})
    table: dict[str, sp.Symbol] = {name: p.symbol for name, p in params.items()}
    registry_names: dict[str, tuple[Theorem, str]] = {}
    for i, t in enumerate(theorems):
        for q in t.quantity_names:
            name = q if i == 0 and claim.theorem else qualified(t.id, q)
            registry_names[name] = (t, q)
    measured: tuple[str, ...] = ()
    if claim.against:
        measured = tuple(MEASURED_PREFIX + x for x in sorted(claim_measures))
    for name in (*registry_names, *measured):
        table[name] = sp.Symbol(name, positive=True)
    givens: dict[str, Param] = {p.given: p for p in params.values() if p.given}
    for key, value in claim.given.items():
        if key not in givens:
            raise SpecError(f"given.{key}: unknown given; expected one of {', '.join(givens)}")
        if isinstance(value, bool):
            raise SpecError(f"given.{key}: expected a number or a formula, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"given.{key}: expected a finite number, got {value!r}")
        if isinstance(value, int | float) and abs(value) > MAX_GIVEN:
            raise SpecError(
                f"given.{key}: expected a number at most {MAX_GIVEN:g} in magnitude, got "
                f"{value:g}: the theorems' closed forms overflow float64 beyond it"
            )
        if isinstance(value, str):
            instance_table = {p.name: p.symbol for p in INSTANCE_PARAMS}
            try:
                parse_formula(value, instance_table)
            except SpecError as exc:
                raise SpecError(f"given.{key}: {exc.message}") from None
    user: list[tuple[str, Any]] = []
    for name, text in claim.quantities.items():
        if (
            not name.isidentifier()
            or name in table
            or name.startswith(MEASURED_PREFIX)
            or name in BOUND_MEASURE_NAMES
        ):
            raise SpecError(
                f"quantities.{name}: expected a new identifier (not a symbol, a theorem "
                f"quantity, measured_* or {', '.join(BOUND_MEASURE_NAMES)}), got {name!r}"
            )
        try:
            formula = parse_formula(text, table)
        except SpecError as exc:
            raise SpecError(f"quantities.{name}: {exc.message}") from None
        user.append((name, formula))
        table[name] = sp.Symbol(name, positive=True)
    for key, text in (("limit", claim.limit), ("order", claim.order)):
        if text is None:
            continue
        try:
            if key == "order":
                f, _, g = split_order(text)
                parse_formula(f, table)
                parse_formula(g, table)
            else:
                parse_formula(text, table)
        except SpecError as exc:
            raise SpecError(f"{key}: {exc.message}") from None
    asymptotic: tuple[str, ...] = ()
    if claim.limit is not None:
        asymptotic = ("limit", "limit_finite")
    elif claim.order is not None:
        asymptotic = ("limit", "limit_finite", "order_holds")
    measures = (*registry_names, *(n for n, _ in user), *measured, *asymptotic)
    return Vocabulary(
        theorems=theorems,
        registry_names=registry_names,
        user=tuple(user),
        table=table,
        givens=givens,
        measures=measures,
        symbols=tuple(table),
    )


BOUND_MEASURE_NAMES: tuple[str, ...] = ("limit", "limit_finite", "order_holds")
