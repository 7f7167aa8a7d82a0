"""Budget claims: at a size budget, the largest depth solved exactly (docs/theory.md section 5)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from verifier.spec.base import StrictModel
from verifier.spec.claims.base import ClaimBase
from verifier.spec.claims.construction import GeometricConstruction
from verifier.spec.instances import MAX_HOPS, BijectionInstance, MultiHopInstance
from verifier.spec.symbols import SYMBOL_NAMES


class DepthBudget(StrictModel):
    """A size budget: parameters P, residual width D, or both."""

    params: int | None = Field(None, ge=1, description="P, the parameter budget")
    embedding_dim: int | Literal["cot"] | None = Field(
        None, description="D, the d_model budget; cot: Ck's d at the construction's code width"
    )

    @model_validator(mode="after")
    def _some_budget(self) -> DepthBudget:
        if self.params is None and self.embedding_dim is None:
            raise ValueError("budget: expected params, embedding_dim or both, got neither")
        if isinstance(self.embedding_dim, int) and self.embedding_dim < 1:
            raise ValueError(
                f"budget.embedding_dim: expected >= 1 or 'cot', got {self.embedding_dim}"
            )
        return self


class BudgetClaim(ClaimBase):
    """At a size budget, the largest depth the instance's mode (cot or not) solves exactly.

    Depth k is solved when the mode's construction, at the largest code width up to the
    construction's own that fits the budget, recalls all N*|C| queries of depth k through the
    real forward pass. ``depth`` is the largest k with every depth 1..k solved.
    """

    check: Literal["budget"]
    construction: GeometricConstruction
    budget: DepthBudget
    max_hops: int | None = Field(
        None, ge=1, le=MAX_HOPS, description="deepest k searched; default: the instance's hops"
    )

    MEASURES: ClassVar[tuple[str, ...]] = (
        "depth",  # largest k with every depth 1..k solved within the budget
        "saturated",  # depth reached max_hops
        "failed_at",  # the first depth not solved (none when saturated)
        "accuracy",  # at the instance's own hops, within the budget
        "margin",
        "code_dim",
        "embedding_dim",
        "params",
        "budget_params",  # P
        "budget_dim",  # D (cot resolved to a number)
    )
    SYMBOLS: ClassVar[tuple[str, ...]] = (*SYMBOL_NAMES, "P", "D")
    INSTANCE_KINDS: ClassVar[tuple[str, ...]] = ("multi_hop",)

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """Every measure, but ``budget_params`` (``budget_dim``) only with ``budget.params``
        (``budget.embedding_dim``) set."""
        given = {
            "budget_params": self.field_values("params", self.budget.params),
            "budget_dim": self.field_values("embedding_dim", self.budget.embedding_dim),
        }
        return tuple(m for m in self.MEASURES if any(v is not None for v in given.get(m, (True,))))
