"""Bound claims: a registry theorem's quantities at the instance (docs/theory.md sections 3-5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from verifier.errors import SpecError
from verifier.spec.claims.base import ClaimBase
from verifier.spec.instances import BijectionInstance, MultiHopInstance

if TYPE_CHECKING:
    from verifier.theory import Vocabulary


def _claim_measures() -> set[str]:
    """Every measure some claim kind reports (what ``measured_<name>`` may name)."""
    names: set[str] = set()
    stack: list[type[ClaimBase]] = [ClaimBase]
    while stack:
        cls = stack.pop()
        names.update(cls.MEASURES)
        stack.extend(cls.__subclasses__())
    return names


def _known(theorem_id: str) -> None:
    """Raise a ValueError naming the registry's ids unless ``theorem_id`` is one of them."""
    from verifier.theory import get_theorem  # sympy: imported for bound claims only

    try:
        get_theorem(theorem_id)
    except SpecError as exc:
        raise ValueError(exc.message) from None


def _vocabulary(claim: BoundClaim) -> Vocabulary:
    """The names the claim may use (:func:`verifier.theory.claim_vocabulary`), errors as
    ValueErrors so that pydantic locates them."""
    from verifier.theory import claim_vocabulary  # sympy: imported for bound claims only

    try:
        return claim_vocabulary(claim, _claim_measures())
    except SpecError as exc:
        raise ValueError(exc.message) from None


class BoundClaim(ClaimBase):
    """Evaluate a registry theorem's quantities at the instance (verifier/theory/__init__.py).

    Measures: the theorem's quantities by name, ``versus`` theorems' as ``<ID>_<name>``, the
    inline ``quantities``, ``measured_<name>`` for the ``against`` claim's numeric measures, and
    for asymptotic claims ``limit``/``limit_finite`` (``limit:``) or ``order_holds`` (``order:``,
    expected true unless stated). Formulas may use all of these and the theorems' symbols.
    """

    check: Literal["bound"]
    theorem: str | None = Field(None, description="registry id (see `verifier theorems`)")
    versus: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="more theorems; formulas use their quantities as <ID>_<name>",
    )
    given: dict[str, int | float | str] = Field(
        default_factory=dict,
        description="given symbols: precision_bits, delta, gamma, code_dim, params (number or "
        "formula over N, R, k)",
    )
    against: str | None = Field(
        None, description="an earlier claim; its numeric measures are measured_<name>"
    )
    quantities: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="user quantities, name: formula"
    )
    limit: str | None = Field(None, description="formula whose limit as `over` -> oo is measured")
    order: str | None = Field(
        None, description="'f = Theta(g)' (O, Theta, Omega, o, omega) as `over` -> oo"
    )
    over: Literal["N", "R", "k"] = Field("N", description="the variable of limit and order")

    @field_validator("theorem")
    @classmethod
    def _known_theorem(cls, value: str | None) -> str | None:
        if value is not None:
            _known(value)
        return value

    @field_validator("versus")
    @classmethod
    def _known_versus(cls, value: list[str]) -> list[str]:
        for i, theorem_id in enumerate(value):
            try:
                _known(theorem_id)
            except ValueError as exc:
                raise ValueError(f"versus[{i}]: {exc}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_order_expectation(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("order") is not None:
            expect = data.get("expect") or {}
            if isinstance(expect, Mapping) and "order_holds" not in expect:
                data = {**data, "expect": {**expect, "order_holds": True}}
        return data

    @model_validator(mode="after")
    def _check_bound(self) -> BoundClaim:
        if self.theorem is None and not self.quantities:
            raise ValueError("expected `theorem: <id>` or inline `quantities:`, got neither")
        if self.limit is not None and self.order is not None:
            raise ValueError("expected one of limit and order per claim, got both")
        if self.limit is not None and not {"limit", "limit_finite"} & set(self.expect):
            raise ValueError(
                "limit: expected an expectation on limit or limit_finite, for example "
                "expect: {limit: 0} or expect: {limit_finite: true}"
            )
        if self.search_spec() is not None:
            raise ValueError("bound claims take no minimize or maximize")
        _vocabulary(self)
        return self

    def known_measures(self) -> tuple[str, ...]:
        """Quantity names (own, versus-qualified, inline), measured_*, asymptotic measures."""
        return _vocabulary(self).measures

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """Its vocabulary's measures, on any instance."""
        return self.known_measures()

    def formula_symbols(self) -> tuple[str, ...]:
        """Instance symbols, the theorems' symbols, and every measure name."""
        return _vocabulary(self).symbols

    def depends_on(self) -> list[str]:
        """The ``against`` claim."""
        return [self.against] if self.against else []

    def check_dependency(self, dep: ClaimBase, instance: Any) -> str | None:
        """A swept ``against`` claim needs the same sweep here (compared point by point)."""
        if dep.search_spec() is not None:
            return f"against: expected a claim without minimize or maximize, got {dep.id!r}"
        if dep.sweep and dep.sweep != self.sweep:
            return (
                f"against: {dep.id!r} has sweep {dep.sweep}; expected this claim to have the "
                f"same sweep, got {self.sweep}"
            )
        return None
