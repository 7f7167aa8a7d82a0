"""Fields and rules every claim kind shares: ``expect``, ``sweep``, ``xfail`` and one search."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from verifier.engine.fits import parse_growth
from verifier.errors import SpecError
from verifier.spec.base import IDENT, StrictModel
from verifier.spec.expectations import Expectation, parse_expectation
from verifier.spec.instances import BijectionInstance, MultiHopInstance
from verifier.spec.sweeps import SWEEP_ALIASES, Maximize, Minimize
from verifier.spec.symbols import SYMBOL_NAMES

if TYPE_CHECKING:
    from verifier.limits import Limits

# Fields a sweep may not vary: what names a claim or its results, its structure, and its
# references to other claims (a point must stay the claim it expands).
UNSWEPT_FIELDS = frozenset(
    {
        "id",
        "check",
        "description",
        "xfail",
        "expect",
        "sweep",
        "minimize",
        "maximize",
        "from",
        "against",
        "control_from",
        "kind",
    }
)


class ClaimBase(StrictModel):
    """Fields every claim has."""

    id: str = Field(pattern=IDENT, max_length=80, description="unique within the spec")
    description: str | None = None
    expect: dict[str, Any] = Field(
        default_factory=dict, description="measure: number | word | '<op> formula'"
    )
    sweep: dict[str, list[bool | int | float | str]] | None = Field(
        None, description="grid over instance fields (N, R, k, seed) or claim fields"
    )
    xfail: str | None = Field(None, description="reason this claim is expected to fail")
    minimize: Minimize | None = Field(
        None, description="search the smallest value of a field at which `until` holds"
    )
    maximize: Maximize | None = Field(
        None, description="search the largest value of a field at which `until` holds"
    )

    MEASURES: ClassVar[tuple[str, ...]] = ()
    LABEL_MEASURES: ClassVar[tuple[str, ...]] = ("status",)  # words, not numbers (no growth)
    SYMBOLS: ClassVar[tuple[str, ...]] = SYMBOL_NAMES
    # Instance kinds the kind runs on; on another, its check's preflight refuses the instance.
    INSTANCE_KINDS: ClassVar[tuple[str, ...]] = ("bijection", "multi_hop")
    _expectations: list[Expectation] = PrivateAttr(default_factory=list)

    @field_validator("sweep")
    @classmethod
    def _sweep_not_empty(
        cls, value: dict[str, list[bool | int | float | str]] | None
    ) -> dict[str, list[bool | int | float | str]] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("expected at least one field to sweep, got {}: it checks nothing")
        for name, values in value.items():
            if name.split(".")[0] in UNSWEPT_FIELDS:
                raise ValueError(
                    f"{name}: cannot be swept (it names the claim, its structure or another "
                    "claim); expected an instance field (N, R, k, seed) or a claim field "
                    "(code_dim, d_model, optim.lr)"
                )
            if not values:
                raise ValueError(f"{name}: expected at least one value, got []: it checks nothing")
        return value

    @model_validator(mode="after")
    def _parse_expect(self) -> ClaimBase:
        measures = self.known_measures()
        known = set(measures)
        parsed = []
        for measure, raw in self.expect.items():
            if measure != "growth" and measure not in known:
                raise ValueError(
                    f"expect.{measure}: unknown measure for a {self.check_kind()} claim; "
                    f"expected one of {', '.join(measures)}"
                )
            try:
                parsed.append(parse_expectation(measure, raw, self.formula_symbols()))
            except SpecError as exc:
                raise ValueError(f"expect.{measure}: {exc.message}") from None
            if measure == "growth":  # validated against the claim (verifier/engine/fits.py)
                try:
                    parse_growth(raw, measures, self.LABEL_MEASURES, list(self.sweep or {}))
                except ValueError as exc:
                    raise ValueError(f"expect.growth: {exc}") from None
        if self.minimize is not None and self.maximize is not None:
            raise ValueError("expected one search per claim, minimize or maximize, got both")
        search = self.search_spec()
        key = "maximize" if self.maximize is not None else "minimize"
        if search is not None and search.field in (self.sweep or {}):
            raise ValueError(
                f"{key}.field: {search.field!r} is searched, so it cannot be swept too; "
                f"expected it in {key} or in sweep, got both"
            )
        if search is not None:  # the search's stopping rule (verifier/engine/search.py)
            for measure, raw in search.until.items():
                if measure not in self.MEASURES:
                    raise ValueError(
                        f"{key}.until.{measure}: unknown measure for a {self.check_kind()} "
                        f"claim; expected one of {', '.join(self.MEASURES)}"
                    )
                try:
                    parse_expectation(measure, raw, self.SYMBOLS)
                except SpecError as exc:
                    raise ValueError(f"{key}.until.{measure}: {exc.message}") from None
        self._expectations = parsed
        return self

    def formula_symbols(self) -> tuple[str, ...]:
        """Symbols ``expect:`` formulas may use (kinds whose symbols depend on fields override)."""
        return self.SYMBOLS

    @classmethod
    def schema_measures(cls) -> tuple[str, ...]:
        """Measures the JSON Schema lets ``expect`` name: the kind's (kinds that take plugin
        measures add those)."""
        return cls.MEASURES

    def known_measures(self) -> tuple[str, ...]:
        """Measures ``expect:`` may name on some instance: the kind's, plus ``minimum``
        (``maximum``) under ``minimize:`` (``maximize:``)."""
        search = self.search_spec()
        return (*self.MEASURES, search.measure) if search is not None else self.MEASURES

    def measures(self, instance: BijectionInstance | MultiHopInstance) -> frozenset[str]:
        """The measures this claim produces on ``instance``: its kind's there (none on an
        instance kind it does not run on), plus ``minimum`` (``maximum``) of its search."""
        if instance.kind not in self.INSTANCE_KINDS:
            return frozenset()
        search = self.search_spec()
        produced = frozenset(self.produced_measures(instance))
        return produced | {search.measure} if search is not None else produced

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """The kind's measures on an instance it runs on (kinds whose measures depend on the
        instance or on their fields override)."""
        return self.MEASURES

    def field_values(self, name: str, value: Any) -> tuple[Any, ...]:
        """``value``, and every value the claim's sweep or search gives the field ``name``
        (matched by the last part of a dotted path), so a measure produced under a condition on
        ``name`` counts when some point meets it."""
        swept = [
            v
            for key, values in (self.sweep or {}).items()
            if SWEEP_ALIASES.get(key, key).split(".")[-1] == name
            for v in values
        ]
        search = self.search_spec()
        if (
            search is not None
            and SWEEP_ALIASES.get(search.field, search.field).split(".")[-1] == name
        ):
            swept.append(search.start)
        return (value, *swept)

    def search_spec(self) -> Minimize | None:
        """The claim's ``minimize:`` or ``maximize:`` block (a :class:`Maximize` is one)."""
        return self.maximize if self.maximize is not None else self.minimize

    @property
    def expectations(self) -> list[Expectation]:
        """Parsed ``expect:`` entries."""
        return list(self._expectations)

    def check_kind(self) -> str:
        """The ``check:`` tag."""
        return str(getattr(self, "check", "?"))

    def depends_on(self) -> list[str]:
        """Ids of claims whose results this claim needs."""
        return []

    def check_dependency(self, dep: ClaimBase, instance: Any) -> str | None:
        """Why the earlier claim ``dep`` cannot serve this one, or None (kinds override)."""
        return None

    def follows_sweep_of(self) -> str | None:
        """The claim whose sweep points this claim runs at, one result each (kinds override)."""
        return None

    def written_in(self, file: str) -> None:
        """Note the spec file this claim was read from (a kind that names files resolves them
        against its folder; none by default)."""

    def external_inputs(self, limits: Limits) -> dict[str, Any] | None:
        """What its verdict reads beyond the spec, the code and the limits (a model file's
        digest), for the verdict key; None: unreadable now, so never reused. Nothing by
        default."""
        return {}
