"""Sweeps: grid aliases, and the minimal- or maximal-value searches (verifier/engine/search.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from verifier.spec.base import MAX_SCALE, StrictModel

# Sweep (and search) names of instance fields: the formula symbols.
SWEEP_ALIASES: dict[str, str] = {"N": "entities", "R": "relations", "k": "hops"}
LearningRates = Annotated[
    list[Annotated[float, Field(gt=0, le=MAX_SCALE, allow_inf_nan=False)]],
    Field(min_length=1, max_length=8),
]


class Minimize(StrictModel):
    """Find the smallest value of an integer field at which ``until`` holds.

    ``minimize: {field: code_dim, until: {accuracy: 1.0}, start: 1, max: 4096}``: doubling from
    ``start`` until ``until`` holds, then bisection; the result records both neighbours.
    """

    field: str = Field(
        description="an integer instance field (N, R, k) or a field that appears once in the "
        "claim (code_dim, d_model, width)"
    )
    until: dict[str, Any] = Field(min_length=1, description="expectations that must hold")
    start: int = Field(1, ge=1, description="first value tried")
    max: int = Field(4096, ge=1, description="largest value tried; also checked by preflight")
    lr_ladder: LearningRates | None = Field(
        None,
        description="training claims: learning rates tried in turn at each value (optim.lr); "
        "a replicate holds at the first that meets until",
    )

    @model_validator(mode="after")
    def _order(self) -> Minimize:
        if self.max < self.start:
            raise ValueError(f"expected max >= start = {self.start}, got max = {self.max}")
        return self

    @property
    def largest(self) -> bool:
        """Whether the search wants the largest value (``maximize``), not the smallest."""
        return False

    @property
    def measure(self) -> str:
        """The measure the search reports: ``minimum`` or ``maximum``."""
        return "maximum" if self.largest else "minimum"


class Maximize(Minimize):
    """Find the largest value of an integer field at which ``until`` still holds.

    ``maximize: {field: N, until: {accuracy: ">= 0.99"}, start: 16, max: 1024}``: doubling
    from ``start`` while ``until`` holds, then bisection; the result ``v`` holds and ``v + 1``
    fails (a capacity: the most facts a fixed model stores).
    """

    @property
    def largest(self) -> bool:
        """Always: the largest value."""
        return True
