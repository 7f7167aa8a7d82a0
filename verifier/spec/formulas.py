"""Safe formulas: a whitelist over Python's ``ast``, turned into sympy.

Spec formulas such as ``"<= 20*R*log(N)"`` are parsed here and nowhere else. The grammar is
numbers, the symbols a caller allows (the instance's N, R, k, m, d, p, delta by default),
``+ - * / **``, unary minus, and the functions in :data:`FUNCTIONS`. Anything else (names,
attributes, subscripts, lambdas, keyword arguments, strings) is rejected before sympy sees it:
no ``eval``, no ``sympify`` on raw text.

Constants are exact rationals, and every exact intermediate is bounded *before* sympy builds
it: a constant above ``MAX_CONSTANT`` in magnitude, a constant exponent above
``MAX_EXPONENT``, and an exact numerator or denominator above ``MAX_EXACT_DIGITS`` digits are
refused, so ``10**10**10`` or ``(2/3)**(10**8)`` costs microseconds to refuse instead of
gigabytes to compute. A formula that sympy folds to an undefined or complex value
(``log(0*N)``, ``sqrt(-N)``, ``(-1)**0.5``), a log or root of a value sympy knows is negative
(``log(-N)``, ``log(1-N)``), a log base that is not positive or is 1 (``log(N, 0)``), and any
character outside ASCII (Python would read ``ℕ`` as ``N``) are refused too.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sympy as sp

from verifier.errors import FormulaError
from verifier.spec.symbols import COMPARATORS, REAL_SYMBOLS, SYMBOL_NAMES

MAX_FORMULA_CHARS = 500
MAX_FORMULA_NODES = 200
MAX_CONSTANT = 1e300  # any constant sub-expression above this is refused
MAX_EXPONENT = 10_000  # |exponent| of a constant power: (2/3)**(10**8) is refused
MAX_EXACT_DIGITS = 1_000  # digits of an exact constant's numerator or denominator
_MAX_EXACT_BITS = math.ceil(MAX_EXACT_DIGITS * math.log2(10))
_UNDEFINED = (sp.zoo, sp.nan, sp.oo, -sp.oo)

# The instance symbols (verifier/spec/symbols.py): positive, integers but for p and delta.
SYMBOLS: dict[str, sp.Symbol] = {
    name: sp.Symbol(name, positive=True)
    if name in REAL_SYMBOLS
    else sp.Symbol(name, positive=True, integer=True)
    for name in SYMBOL_NAMES
}


def _log(*args: sp.Expr) -> sp.Expr:
    if len(args) == 1:
        return sp.log(args[0])
    return sp.log(args[0], args[1])


FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], tuple[int, ...]]] = {
    "log": (_log, (1, 2)),  # natural log, or log(x, base)
    "ln": (sp.log, (1,)),
    "log2": (lambda x: sp.log(x, 2), (1,)),
    "sqrt": (sp.sqrt, (1,)),
    "exp": (sp.exp, (1,)),
    "ceil": (sp.ceiling, (1,)),
    "floor": (sp.floor, (1,)),
    "min": (sp.Min, (2, 3, 4, 5, 6, 7, 8)),
    "max": (sp.Max, (2, 3, 4, 5, 6, 7, 8)),
}

_FLOAT_FUNCS: dict[str, Callable[..., float]] = {
    "log": lambda x, b=None: math.log(x) if b is None else math.log(x, b),
    "ln": math.log,
    "log2": math.log2,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "ceil": lambda x: float(math.ceil(x)),
    "floor": lambda x: float(math.floor(x)),
    "min": min,
    "max": max,
}

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}

_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its source text, sympy expression and free symbol names."""

    text: str
    expr: sp.Expr
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Evaluate in float64 at ``values`` (every free symbol must be given).

        Raises:
            FormulaError: a symbol has no value, or the value is not finite or not real.
        """
        missing = sorted(self.names - set(values))
        if missing:
            raise FormulaError(
                f"formula {self.text!r} uses {', '.join(missing)}, which has no value here; "
                f"expected one of {', '.join(sorted(values)) or '(none)'}"
            )
        fn = _lambdified(self.expr, tuple(sorted(self.names)))
        try:
            result = fn(*(float(values[n]) for n in sorted(self.names)))
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise FormulaError(f"formula {self.text!r} cannot be evaluated: {exc}") from None
        if isinstance(result, complex) or not math.isfinite(float(result)):
            raise FormulaError(
                f"formula {self.text!r} evaluates to {result!r}; expected a finite real number"
            )
        return float(result)


@dataclass(frozen=True)
class Comparison:
    """``<op> formula``, as written in an expectation."""

    op: str
    formula: Formula

    def holds(self, measured: float, values: Mapping[str, float], rel_tol: float = 1e-9) -> bool:
        """Whether ``measured <op> formula(values)``; equality within ``rel_tol``."""
        bound = self.formula.evaluate(values)
        close = math.isclose(measured, bound, rel_tol=rel_tol, abs_tol=rel_tol)
        if self.op == "<=":
            return measured <= bound or close
        if self.op == ">=":
            return measured >= bound or close
        if self.op == "<":
            return measured < bound and not close
        if self.op == ">":
            return measured > bound and not close
        if self.op == "==":
            return close
        return not close

    def __str__(self) -> str:
        return f"{self.op} {self.formula.text}"


@lru_cache(maxsize=1024)
def _lambdified(expr: sp.Expr, names: tuple[str, ...]) -> Callable[..., Any]:
    args = [sp.Symbol(n, **_assumptions(expr, n)) for n in names]
    return sp.lambdify(args, expr, modules=[{"ceiling": math.ceil, "floor": math.floor}, "math"])  # type: ignore[no-any-return]


def _assumptions(expr: sp.Expr, name: str) -> dict[str, bool]:
    for sym in expr.free_symbols:
        if sym.name == name:
            return dict(sym.assumptions0)
    return {}


def parse_formula(
    text: str,
    symbols: Iterable[str] | Mapping[str, sp.Symbol] = SYMBOLS,
) -> Formula:
    """Parse ``text`` into a :class:`Formula`, accepting only whitelisted syntax.

    Args:
        text: e.g. ``"20*R*log(N)"``.
        symbols: the names allowed (with their sympy symbols, or names for plain positive ones).

    Raises:
        FormulaError: syntax outside the whitelist, an unknown symbol or function, a constant
            or exact intermediate over its bound (``MAX_CONSTANT``, ``MAX_EXPONENT``,
            ``MAX_EXACT_DIGITS``), an undefined or complex value, or a formula longer than
            ``MAX_FORMULA_CHARS``.
    """
    table = _symbol_table(symbols)
    if not isinstance(text, str):
        raise FormulaError(f"expected a formula string, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(
            f"formula is {len(text)} characters; expected at most {MAX_FORMULA_CHARS}"
        )
    for char in text:
        if not char.isascii():
            raise FormulaError(
                f"formula {text!r}: the character U+{ord(char):04X} "
                f"{unicodedata.name(char, 'UNNAMED')} is not allowed; expected ASCII "
                "(numbers, symbols, + - * / ** and function names)"
            )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"formula {text!r} is not valid syntax: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise FormulaError(f"formula {text!r} is nested too deeply") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_FORMULA_NODES:
        raise FormulaError(f"formula has {count} nodes; expected at most {MAX_FORMULA_NODES}")
    builder = _Builder(text, table)
    expr, _ = builder.build(tree.body)
    names = frozenset(s.name for s in expr.free_symbols)
    return Formula(text=text.strip(), expr=expr, names=names)


def parse_comparison(
    text: str, symbols: Iterable[str] | Mapping[str, sp.Symbol] = SYMBOLS
) -> Comparison:
    """Parse ``"<op> formula"`` (ops: ``<= >= == != < >``).

    Raises:
        FormulaError: no leading comparison operator, or a bad formula.
    """
    match = _COMPARISON.match(text)
    if not match:
        raise FormulaError(
            f"expected '<op> formula' with op one of {' '.join(COMPARATORS)}, got {text!r}"
        )
    return Comparison(op=match.group(1), formula=parse_formula(match.group(2), symbols))


def _symbol_table(symbols: Iterable[str] | Mapping[str, sp.Symbol]) -> dict[str, sp.Symbol]:
    if isinstance(symbols, Mapping):
        return dict(symbols)
    return {n: SYMBOLS.get(n, sp.Symbol(n, positive=True)) for n in symbols}


class _Builder:
    """Walks a whitelisted AST, returning (sympy expression, float value if constant)."""

    def __init__(self, text: str, symbols: Mapping[str, sp.Symbol]) -> None:
        self.text = text
        self.symbols = symbols

    def reject(self, what: str) -> FormulaError:
        return FormulaError(
            f"formula {self.text!r}: {what} is not allowed; expected numbers, symbols "
            f"({', '.join(sorted(self.symbols))}), + - * / ** and "
            f"{', '.join(sorted(FUNCTIONS))}"
        )

    def build(self, node: ast.AST) -> tuple[sp.Expr, float | None]:
        expr, value = self._build(node)
        self._check_exact(expr)
        return expr, value

    def _build(self, node: ast.AST) -> tuple[sp.Expr, float | None]:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.reject(f"the constant {value!r}")
            return self._number(value), float(value)
        if isinstance(node, ast.Name):
            if node.id not in self.symbols:
                raise FormulaError(
                    f"formula {self.text!r}: unknown symbol {node.id!r}; expected one of "
                    f"{', '.join(sorted(self.symbols))}"
                )
            return self.symbols[node.id], None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            expr, value = self.build(node.operand)
            if isinstance(node.op, ast.USub):
                return -expr, None if value is None else -value
            return expr, value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, lv = self.build(node.left)
            right, rv = self.build(node.right)
            value = self._fold(node.op, lv, rv)
            if isinstance(node.op, ast.Pow):
                if rv is None and lv is not None and abs(lv) > 1e6:
                    raise self.reject("a huge base raised to a symbolic power")
                self._check_power(left, rv)
                self._check_real_power(left, right)
            return _BINOPS[type(node.op)](left, right), value
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.reject(type(node).__name__)

    def _call(self, node: ast.Call) -> tuple[sp.Expr, float | None]:
        if not isinstance(node.func, ast.Name):
            raise self.reject("calling anything but a whitelisted function")
        name = node.func.id
        if name not in FUNCTIONS:
            raise FormulaError(
                f"formula {self.text!r}: unknown function {name!r}; expected one of "
                f"{', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise self.reject("a keyword argument")
        fn, arities = FUNCTIONS[name]
        if len(node.args) not in arities:
            raise FormulaError(
                f"formula {self.text!r}: {name} takes {' or '.join(map(str, arities))} "
                f"argument(s), got {len(node.args)}"
            )
        built = [self.build(a) for a in node.args]
        self._check_domain(name, [e for e, _ in built])
        values = [v for _, v in built]
        value: float | None = None
        if all(v is not None for v in values):
            try:
                value = float(_FLOAT_FUNCS[name](*values))
            except (ValueError, OverflowError, ZeroDivisionError):
                raise FormulaError(
                    f"formula {self.text!r}: {name} of {values} is undefined or overflows"
                ) from None
            self._check_constant(value)
        return fn(*(e for e, _ in built)), value

    def _fold(self, op: ast.operator, lv: float | None, rv: float | None) -> float | None:
        if lv is None or rv is None:
            return None
        try:
            raw = _BINOPS[type(op)](lv, rv)
        except ZeroDivisionError:
            raise FormulaError(f"formula {self.text!r}: division by zero") from None
        except OverflowError:
            raise FormulaError(f"formula {self.text!r}: a constant overflows") from None
        if isinstance(raw, complex):  # (-1)**0.5: Python's float power gives a complex
            raise FormulaError(
                f"formula {self.text!r}: a constant is complex (a negative base to a "
                "fractional power); expected a real formula"
            )
        value = float(raw)
        self._check_constant(value)
        return value

    def _check_real_power(self, base: sp.Expr, exponent: sp.Expr) -> None:
        """Refuse ``base**exponent`` with a base sympy knows is negative and an exponent not
        known to be an integer: ``(-2)**(1/N)`` or ``(-N)**p`` is complex."""
        if base.is_extended_negative and exponent.is_integer is not True:
            raise FormulaError(
                f"formula {self.text!r} is complex (a negative base to a power that may be "
                "fractional); expected a real formula"
            )

    def _check_domain(self, name: str, args: list[sp.Expr]) -> None:
        """Refuse a log of a value sympy knows is not positive, a log base that is not positive
        or is 1 (``log(N, 0)`` would fold to 0), and a root of a known negative value."""
        if name in ("log", "ln", "log2") and args[0].is_extended_nonpositive:
            raise FormulaError(
                f"formula {self.text!r}: the log of {args[0]}, which is not positive, is "
                "undefined; expected a positive argument"
            )
        if name == "log" and len(args) == 2:
            base = args[1]
            if base.is_extended_nonpositive or base == 1:
                raise FormulaError(
                    f"formula {self.text!r}: the log base {base} is undefined; expected a "
                    "positive base other than 1"
                )
        if name == "sqrt" and args[0].is_extended_negative:
            raise FormulaError(
                f"formula {self.text!r} is complex: the root of {args[0]}, which is negative, "
                "is undefined over the reals; expected a real formula"
            )

    def _check_constant(self, value: float) -> None:
        if not math.isfinite(value) or abs(value) > MAX_CONSTANT:
            raise FormulaError(
                f"formula {self.text!r}: a constant reaches {value!r}; "
                f"expected at most {MAX_CONSTANT:g} in magnitude"
            )

    def _check_power(self, base: sp.Expr, value: float | None) -> None:
        """Refuse a power whose exact value sympy would need too many digits for."""
        if value is None:
            return  # a symbolic exponent stays symbolic
        if abs(value) > MAX_EXPONENT:
            raise FormulaError(
                f"formula {self.text!r}: the exponent {_shown(value)} is too large; expected "
                f"at most {MAX_EXPONENT:,} in magnitude (MAX_EXPONENT)"
            )
        coeff = base.as_coeff_Mul()[0]  # sympy distributes an integer power over it
        if isinstance(coeff, sp.Rational) and coeff not in (0, 1, -1):
            bits = max(abs(int(coeff.p)).bit_length(), int(coeff.q).bit_length())
            if bits * math.ceil(abs(value)) > _MAX_EXACT_BITS:
                raise self._too_many_digits()

    def _check_exact(self, expr: sp.Expr) -> None:
        """Every exact number in ``expr`` within ``MAX_EXACT_DIGITS``; no undefined value."""
        if expr.has(*_UNDEFINED):
            raise FormulaError(
                f"formula {self.text!r} is undefined (it divides by zero or takes the log of "
                "zero); expected a finite real formula"
            )
        if expr.has(sp.I):
            raise FormulaError(
                f"formula {self.text!r} is complex (a root or log of a negative value); "
                "expected a real formula"
            )
        for atom in expr.atoms(sp.Rational):
            if max(abs(int(atom.p)).bit_length(), int(atom.q).bit_length()) > _MAX_EXACT_BITS:
                raise self._too_many_digits()

    def _too_many_digits(self) -> FormulaError:
        return FormulaError(
            f"formula {self.text!r}: a constant needs more than {MAX_EXACT_DIGITS:,} digits "
            "exactly (MAX_EXACT_DIGITS); expected a smaller constant"
        )

    def _number(self, value: int | float) -> sp.Expr:
        if isinstance(value, int) and value.bit_length() > 1024:  # float() would overflow
            raise FormulaError(
                f"formula {self.text!r}: a constant of about {int(value.bit_length() * 0.30103)} "
                "digits; "
                f"expected at most {MAX_CONSTANT:g} in magnitude"
            )
        self._check_constant(float(value))
        if isinstance(value, int):
            return sp.Integer(value)
        return sp.Rational(repr(value))  # exact decimal, not the binary float


def _shown(value: float) -> str:
    """A number for a message: integers without a fraction part."""
    return f"{int(value):,}" if value.is_integer() and abs(value) < 1e18 else f"{value:g}"
