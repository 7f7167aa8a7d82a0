"""Asymptotic statements: ``lim_{var -> oo}`` by sympy's ``limit`` (under a deadline), and
whether ``f = O/Theta/Omega/o/omega(g)`` holds given ``lim f/g``; ``undecided`` where sympy
cannot decide, never guessed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import sympy as sp

from verifier.errors import SpecError
from verifier.theory.deadline import Timeout, deadline

LimitKind = Literal["finite", "infinite", "undecided"]


@dataclass(frozen=True)
class LimitResult:
    """A sympy limit: ``value`` is a number (finite), ``oo``/``-oo`` (infinite), or None."""

    kind: LimitKind
    value: float | str | None
    text: str  # sympy's answer or the reason it is undecided
    low: float | None = None  # for accumulation bounds: the interval
    high: float | None = None


def limit_at_infinity(expr: sp.Expr, var: sp.Symbol, timeout_s: float = 10.0) -> LimitResult:
    """``lim_{var -> oo} expr`` by sympy, classified; never guessed.

    ``expr`` must have no free symbol but ``var``. Sympy errors, unevaluated limits, NaN,
    complex infinity and a timeout all give ``undecided`` with the reason.
    """
    others = expr.free_symbols - {var}
    if others:
        return LimitResult(
            "undecided", None, f"free symbols besides {var}: {sorted(map(str, others))}"
        )
    rough = [f.__name__ for f in _NOT_EXP_LOG if expr.has(f)]
    if rough:
        # sympy's limit is an exp-log algorithm (Gruntz); on floor/ceiling/max it can answer
        # wrongly (lim N - 2 floor(N/2) = oo), so such limits are never decided here
        return LimitResult(
            "undecided",
            None,
            f"the expression uses {', '.join(rough)}; sympy decides limits of "
            f"exp-log expressions only",
        )
    try:
        with deadline(timeout_s):
            value = sp.limit(expr, var, sp.oo)
    except Timeout:
        return LimitResult("undecided", None, f"sympy did not finish within {timeout_s:g} s")
    except (
        NotImplementedError,
        ValueError,
        TypeError,
        ZeroDivisionError,
        RecursionError,
        sp.PoleError,
    ) as exc:
        return LimitResult("undecided", None, f"sympy cannot decide: {type(exc).__name__}: {exc}")
    if isinstance(value, sp.AccumBounds):
        lo, hi = value.min, value.max
        if lo.is_finite and hi.is_finite and lo.is_real and hi.is_real:
            return LimitResult(
                "undecided", None, f"no limit: oscillates in {value}", float(lo), float(hi)
            )
        return LimitResult("undecided", None, f"no limit: {value}")
    if value in (sp.oo, -sp.oo):
        return LimitResult("infinite", str(value), str(value))
    if value.is_number and value.is_real and value.is_finite:
        return LimitResult("finite", float(value), sp.sstr(value))
    return LimitResult("undecided", None, f"sympy returned {sp.sstr(value)}")


_NOT_EXP_LOG = (sp.floor, sp.ceiling, sp.Max, sp.Min, sp.Abs, sp.sign, sp.Piecewise, sp.frac)

ORDER_CLASSES = ("O", "Theta", "Omega", "o", "omega")
_ORDER = re.compile(r"^\s*(.+?)\s*=\s*(O|Theta|Omega|o|omega)\s*\((.+)\)\s*$", re.DOTALL)


def split_order(text: str) -> tuple[str, str, str]:
    """``"f = Theta(g)"`` -> (f, Theta, g).

    Raises:
        SpecError: not of that form.
    """
    match = _ORDER.match(text)
    if not match:
        raise SpecError(
            f"expected '<formula> = <class>(<formula>)' with class one of "
            f"{', '.join(ORDER_CLASSES)}, got {text!r}"
        )
    return match.group(1), match.group(2), match.group(3)


def order_holds(cls: str, ratio: LimitResult) -> bool | None:
    """Whether ``f = cls(g)`` holds given ``lim f/g`` (f, g positive); None if undecided.

    O: limsup finite; Theta: 0 < liminf <= limsup < oo; Omega: liminf > 0; o: limit 0;
    omega: limit oo. Oscillating ratios with known bounds still decide O, Theta and Omega.
    """
    if ratio.kind == "undecided":
        if ratio.low is None or ratio.high is None:
            return None
        lo, hi = abs(ratio.low), abs(ratio.high)
        lo, hi = min(lo, hi), max(lo, hi)
        return {"O": True, "Theta": lo > 0, "Omega": lo > 0}.get(cls)
    if ratio.kind == "infinite":
        return cls in ("Omega", "omega")
    assert isinstance(ratio.value, float)
    v = abs(ratio.value)
    return {"O": True, "Theta": v > 0, "Omega": v > 0, "o": v == 0, "omega": False}[cls]
