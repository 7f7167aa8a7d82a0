"""The ``bound`` claim: registry theorems evaluated at the instance (docs/theory.md sections 3-5).

Every quantity of ``theorem`` (and of each ``versus`` theorem, as ``<ID>_<name>``) and every
inline quantity is evaluated at the instance's N, R, k, A, the ``given:`` values, the
``against:`` claim's measurement (``measured_<name>``; LB1's P from its ``params``) and the
theorems' defaults, through cached lambdified float64 code (``lgamma`` for factorials, never
N!). Non-finite or complex values are errors. ``limit:`` and ``order:`` are decided by sympy's
``limit`` with every symbol but ``over`` fixed to its exact value; when sympy cannot decide,
the claim is ``undecided``, never passed.
"""

from __future__ import annotations

from typing import Any, Literal

import sympy as sp

from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.errors import SpecError
from verifier.limits import Limits
from verifier.spec import BijectionInstance, BoundClaim, MultiHopInstance, _claim_measures
from verifier.spec.formulas import SYMBOLS, parse_formula
from verifier.theory import (
    MAX_GIVEN,
    MEASURED_PREFIX,
    LimitResult,
    Theorem,
    Vocabulary,
    claim_vocabulary,
    evaluate_expression,
    exact_number,
    instance_exprs,
    instance_values,
    limit_at_infinity,
    order_holds,
    split_order,
)

