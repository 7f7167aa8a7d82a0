"""The seven claim kinds, one module each (as verifier/checks/ has one check each), and their union.

Each kind is a model discriminated on ``check`` with ``extra="forbid"``;
:class:`~verifier.spec.claims.base.ClaimBase` holds the fields and rules they share.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from verifier.spec.claims.bound import BoundClaim
from verifier.spec.claims.budget import BudgetClaim
from verifier.spec.claims.construction import ConstructionClaim
from verifier.spec.claims.feasibility import FeasibilityClaim
from verifier.spec.claims.model_file import ModelFileClaim
from verifier.spec.claims.training import TrainingClaim
from verifier.spec.claims.transfer import TransferClaim

Claim = Annotated[
    ConstructionClaim
    | BudgetClaim
    | FeasibilityClaim
    | TrainingClaim
    | TransferClaim
    | BoundClaim
    | ModelFileClaim,
    Field(discriminator="check"),
]
