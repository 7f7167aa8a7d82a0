"""The spec language: pydantic models for instances and claims, and YAML loading with lines.

One model per instance kind (discriminated on ``kind``, :mod:`~verifier.spec.instances`) and per
claim kind (on ``check``, one module each under :mod:`~verifier.spec.claims`), all with
``extra="forbid"``, so a misspelt key is an error naming the key, the file and the line.
Searches and sweep aliases are in :mod:`~verifier.spec.sweeps`; the top-level :class:`Spec` and
its loaders in :mod:`~verifier.spec.loading`. Field names are a public contract
(docs/spec-language.md): add fields freely, rename none. Loading a spec imports neither sympy
nor the theorem registry unless the spec holds a formula or a bound claim.
"""

from __future__ import annotations

from verifier.measure.registry import MECHANISM_MEASURES
from verifier.spec.base import IDENT, StrictModel
from verifier.spec.claims import Claim
from verifier.spec.claims.base import ClaimBase
from verifier.spec.claims.bound import BoundClaim, _claim_measures
from verifier.spec.claims.budget import BudgetClaim, DepthBudget
from verifier.spec.claims.construction import (
    MULTIHOP_MEASURES,
    CodebookConstruction,
    Construction,
    ConstructionClaim,
    GeometricConstruction,
)
from verifier.spec.claims.feasibility import _STATUS_WORDS, FeasibilityClaim
from verifier.spec.claims.model_file import ModelFileClaim
from verifier.spec.claims.training import (
    MAX_REPLICATES,
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
from verifier.spec.instances import MAX_HOPS, BijectionInstance, Instance, MultiHopInstance
from verifier.spec.loading import (
    Source,
    Spec,
    load_spec_file,
    load_spec_text,
    parse_spec,
    spec_schema,
)
from verifier.spec.sweeps import SWEEP_ALIASES, Maximize, Minimize

__all__ = [
    "IDENT",
    "MAX_HOPS",
    "MAX_REPLICATES",
    "MECHANISM_MEASURES",
    "MULTIHOP_MEASURES",
    "SWEEP_ALIASES",
    "_STATUS_WORDS",
    "BijectionInstance",
    "BoundClaim",
    "BudgetClaim",
    "Claim",
    "ClaimBase",
    "CodebookConstruction",
    "Construction",
    "ConstructionClaim",
    "DepthBudget",
    "FeasibilityClaim",
    "GeometricConstruction",
    "InitName",
    "Instance",
    "Maximize",
    "Minimize",
    "ModelFileClaim",
    "MultiHopInstance",
    "Multiplier",
    "OptimGroup",
    "RelearnOptim",
    "RequireRule",
    "Source",
    "Spec",
    "StrictModel",
    "TrainingClaim",
    "TrainingModel",
    "TrainingOptim",
    "TransferClaim",
    "WeightName",
    "_claim_measures",
    "load_spec_file",
    "load_spec_text",
    "parse_spec",
    "spec_schema",
]
