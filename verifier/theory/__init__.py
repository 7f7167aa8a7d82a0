"""Theorem registry: capacity bounds as sympy formulas (docs/theory.md sections 3-5).

Each :class:`Theorem` has an id, a one-line statement, its assumptions, its parameters (sympy
symbols declared with assumptions, each set by the instance, a ``given:`` key, the ``against:``
claim's measurement, or a default), named quantities (sympy expressions) and a source label:
``reconstruction`` (docs/theory.md's own statements and constants), ``literature`` (with a citation)
or ``user`` (defined inline in a spec).

API for other modules (for example ``verifier/theory/multihop.py`` adding Gk, LBk, Ck)::

    from verifier.theory import INSTANCE_PARAMS, Param, Quantity, Theorem, register_theorem

    register_theorem(Theorem(
        id="Ck",
        statement="With chain-of-thought, d = R m + R + m + 2 suffices for every depth k.",
        source="reconstruction",
        params=(*INSTANCE_PARAMS, CODE_DIM),          # Param: symbol, meaning, given key, ...
        quantities=(Quantity("embedding_dim", R * m + R + m + 2, "d_model"),),
        assumptions=("shared attributes", "greedy decoding"),
    ))

Call :func:`register_theorem` at import of your module and list the module in
:data:`PROVIDERS`; the registry imports providers lazily on first lookup, so importing this
module has no side effect beyond defining the built-ins. Quantities are plain sympy expressions
over the params' symbols; write factorials as ``loggamma(N + 1)`` (never ``factorial``), so
that N up to 10^9 evaluates in microseconds through :func:`evaluate`.

Evaluation: :func:`evaluate` lambdifies an expression once (cached) with ``log(gamma(x))``
printed as ``math.lgamma(x)``; integer inputs stay Python ints, so integer-coefficient
polynomials (parameter counts) are exact. Non-finite or complex results raise
:class:`~verifier.errors.SpecError`. :func:`limit_at_infinity` and :func:`order_holds` decide
asymptotic statements with sympy's ``limit`` and say ``undecided`` where it cannot.
"""

from __future__ import annotations

import importlib
import math
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from verifier.errors import SpecError
from verifier.spec.formulas import SYMBOLS

Source = Literal["reconstruction", "literature", "user"]
Number = int | float
ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")  # qualified names are <ID>_<quantity>

# Modules whose import registers more built-in theorems (loaded on first lookup).
PROVIDERS: tuple[str, ...] = ("verifier.theory.multihop",)


