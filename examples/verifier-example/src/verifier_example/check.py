"""The ``ablation`` claim kind: build a registry construction, zero some of its weights, and
count exact recall over every fact through the real float64 forward pass, before and after.

``accuracy`` and ``margin`` are the ablated model's, ``accuracy_intact`` the model's as built
(the control: 1 for every registry construction with a codebook of coherence below 1). A claim
such as ``ablate: [W_in], expect: {accuracy: "<= 0.5"}`` says the MLP is necessary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

import torch
from pydantic import Field

from verifier.checks.base import CheckContext, CheckKind, Measurement
from verifier.constructions.base import size_params
from verifier.constructions.codebooks import codebook
from verifier.constructions.registry import construction
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits, require
from verifier.measure.recall import exact_recall
from verifier.spec import BijectionInstance, ClaimBase, MultiHopInstance, WeightName

BATCH = 512  # facts per forward batch


class AblationClaim(ClaimBase):
    """Recall of a registry construction with the named weights set to zero."""

    check: Literal["ablation"]
    construction: str = Field(
        "compact", pattern=r"^[a-z][a-z0-9_]*$", description="a bijection construction's name"
    )
    code_dim: int = Field(8, ge=1, description="code width m of its Rademacher codebook")
    ablate: list[WeightName] = Field(min_length=1, description="weights set to zero")

    MEASURES: ClassVar[tuple[str, ...]] = ("accuracy", "margin", "accuracy_intact")
    INSTANCE_KINDS: ClassVar[tuple[str, ...]] = ("bijection",)

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """Every measure, on a bijection instance."""
        return self.MEASURES


class AblationCheck(CheckKind[BijectionInstance, AblationClaim]):
    """Exact recall of a construction with weights zeroed (and as built)."""

    INSTANCE_NOTE = "the constructions it ablates store single-hop facts"

    def preflight(self, instance: BijectionInstance, claim: AblationClaim, limits: Limits) -> None:
        built = construction(claim.construction, "bijection", key=f"{claim.id}.construction")
        n, r = instance.entities, instance.relations
        require("max_entities", n, limits.max_entities, "N")
        require("max_facts", n * r, limits.max_facts, "N*R (facts)")
        require("max_code_dim", claim.code_dim, limits.max_code_dim, "code_dim")
        sizes = built.size(size_params(instance, claim.code_dim))
        what = f"{built.model}'s"
        require("max_width", max(sizes.d_model, sizes.d_mlp), limits.max_width, f"{what} width")
        require("max_weights", sizes.params, limits.max_weights, f"{what} parameter count")

    def run(self, ctx: CheckContext[BijectionInstance, AblationClaim]) -> Measurement:
        instance, claim = ctx.instance, ctx.claim
        facts = BijectionFacts(
            n_entities=instance.entities,
            n_relations=instance.relations,
            seed=instance.seed,
            disjoint=instance.attributes == "disjoint",
        )
        codes = codebook("rademacher", facts.n_attributes, claim.code_dim, instance.seed)
        model, _ = construction(claim.construction).build(facts, codes)
        ctx.report(0.1, "the model as built")
        intact = exact_recall(model, facts.batches(BATCH), facts.n_facts)
        with torch.no_grad():
            for name in claim.ablate:
                getattr(model, name).zero_()
        ctx.report(0.55, f"with {', '.join(claim.ablate)} zeroed")
        ablated = exact_recall(model, facts.batches(BATCH), facts.n_facts)
        return Measurement(
            method="exact",
            values={
                "accuracy": ablated.accuracy,
                "margin": ablated.margin,
                "accuracy_intact": intact.accuracy,
            },
            evidence={"ablated": list(claim.ablate), "construction": claim.construction},
            message=f"{ablated.correct}/{ablated.total} facts with {', '.join(claim.ablate)} = 0",
        )
