"""The seven claim kinds, one module each (as verifier/checks/ has one check each), and their union;
plugins' claim kinds join it (:func:`register_claim_model`).

Each kind is a model discriminated on ``check`` with ``extra="forbid"``;
:class:`~verifier.spec.claims.base.ClaimBase` holds the fields and rules they share.
"""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args

from pydantic import Field

from verifier.spec.claims.base import ClaimBase
from verifier.spec.claims.bound import BoundClaim
from verifier.spec.claims.budget import BudgetClaim
from verifier.spec.claims.construction import ConstructionClaim
from verifier.spec.claims.feasibility import FeasibilityClaim
from verifier.spec.claims.model_file import ModelFileClaim
from verifier.spec.claims.training import TrainingClaim
from verifier.spec.claims.transfer import TransferClaim

BUILTIN_CLAIMS: tuple[type[ClaimBase], ...] = (
    ConstructionClaim,
    BudgetClaim,
    FeasibilityClaim,
    TrainingClaim,
    TransferClaim,
    BoundClaim,
    ModelFileClaim,
)
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
PLUGIN_CLAIMS: dict[str, type[ClaimBase]] = {}  # check tag -> a plugin kind's claim model


def check_tag(model: type[ClaimBase]) -> str | None:
    """The ``check:`` tag a claim model is discriminated on (its ``Literal``), or None."""
    field = model.model_fields.get("check")
    args = get_args(field.annotation) if field is not None else ()
    return str(args[0]) if len(args) == 1 else None


BUILTIN_TAGS: frozenset[str] = frozenset(t for c in BUILTIN_CLAIMS if (t := check_tag(c)))


def register_claim_model(tag: str, model: type[ClaimBase]) -> None:
    """Let specs name a plugin's claim kind: ``model`` joins the claim union under ``tag``.

    Raises:
        TypeError: ``model`` is not a :class:`ClaimBase` with ``check: Literal[tag]``.
        ValueError: ``tag`` is a built-in kind's, or another model's.
    """
    if not (isinstance(model, type) and issubclass(model, ClaimBase)):
        raise TypeError(f"expected a ClaimBase subclass, got {model!r}")
    if check_tag(model) != tag:
        raise TypeError(f"{model.__name__}: expected a field check: Literal[{tag!r}]")
    if tag in BUILTIN_TAGS or PLUGIN_CLAIMS.get(tag, model) is not model:
        raise ValueError(f"claim kind {tag!r} is already registered")
    PLUGIN_CLAIMS[tag] = model


def claim_union(models: tuple[type[ClaimBase], ...]) -> Any:
    """The claim type of a spec whose kinds are the built-ins and ``models``."""
    if not models:
        return Claim
    options: Any = Union[(*BUILTIN_CLAIMS, *models)]
    return Annotated[options, Field(discriminator="check")]


__all__ = [
    "BUILTIN_CLAIMS",
    "BUILTIN_TAGS",
    "PLUGIN_CLAIMS",
    "Claim",
    "check_tag",
    "claim_union",
    "register_claim_model",
]