# --- declarations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A symbol a theorem's quantities use, and where its value comes from.

    Attributes:
        symbol: the sympy symbol, with assumptions (positive, integer).
        meaning: one line.
        given: the ``given:`` key that sets it (``precision_bits`` for p), if any.
        default: value used when nothing sets it: a number, or an expression of params
            without defaults (G1's m defaults to the code-length bound).
        measured: the measure of the ``against:`` claim that sets it (``params`` for P).
        instance: set by the instance (N, R, k, A).
    """

    symbol: sp.Symbol
    meaning: str
    given: str | None = None
    default: sp.Expr | None = None
    measured: str | None = None
    instance: bool = False

    @property
    def name(self) -> str:
        """The symbol's name."""
        return str(self.symbol.name)


@dataclass(frozen=True)
class Quantity:
    """A named quantity: ``name = expr`` with a one-line meaning."""

    name: str
    expr: sp.Expr
    meaning: str


@dataclass(frozen=True, eq=False)
class Theorem:
    """One registry entry. Validated on construction (see :meth:`__post_init__`)."""

    id: str
    statement: str
    source: Source
    params: tuple[Param, ...]
    quantities: tuple[Quantity, ...]
    assumptions: tuple[str, ...] = ()
    citation: str | None = None
    _by_name: dict[str, Quantity] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        """Check ids, names, the citation, and that every free symbol is a declared param.

        Raises:
            ValueError: what is wrong, naming the theorem.
        """
        if not ID_PATTERN.match(self.id):
            raise ValueError(f"theorem id: expected letters and digits, got {self.id!r}")
        if self.source == "literature" and not self.citation:
            raise ValueError(f"theorem {self.id}: a literature theorem needs a citation")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"theorem {self.id}: params repeat a name: {names}")
        declared = {p.symbol for p in self.params}
        for p in self.params:
            if p.default is not None and p.default.free_symbols - declared:
                raise ValueError(
                    f"theorem {self.id}: default of {p.name} uses undeclared symbols "
                    f"{sorted(map(str, p.default.free_symbols - declared))}"
                )
        full = _default_subs(self, frozenset())
        for expr in full.values():
            if expr.free_symbols & set(full):
                raise ValueError(f"theorem {self.id}: the defaults of its params form a cycle")
        for q in self.quantities:
            if not q.name.isidentifier() or q.name in names:
                raise ValueError(f"theorem {self.id}: bad or clashing quantity name {q.name!r}")
            if q.name in self._by_name:
                raise ValueError(f"theorem {self.id}: quantity {q.name!r} defined twice")
            undeclared = q.expr.free_symbols - declared
            if undeclared:
                raise ValueError(
                    f"theorem {self.id}: quantity {q.name} uses undeclared symbols "
                    f"{sorted(map(str, undeclared))}; expected params {names}"
                )
            self._by_name[q.name] = q

    def quantity(self, name: str) -> Quantity:
        """The quantity called ``name``.

        Raises:
            SpecError: no such quantity, listing the theorem's.
        """
        if name not in self._by_name:
            raise SpecError(
                f"theorem {self.id} has no quantity {name!r}; expected one of "
                f"{', '.join(self._by_name)}"
            )
        return self._by_name[name]

    @property
    def quantity_names(self) -> tuple[str, ...]:
        """Quantity names, in order."""
        return tuple(q.name for q in self.quantities)

    def param(self, name: str) -> Param | None:
        """The param whose symbol is called ``name``, if any."""
        return next((p for p in self.params if p.name == name), None)

    def given_keys(self) -> dict[str, Param]:
        """``given:`` key -> param."""
        return {p.given: p for p in self.params if p.given is not None}

    def resolved(self, supplied: frozenset[str]) -> dict[str, sp.Expr]:
        """Quantities with each unsupplied param's default substituted (exact, cached)."""
        return _resolved(self, supplied)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what ``verifier theorems --json`` prints and the HTTP API serves)."""
        return {
            "id": self.id,
            "statement": self.statement,
            "source": self.source,
            "citation": self.citation,
            "assumptions": list(self.assumptions),
            "symbols": [
                {
                    "name": p.name,
                    "meaning": p.meaning,
                    "assumptions": sorted(
                        k
                        for k, v in p.symbol.assumptions0.items()
                        if v and k in ("positive", "integer", "real")
                    ),
                    "set_by": _set_by(p),
                    "default": None if p.default is None else sp.sstr(p.default),
                }
                for p in self.params
            ],
            "quantities": [
                {
                    "name": q.name,
                    "meaning": q.meaning,
                    "text": sp.sstr(q.expr),
                    "latex": sp.latex(q.expr),
                }
                for q in self.quantities
            ],
        }


def _set_by(p: Param) -> str:
    if p.instance:
        return "instance"
    parts = [f"given.{p.given}"] if p.given else []
    if p.measured:
        parts.append(f"against.{p.measured}")
    if p.default is not None:
        parts.append("default")
    return " | ".join(parts) or "none"


def _default_subs(theorem: Theorem, supplied: frozenset[str]) -> dict[sp.Symbol, sp.Expr]:
    """Unsupplied params -> their defaults, with defaults inside defaults substituted."""
    subs = {
        p.symbol: p.default
        for p in theorem.params
        if p.default is not None and p.name not in supplied
    }
    for _ in range(len(subs)):
        subs = {s: e.xreplace(subs) for s, e in subs.items()}
    return subs


@lru_cache(maxsize=256)
def _resolved(theorem: Theorem, supplied: frozenset[str]) -> dict[str, sp.Expr]:
    subs = _default_subs(theorem, supplied)
    resolved = {q.name: q.expr.xreplace(subs) if subs else q.expr for q in theorem.quantities}
    resolved.update({f"default:{s.name}": e for s, e in subs.items()})
    return resolved


# --- the registry ----------------------------------------------------------------------------

_REGISTRY: dict[str, Theorem] = {}
_PROVIDERS_LOADED: set[str] = set()


def register_theorem(theorem: Theorem, *, replace: bool = False) -> Theorem:
    """Add ``theorem`` to the registry and return it.

    Raises:
        ValueError: its id is taken (unless ``replace``).
    """
    if theorem.id in _REGISTRY and not replace and _REGISTRY[theorem.id] is not theorem:
        raise ValueError(f"theorem id {theorem.id!r} is already registered")
    _REGISTRY[theorem.id] = theorem
    return theorem


def _load_providers() -> None:
    for module in PROVIDERS:
        if module not in _PROVIDERS_LOADED:
            _PROVIDERS_LOADED.add(module)
            importlib.import_module(module)


def theorems() -> list[Theorem]:
    """Every registered theorem, built-ins first."""
    _load_providers()
    return list(_REGISTRY.values())


def registry_json() -> list[dict[str, Any]]:
    """The registry's JSON form (what ``verifier theorems --json`` and ``/v1/theorems`` serve)."""
    return [t.to_dict() for t in theorems()]


