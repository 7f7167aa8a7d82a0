"""Construction claims: build G1 or the compact construction, run every fact (docs/theory.md 3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from verifier.spec.base import StrictModel
from verifier.spec.claims.base import ClaimBase
from verifier.spec.instances import BijectionInstance, MultiHopInstance

# Construction-claim measures that only multi-hop instances report.
MULTIHOP_MEASURES: tuple[str, ...] = (
    "decode_steps",  # forward passes per query: k with chain-of-thought, 1 without
    "n_queries",  # N * (number of chains)
    "step_accuracy",  # share of (query, decoding step) pairs right under greedy decoding
    "lbk_bits",  # LBk on the seeded chain trees: min over x of H(T_x | shallower levels)
    "lbk_bits_avg",  # the same, averaged over x
    "lbk_bits_approx",  # the closed form (number of chains) * log2(N)
    "dim_per_lbk_bit",  # embedding_dim / lbk_bits_avg (the average estimates E H(T_x | ...))
)


class CodebookConstruction(StrictModel):
    """Fields shared by the constructions built from an attribute codebook."""

    codebook: Literal["rademacher", "gaussian", "onehot"] = "rademacher"
    code_dim: int | Literal["auto"] = Field(
        "auto", description="code width m, or auto: the smallest m reaching `margin`"
    )
    margin: float = Field(0.5, gt=0, le=1, description="target margin 1 - mu for auto")

    @field_validator("code_dim")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"expected an integer >= 1 or 'auto', got {value}")
        return value


class GeometricConstruction(CodebookConstruction):
    """G1: attribute codes superposed in relation slots, a ReLU selector MLP, an answer slot."""

    name: Literal["geometric"]


class Construction(CodebookConstruction):
    """A construction of the registry (verifier/constructions/registry.py, plugins' included) by
    name, one that stores its instance's kind of facts: on a bijection instance geometric (G1)
    or compact (G1 without the answer slot, docs/theory.md 3b); on a multi-hop instance chain
    (Gk, one forward pass, for cot: false) or cot (Ck, greedy decoding, for cot: true). On a
    multi-hop instance geometric is a deprecated alias that picks chain or cot by the instance's
    cot, and its result says so. An unknown name, or one of the other instance kind, is refused
    before any work, with the names the registry holds; the JSON Schema (`verifier schema`)
    lists them."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="a registered construction's name (see `verifier schema`): geometric or "
        "compact on a bijection instance, chain or cot on a multi_hop one (geometric there: "
        "deprecated, picked by cot)",
    )


class ConstructionClaim(ClaimBase):
    """Build a construction and run every fact through the real forward pass."""

    check: Literal["construction"]
    construction: Construction

    MEASURES: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "margin",
        "coherence",
        "code_dim",
        "embedding_dim",
        "mlp_width",
        "params",
        "fact_params",
        "n_facts",
        *MULTIHOP_MEASURES,
    )

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """The construction's sizes and recall; a multi-hop instance adds MULTIHOP_MEASURES."""
        if isinstance(instance, MultiHopInstance):
            return self.MEASURES
        return tuple(m for m in self.MEASURES if m not in MULTIHOP_MEASURES)
