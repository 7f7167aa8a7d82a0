"""Feasibility claims: convex programs P1-P3 answered by checked certificates (theory.md 6)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from verifier.spec.base import MAX_BOX
from verifier.spec.claims.base import ClaimBase
from verifier.spec.claims.construction import GeometricConstruction
from verifier.spec.instances import BijectionInstance, MultiHopInstance
from verifier.spec.symbols import SYMBOL_NAMES


class FeasibilityClaim(ClaimBase):
    """A convex program answered by a checked primal/dual sandwich.

    ``codebook_margin`` (P1) and ``reembed`` (P2) take a G1 ``construction``;
    ``associative_width`` (P3) takes ``embed_dim`` and ``width``. ``code_dim: auto`` (P1, and
    P2: the G1 network's code width, so ``d = R m + R + m``) and ``width: auto`` (P3) search
    the minimum and report it with both neighbours.
    """

    check: Literal["feasibility"]
    program: Literal["codebook_margin", "reembed", "associative_width"]
    construction: GeometricConstruction | None = Field(
        None, description="P1, P2: the G1 codebook (and, for P2, the frozen network)"
    )
    min_margin: float = Field(
        1e-6, gt=0, description="status is feasible when the certified margin is at least this"
    )
    box: float | None = Field(
        None,
        gt=0,
        le=MAX_BOX,
        description="P1: |v|_inf <= box (default max |a_ji|); P3: |W_out|_inf (1)",
    )
    embed_dim: int = Field(8, ge=1, description="P3: width d of the frozen random embeddings")
    width: int | Literal["auto"] = Field("auto", description="P3: MLP width w, or auto: minimal")
    start: Literal["current", "zero"] = Field(
        "current", description="P2: start from the network's own subject rows, or from zero"
    )
    max_rounds: int = Field(4, ge=1, le=50, description="P2: linearisations per subject")
    solver: Literal["highs", "clarabel"] = Field("highs", description="LP solver tried first")
    fallback: bool = Field(True, description="try the other solver when the first fails")

    MEASURES: ClassVar[tuple[str, ...]] = (
        "status",  # feasible | infeasible | undecided (P2: feasible | not_found)
        "margin",  # the sandwich, judged soundly: lower for >=, upper for <=
        "margin_lower",
        "margin_upper",
        "min_code_dim",  # P1, P2: code_dim auto
        "min_d_model",  # P2, code_dim auto: the G1 network's d_model at min_code_dim
        "min_width",  # P3, width auto
        "max_violation",  # the solver's raw infeasibility before the float64 repair
        "accuracy",  # P2, P3: new facts recalled by the forward pass
        "code_dim",
        "width",
        "n_facts",
    )
    SYMBOLS: ClassVar[tuple[str, ...]] = (*SYMBOL_NAMES, "w")  # w: P3's MLP width
    INSTANCE_KINDS: ClassVar[tuple[str, ...]] = ("bijection",)

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """The program's measures (verifier/checks/feasibility.py), with its minimum under
        ``code_dim: auto`` (P1, P2) or ``width: auto`` (P3)."""
        code_dim = self.construction.code_dim if self.construction is not None else None
        searched = {
            "codebook_margin": "auto" in self.field_values("code_dim", code_dim),
            "reembed": "auto" in self.field_values("code_dim", code_dim),
            "associative_width": "auto" in self.field_values("width", self.width),
        }
        names: set[str] = set()
        for program in self.field_values("program", self.program):
            names.update(_PROGRAM_MEASURES.get(program, ()))
            if searched.get(program, False):
                names.update(_PROGRAM_MINIMA[program])
        return tuple(m for m in self.MEASURES if m in names)

    @model_validator(mode="after")
    def _program_fields(self) -> FeasibilityClaim:
        if self.program in ("codebook_margin", "reembed") and self.construction is None:
            raise ValueError(
                f"program {self.program}: expected a construction {{name: geometric, ...}}, "
                "got none"
            )
        if self.program == "associative_width" and self.construction is not None:
            raise ValueError(
                "program associative_width: expected no construction (its network is random), "
                "got one"
            )
        if (
            self.program == "codebook_margin"
            and self.construction is not None
            and (self.construction.margin != GeometricConstruction.model_fields["margin"].default)
        ):
            raise ValueError(
                "construction.margin is G1's coherence target; for program codebook_margin "
                "set min_margin instead"
            )
        for e in self.expectations:
            if e.measure == "status" and e.kind == "label" and e.value not in _STATUS_WORDS:
                raise ValueError(
                    f"expect.status: expected one of {', '.join(_STATUS_WORDS)}, got {e.value!r}"
                )
        if isinstance(self.width, int) and self.width < 1:
            raise ValueError(f"width: expected an integer >= 1 or 'auto', got {self.width}")
        return self


_STATUS_WORDS = ("feasible", "infeasible", "undecided", "not_found")
_SANDWICH = ("status", "margin", "margin_lower", "margin_upper", "max_violation", "n_facts")
# What each program measures at a given width, and what its search for the least width adds.
_PROGRAM_MEASURES: dict[str, tuple[str, ...]] = {
    "codebook_margin": (*_SANDWICH, "code_dim"),
    "reembed": (*_SANDWICH, "accuracy", "code_dim"),
    "associative_width": (*_SANDWICH, "accuracy", "width"),
}
_PROGRAM_MINIMA: dict[str, tuple[str, ...]] = {
    "codebook_margin": ("min_code_dim",),
    "reembed": ("min_code_dim", "min_d_model"),
    "associative_width": ("min_width",),
}