def get_theorem(theorem_id: str) -> Theorem:
    """The theorem with this id.

    Raises:
        SpecError: unknown id, listing the known ones.
    """
    if theorem_id not in _REGISTRY:
        _load_providers()
    if theorem_id not in _REGISTRY:
        raise SpecError(
            f"unknown theorem {theorem_id!r}; expected one of {', '.join(_REGISTRY)} "
            f"(see `verifier theorems`)"
        )
    return _REGISTRY[theorem_id]


# --- shared params ---------------------------------------------------------------------------

N, R, k = SYMBOLS["N"], SYMBOLS["R"], SYMBOLS["k"]
m, p, delta = SYMBOLS["m"], SYMBOLS["p"], SYMBOLS["delta"]
A = sp.Symbol("A", positive=True, integer=True)  # attributes: N (shared) or R*N (disjoint)
gamma = sp.Symbol("gamma", positive=True)
P = sp.Symbol("P", positive=True, integer=True)

INSTANCE_PARAMS: tuple[Param, ...] = (
    Param(N, "entities", instance=True),
    Param(R, "relations", instance=True),
    Param(k, "hops (1 for a bijection instance)", instance=True),
    Param(A, "attributes: N (shared) or R*N (disjoint)", instance=True),
)
PRECISION = Param(p, "bits per stored parameter", given="precision_bits")
DELTA = Param(
    delta, "failure probability of the random codebook", given="delta", default=sp.Rational(1, 100)
)
GAMMA = Param(
    gamma,
    "target margin 1 - mu (coherence mu <= 1 - gamma)",
    given="gamma",
    default=sp.Rational(1, 2),
)
PARAM_COUNT = Param(P, "parameter count of the model", given="params", measured="params")


def instance_values(instance: Any) -> dict[str, int]:
    """N, R, k and A of a validated instance model."""
    n, r = int(instance.entities), int(instance.relations)
    disjoint = getattr(instance, "attributes", "shared") == "disjoint"
    return {"N": n, "R": r, "k": int(getattr(instance, "hops", 1)), "A": n * r if disjoint else n}


def instance_exprs(instance: Any, over: str) -> dict[str, sp.Expr]:
    """Instance values as exact sympy numbers, except ``over`` (left free) and A in it."""
    values: dict[str, sp.Expr] = {
        name: sp.Integer(v) for name, v in instance_values(instance).items() if name != over
    }
    disjoint = getattr(instance, "attributes", "shared") == "disjoint"
    if over in ("N", "R"):
        values["A"] = (values.get("N", N) * values.get("R", R)) if disjoint else values.get("N", N)
    return values


# --- built-in theorems -----------------------------------------------------------------------

LOG2_FACT = sp.loggamma(N + 1) / sp.log(2)  # log2(N!) without building N!
G1_CODE_LENGTH = 2 * sp.log(N**2 / delta) / (1 - gamma) ** 2
G1_D = R * m + R + m
G1_W = 2 * R * m
G1_PARAMS = (N + R) * G1_D + 2 * G1_D + 4 * G1_D * R + 2 * G1_D * G1_W + G1_W + G1_D + G1_D * A

