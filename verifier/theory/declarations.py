"""A theorem's declaration: its params (sympy symbols and where their values come from), its
named quantities (sympy expressions over them) and its source, validated on construction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import sympy as sp

from verifier.errors import SpecError

Source = Literal["reconstruction", "literature", "user"]
ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")  # qualified names are <ID>_<quantity>


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
