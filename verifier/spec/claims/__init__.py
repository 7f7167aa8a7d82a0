"""The six claim kinds, one module each (as verifier/checks/ has one check each), and their union.

Each kind is a model discriminated on ``check`` with ``extra="forbid"``; :class:`ClaimBase` holds
the fields and rules they share.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from verifier.spec.claims.base import ClaimBase
from verifier.spec.claims.bound import BoundClaim, _claim_measures
from verifier.spec.claims.budget import BudgetClaim, DepthBudget
from verifier.spec.claims.construction import (
    MULTIHOP_MEASURES,
    CodebookConstruction,
    CompactConstruction,
    Construction,
    ConstructionClaim,
    GeometricConstruction,
)
from verifier.spec.claims.feasibility import _STATUS_WORDS, FeasibilityClaim
from verifier.spec.claims.training import (
    MAX_REPLICATES,
    MECHANISM_MEASURES,
    InitName,
    Multiplier,
    OptimGroup,
    RequireRule,
    TrainingClaim,
    TrainingModel,
    TrainingOptim,
    WeightName,
)
from verifier.spec.claims.transfer import RelearnOptim, TransferClaim

Claim = Annotated[
    ConstructionClaim | BudgetClaim | FeasibilityClaim | TrainingClaim | TransferClaim | BoundClaim,
    Field(discriminator="check"),
]

__all__ = [
    "MAX_REPLICATES",
    "MECHANISM_MEASURES",
    "MULTIHOP_MEASURES",
    "_STATUS_WORDS",
    "BoundClaim",
    "BudgetClaim",
    "Claim",
    "ClaimBase",
    "CodebookConstruction",
    "CompactConstruction",
    "Construction",
    "ConstructionClaim",
    "DepthBudget",
    "FeasibilityClaim",
    "GeometricConstruction",
    "InitName",
    "Multiplier",
    "OptimGroup",
    "RelearnOptim",
    "RequireRule",
    "TrainingClaim",
    "TrainingModel",
    "TrainingOptim",
    "TransferClaim",
    "WeightName",
    "_claim_measures",
]