Number = int | float
LIMIT_SECONDS = 20.0  # wall-clock cap on one sympy limit (SIGALRM; main thread only)
BoundContext = CheckContext[BijectionInstance | MultiHopInstance, BoundClaim]


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@register("bound")
class BoundCheck(CheckKind[BijectionInstance | MultiHopInstance, BoundClaim]):
    """Symbolic bounds: evaluate, compare with a measurement, decide limits."""

    def preflight(
        self, instance: BijectionInstance | MultiHopInstance, claim: BoundClaim, limits: Limits
    ) -> None:
        """No work grows with N (closed forms are evaluated through lgamma); a given formula
        must evaluate at the instance to a number within ``MAX_GIVEN`` in magnitude.

        Raises:
            SpecError: a given formula that cannot be evaluated or is too large, naming its key.
        """
        values: dict[str, Number] = dict(instance_values(instance))
        for key, raw in claim.given.items():
            if isinstance(raw, str):
                value = self._given_formula(key, raw, values)
                if abs(value) > MAX_GIVEN:
                    raise SpecError(
                        f"{raw!r} is {value:g} at the instance; expected at most "
                        f"{MAX_GIVEN:g} in magnitude: the theorems' closed forms overflow "
                        "float64 beyond it",
                        key=f"given.{key}",
                    )

    @staticmethod
    def _given_formula(key: str, raw: str, values: dict[str, Number]) -> Number:
        """A given formula over N, R, k, A at the instance's ``values``."""
        table = {
            n: SYMBOLS.get(n, sp.Symbol(n, positive=True, integer=True))
            for n in ("N", "R", "k", "A")
        }
        return evaluate_expression(parse_formula(raw, table).expr, values, f"given.{key}")

    def run(self, ctx: BoundContext) -> Measurement:
        claim = ctx.claim
        vocab = claim_vocabulary(claim, _claim_measures())
        values: dict[str, Number] = dict(instance_values(ctx.instance))
        measured = self._measured(claim, ctx)
        for key, raw in claim.given.items():
            param = vocab.givens[key]
            if isinstance(raw, str):
                raw = self._given_formula(key, raw, values)
            values[param.name] = raw
        for t in vocab.theorems:  # params set by the against claim's measurement (LB1's P)
            for p in t.params:
                if p.measured and p.name not in values and _numeric(measured.get(p.measured)):
                    values[p.name] = measured[p.measured]
        supplied = frozenset(values)
        results: dict[str, Any] = {}
        formulas: dict[str, str] = {}
        missing: dict[str, str] = {}
        for name, (theorem, q) in vocab.registry_names.items():
            expr = theorem.resolved(supplied)[q]
            formulas[name] = sp.sstr(expr)
            needs = sorted(s.name for s in expr.free_symbols if s.name not in values)
            if needs:
                results[name] = None
                missing[name] = ", ".join(needs)
                continue
            results[name] = evaluate_expression(expr, values, f"{theorem.id}.{q}")
        defaults = self._defaults(vocab, values, supplied)
        symbols: dict[str, float] = {**defaults, **{k: float(v) for k, v in values.items()}}
        symbols.update({MEASURED_PREFIX + k: float(v) for k, v in measured.items()})
        for name, formula in vocab.user:
            env = {**symbols, **values, **{k: v for k, v in results.items() if v is not None}}
            unknown = sorted(n for n in formula.names if n in results and results[n] is None)
            if unknown:
                raise SpecError(
                    f"quantities.{name} uses {', '.join(unknown)}, which has no "
                    f"value here ({'; '.join(missing[u] for u in unknown)} missing)"
                )
            results[name] = evaluate_expression(formula.expr, env, f"quantity {name!r}")
            formulas[name] = formula.text
        self._require_used(claim, vocab, results, missing, measured)
        symbols.update({k: float(v) for k, v in results.items() if v is not None})
        evidence: dict[str, Any] = {
            "theorems": [_describe(t) for t in vocab.theorems],
            "values": {k: v for k, v in values.items()},
            "defaults": defaults,
            "formulas": formulas,
        }
        if claim.against:
            evidence["against"] = claim.against
        status: Literal["undecided"] | None = None
        message = ""
        if claim.limit is not None or claim.order is not None:
            decided, text = self._asymptotic(
                claim, vocab, ctx.instance, values, measured, results, evidence
            )
            status = None if decided else "undecided"
            message = text
        values_out = {**results, **{MEASURED_PREFIX + k: v for k, v in measured.items()}}
        return Measurement(
            method="symbolic",
            values=values_out,
            evidence=evidence,
            symbols=symbols,
            status=status,
            message=message,
        )

    def _measured(self, claim: BoundClaim, ctx: BoundContext) -> dict[str, Number]:
        if not claim.against:
            return {}
        dep = ctx.dependencies[claim.against]
        return {k: v for k, v in dep.values.items() if _numeric(v)}

    def _defaults(
        self, vocab: Vocabulary, values: dict[str, Number], supplied: frozenset[str]
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for t in vocab.theorems:
            for key, expr in t.resolved(supplied).items():
                name = key.removeprefix("default:")
                if key.startswith("default:") and name not in out:
                    what = f"{t.id} default of {name}"
                    out[name] = float(evaluate_expression(expr, values, what))
        return out

    def _require_used(
        self,
        claim: BoundClaim,
        vocab: Vocabulary,
        results: dict[str, Any],
        missing: dict[str, str],
        measured: dict[str, Number],
    ) -> None:
        """Every name an expectation uses has a value, or a clear error says what is missing."""
        used: set[str] = set()
        for e in claim.expectations:
            used.add(e.measure)
            if e.comparison is not None:
                used.update(e.comparison.formula.names)
        for text in (claim.limit,):
            if text is not None:
                used.update(parse_formula(text, vocab.table).names)
        if claim.order is not None:
            f, _, g = split_order(claim.order)
            used.update(parse_formula(f, vocab.table).names | parse_formula(g, vocab.table).names)
        for name in sorted(used):
            if name in missing:
                raise SpecError(
                    f"{name} needs {missing[name]}, which has no value here; set it under "
                    f"`given:` or take it from an `against:` claim"
                )
            if name.startswith(MEASURED_PREFIX) and name[len(MEASURED_PREFIX) :] not in measured:
                raise SpecError(
                    f"{name}: claim {claim.against!r} measured no "
                    f"{name[len(MEASURED_PREFIX) :]!r}; expected one of "
                    f"{', '.join(MEASURED_PREFIX + k for k in measured) or '(none)'}"
                )

    def _asymptotic(
        self,
        claim: BoundClaim,
        vocab: Vocabulary,
        instance: BijectionInstance | MultiHopInstance,
        values: dict[str, Number],
        measured: dict[str, Number],
        results: dict[str, Any],
        evidence: dict[str, Any],
    ) -> tuple[bool, str]:
        """Decide ``limit`` or ``order``; write ``limit``, ``limit_finite``, ``order_holds``."""
        var = SYMBOLS[claim.over]
        fixed = instance_exprs(instance, claim.over)
        subs: dict[sp.Symbol, sp.Expr] = {}
        for name, v in values.items():
            if name in fixed:
                continue
            if name in vocab.table and name not in ("N", "R", "k", "A"):
                subs[vocab.table[name]] = exact_number(v)
        for name, expr in fixed.items():
            subs[vocab.table[name]] = expr
        for k, v in measured.items():
            if MEASURED_PREFIX + k in vocab.table:
                subs[vocab.table[MEASURED_PREFIX + k]] = exact_number(v)
        supplied = frozenset(values)
        for name, (theorem, q) in vocab.registry_names.items():
            subs[vocab.table[name]] = theorem.resolved(supplied)[q].xreplace(subs)
        for name, formula in vocab.user:
            subs[vocab.table[name]] = formula.expr.xreplace(subs)
        if claim.limit is not None:
            expr = parse_formula(claim.limit, vocab.table).expr.xreplace(subs)
            cls = None
        else:
            assert claim.order is not None
            f, cls, g = split_order(claim.order)
            expr = parse_formula(f, vocab.table).expr / parse_formula(g, vocab.table).expr
            expr = expr.xreplace(subs)
        result = limit_at_infinity(expr, var, LIMIT_SECONDS)
        evidence["asymptotic"] = {
            "expression": sp.sstr(expr),
            "over": claim.over,
            "sympy": result.text,
        }
        results["limit"] = result.value
        results["limit_finite"] = None if result.kind == "undecided" else result.kind == "finite"
        if cls is not None:
            holds = order_holds(cls, result)
            results["order_holds"] = holds
            if holds is None:
                return False, f"undecided: {claim.order}: {result.text}"
            return True, f"{claim.order}: lim f/g = {result.text}"
        if result.kind == "undecided":
            return False, f"undecided: lim {claim.limit} as {claim.over} -> oo: {result.text}"
        return True, f"lim {claim.limit} = {_show(result)}"


def _show(result: LimitResult) -> str:
    return result.text


def _describe(t: Theorem) -> dict[str, Any]:
    return {"id": t.id, "source": t.source, "citation": t.citation, "statement": t.statement}