G1 = register_theorem(
    Theorem(
        id="G1",
        statement="The geometric construction recalls all N*R facts exactly with margin gamma at "
        "d = R m + R + m, m = 2 ln(N^2/delta)/(1-gamma)^2 = O(log N), so d = O(R log N).",
        source="reconstruction",
        params=(
            *INSTANCE_PARAMS,
            Param(
                m,
                "code width (default: the union-bound code length, unrounded)",
                given="code_dim",
                default=G1_CODE_LENGTH,
            ),
            DELTA,
            GAMMA,
        ),
        quantities=(
            Quantity(
                "code_length",
                G1_CODE_LENGTH,
                "Rademacher code width at which mu <= 1 - gamma w.p. >= 1 - delta",
            ),
            Quantity("code_dim", sp.ceiling(G1_CODE_LENGTH), "the smallest integer width >= it"),
            Quantity("embedding_dim", G1_D, "d_model = R m + R + m"),
            Quantity("mlp_width", G1_W, "d_mlp = 2 R m"),
            Quantity(
                "params",
                G1_PARAMS,
                "(N+R) d + L d + 4 d d_head H + 2 d d_mlp + d_mlp + d + d A, L = 2, H = 1, "
                "d_head = R",
            ),
            Quantity("fact_params", N * G1_D, "fact-specific parameters: the subject table N d"),
            Quantity(
                "mlp_params",
                2 * G1_D * G1_W + G1_W + G1_D,
                "W_in, b_in, W_out, b_out: independent of the facts",
            ),
        ),
        assumptions=(
            "one head, d_head = R, L = 2 positions [r, x]",
            "Rademacher codes +-1/sqrt(m); union bound over attribute pairs",
            "exact recall iff mu < 1; the verifier measures mu exactly",
        ),
    )
)

LB1 = register_theorem(
    Theorem(
        id="LB1",
        statement="A model answering all N*R facts stores R log2(N!) bits: P p >= R log2(N!), and "
        "N d p >= R log2(N!) when only the subject table is fact-specific.",
        source="reconstruction",
        params=(*INSTANCE_PARAMS, PRECISION, PARAM_COUNT),
        quantities=(
            Quantity("bits", R * LOG2_FACT, "R log2(N!): the entropy of R random bijections"),
            Quantity("min_params", R * LOG2_FACT / p, "P >= R log2(N!) / p"),
            Quantity(
                "min_embedding_dim",
                R * LOG2_FACT / (N * p),
                "d >= R log2(N!) / (N p) with a fact-specific subject table only",
            ),
            Quantity(
                "approx_min_embedding_dim",
                R * (sp.log(N, 2) - sp.log(sp.E, 2)) / p,
                "R (log2 N - log2 e) / p, Stirling's leading terms (below the exact bound)",
            ),
            Quantity(
                "bits_per_param", R * LOG2_FACT / P, "R log2(N!) / P for a model with P parameters"
            ),
        ),
        assumptions=(
            "pi_1..pi_R uniform and independent",
            "p bits per parameter",
            "every fact recalled exactly",
        ),
    )
)

NLB24 = register_theorem(
    Theorem(
        id="NLB24",
        statement="An associative memory (frozen random embeddings) stores the N*R facts in its "
        "MLP or attention with parameters linear in N*R, up to log factors.",
        source="literature",
        citation="Nichani, Lee, Bietti (2024), Understanding Factual Recall in Transformers via "
        "Associative Memories, arXiv:2412.06538",
        params=INSTANCE_PARAMS,
        quantities=(
            Quantity("facts", N * R, "n = N R facts"),
            Quantity("mlp_params", N * R, "memory parameters, Theta(N R) up to logs (constant 1)"),
        ),
        assumptions=("frozen random embeddings", "log factors and constants dropped (constant 1)"),
    )
)

