"""The one evaluator of the registry's sympy expressions: lambdified once per expression
(cached), ``log(gamma(x))`` printed as ``math.lgamma(x)`` so that N! is never built.

Integer inputs stay Python ints, so integer-coefficient polynomials (model sizes, parameter
counts) are exact; anything transcendental is float64. Intermediates are bounded: a power with
a symbolic exponent (``R**k``) is first evaluated in float64, so an exact integer that would
leave float64's range is refused before Python builds it, and no result above float64's range
is returned. Non-finite or complex results raise :class:`~verifier.errors.SpecError`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from verifier.errors import SpecError

Number = int | float


class _MathPrinter(PythonCodePrinter):  # type: ignore[misc]
    """Python code printer that writes ``log(gamma(x))`` as ``lgamma(x)`` (no N! is built)."""

    def _print_log(self, expr: sp.Expr) -> str:
        arg = expr.args[0]
        if isinstance(arg, sp.gamma):
            return f"lgamma({self._print(arg.args[0])})"
        return str(super()._print_log(expr))

    def _print_loggamma(self, expr: sp.Expr) -> str:
        return f"lgamma({self._print(expr.args[0])})"


_FLOAT_MAX = sys.float_info.max
_PRINTER_SETTINGS = {
    "fully_qualified_modules": False,
    "inline": True,
    "allow_unknown_functions": True,
}
_MODULES: list[Any] = [{"lgamma": math.lgamma, "ceiling": math.ceil, "floor": math.floor}, "math"]


@lru_cache(maxsize=2048)
def compiled(expr: sp.Expr, names: tuple[str, ...]) -> Callable[..., Any]:
    """``expr`` lambdified once over the symbols called ``names`` (cached)."""
    by_name = {s.name: s for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    args = [by_name.get(n, sp.Symbol(n)) for n in names]
    fn: Callable[..., Any] = sp.lambdify(
        args, expr, modules=_MODULES, printer=_MathPrinter(_PRINTER_SETTINGS)
    )
    return fn


@lru_cache(maxsize=2048)
def _names(expr: sp.Expr) -> tuple[str, ...]:
    return tuple(sorted(str(s.name) for s in expr.free_symbols if isinstance(s, sp.Symbol)))


@lru_cache(maxsize=2048)
def _has_symbolic_power(expr: sp.Expr) -> bool:
    return any(not power.exp.is_number for power in expr.atoms(sp.Pow))


def evaluate_expression(
    expr: sp.Expr, values: Mapping[str, Number], what: str = "quantity"
) -> Number:
    """``expr`` at ``values``: exact ints where the inputs and the arithmetic are integer,
    float64 otherwise.

    Raises:
        SpecError: a symbol has no value, an intermediate or the result leaves float64's
            range, or the result is not a finite real number.
    """
    names = _names(expr)
    missing = [n for n in names if n not in values]
    if missing:
        raise SpecError(f"{what} needs {', '.join(missing)}, which has no value here")
    args = [values[n] for n in names]
    fn = compiled(expr, names)
    try:
        if _has_symbolic_power(expr) and any(isinstance(a, int) for a in args):
            fn(*(float(a) for a in args))  # overflows where an exact intermediate leaves float64
        result = fn(*args)
    except (OverflowError, ValueError, ZeroDivisionError, TypeError) as exc:
        at = ", ".join(f"{n}={values[n]:g}" for n in names)
        raise SpecError(f"{what} cannot be evaluated at {at or 'constants'}: {exc}") from None
        raise SpecError(f"{what} cannot be evaluated at {at or 'constants'}: {exc}") from None
    if isinstance(result, bool) or not isinstance(result, int | float):
        at = ", ".join(f"{n}={values[n]:g}" for n in names)
        raise SpecError(f"{what} evaluates to {result!r} at {at}; expected a finite real number")
    if isinstance(result, int) and abs(result) > _FLOAT_MAX:
        at = ", ".join(f"{n}={values[n]:g}" for n in names)
        raise SpecError(
            f"{what} evaluates to an integer above float64's range at {at}; "
            f"expected a finite real number"
        )
    if isinstance(result, float) and not math.isfinite(result):
        at = ", ".join(f"{n}={values[n]:g}" for n in names)
        raise SpecError(f"{what} evaluates to {result!r} at {at}; expected a finite real number")
    return result


def exact_number(value: Number) -> sp.Expr:
    """A number as an exact sympy number (floats through their shortest decimal)."""
    return sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(float(value)))


def exact_integer(expr: sp.Expr, values: Mapping[str, int], what: str = "size") -> int:
    """``expr`` at integer ``values`` as an exact int (a model size or parameter count).

    Raises:
        SpecError: as :func:`evaluate_expression`, or the value is not an integer.
    """
    result = evaluate_expression(expr, values, what)
    if not isinstance(result, int):
        raise SpecError(f"{what} evaluates to {result!r}; expected an exact integer")
    return result