_n_facts = N * R
BARNFIELD26 = register_theorem(
    Theorem(
        id="BARNFIELD26",
        statement="A d x d linear associative memory with top-1 retrieval of n = N R facts needs "
        "d^2 of order n log n.",
        source="literature",
        citation="Barnfield et al. (2026), capacity of linear associative memories with top-1 "
        "retrieval: d^2 = Theta(n log n)",
        params=INSTANCE_PARAMS,
        quantities=(
            Quantity("memory_params", _n_facts * sp.log(_n_facts), "d^2 = n ln n (constant 1)"),
            Quantity("embedding_dim", sp.sqrt(_n_facts * sp.log(_n_facts)), "d = sqrt(n ln n)"),
            Quantity(
                "params",
                (N + R) * sp.sqrt(_n_facts * sp.log(_n_facts))
                + _n_facts * sp.log(_n_facts)
                + A * sp.sqrt(_n_facts * sp.log(_n_facts)),
                "embeddings (N+R) d + memory d^2 + unembedding A d",
            ),
        ),
        assumptions=("n = N R facts", "constants dropped (constant 1)"),
    )
)

COMPACT_D = R * m + R
COMPACT_W = 2 * R * m
COMPACT_PARAMS = (
    (N + R) * COMPACT_D
    + 2 * COMPACT_D
    + 4 * COMPACT_D * R
    + 2 * COMPACT_D * COMPACT_W
    + COMPACT_W
    + COMPACT_D
    + COMPACT_D * A
)

COMPACT = register_theorem(
    Theorem(
        id="COMPACT",
        statement="The compact geometric construction (G1 without its answer slot: the MLP "
        "cancels the relations not asked, the unembedding reads every slot) recalls all N*R "
        "facts exactly with margin 1 - mu at d = R m + R, MLP width 2 R m.",
        source="reconstruction",
        params=(
            *INSTANCE_PARAMS,
            Param(
                m,
                "code width (default: the union-bound code length, unrounded)",
                given="code_dim",
                default=G1_CODE_LENGTH,
            ),
            DELTA,
            GAMMA,
        ),
        quantities=(
            Quantity("code_dim", sp.ceiling(G1_CODE_LENGTH), "the smallest integer width >= it"),
            Quantity("embedding_dim", COMPACT_D, "d_model = R m + R"),
            Quantity("mlp_width", COMPACT_W, "d_mlp = 2 R m"),
            Quantity(
                "params",
                COMPACT_PARAMS,
                "(N+R) d + L d + 4 d d_head H + 2 d d_mlp + d_mlp + d + d A, L = 2, H = 1, "
                "d_head = R",
            ),
            Quantity("fact_params", N * COMPACT_D, "fact-specific parameters: N (R m + R)"),
        ),
        assumptions=(
            "one head, d_head = R, L = 2 positions [r, x]",
            "the same codebook and coherence as G1",
        ),
    )
)


# --- evaluation ------------------------------------------------------------------------------


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


def evaluate(expr: sp.Expr, values: Mapping[str, Number], what: str = "quantity") -> Number:
    """``expr`` at ``values`` in float64 (exact ints where the arithmetic allows).

    Raises:
        SpecError: a symbol has no value, or the result is not a finite real number.
    """
    names = _names(expr)
    missing = [n for n in names if n not in values]
    if missing:
        raise SpecError(f"{what} needs {', '.join(missing)}, which has no value here")
    try:
        result = compiled(expr, names)(*(values[n] for n in names))
    except (OverflowError, ValueError, ZeroDivisionError, TypeError) as exc:
        at = ", ".join(f"{n}={values[n]:g}" for n in names)
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


# --- asymptotics -----------------------------------------------------------------------------

LimitKind = Literal["finite", "infinite", "undecided"]


@dataclass(frozen=True)
class LimitResult:
    """A sympy limit: ``value`` is a number (finite), ``oo``/``-oo`` (infinite), or None."""

    kind: LimitKind
    value: float | str | None
    text: str  # sympy's answer or the reason it is undecided
    low: float | None = None  # for accumulation bounds: the interval
    high: float | None = None


class _Timeout(Exception):
    pass


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Timeout` after ``seconds`` (SIGALRM, main thread only; else no-op)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
        with _deadline(timeout_s):
            value = sp.limit(expr, var, sp.oo)
    except _Timeout:
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


# --- the vocabulary of a bound claim ---------------------------------------------------------

CODE_DIM = Param(m, "code width m", given="code_dim")
STANDARD_PARAMS: tuple[Param, ...] = (
    *INSTANCE_PARAMS,
    PRECISION,
    DELTA,
    GAMMA,
    CODE_DIM,
    PARAM_COUNT,
)
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
    from verifier.spec.formulas import parse_formula  # local: keeps the registry import-light

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
