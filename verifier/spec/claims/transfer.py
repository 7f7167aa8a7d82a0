"""Transfer claims: re-initialise or relearn a trained model's subject table (theory.md 7)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from verifier.spec.base import IDENT, MAX_SCALE, StrictModel
from verifier.spec.claims.base import ClaimBase
from verifier.spec.claims.model_file import ONE_LAYER, ModelFileClaim
from verifier.spec.claims.training import RequireRule, TrainingClaim
from verifier.spec.instances import BijectionInstance, MultiHopInstance


class RelearnOptim(StrictModel):
    """How ``relearn`` trains the subject table (the rest of the network stays frozen)."""

    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    lr: float | None = Field(None, gt=0, allow_inf_nan=False, le=MAX_SCALE)
    momentum: float | None = Field(None, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0, allow_inf_nan=False, le=MAX_SCALE)
    per_subject: bool | None = None
    steps: int = Field(500, ge=1, description="the most relearning steps")


class TransferClaim(ClaimBase):
    """Re-initialise (or relearn) only the subject table of a trained model for new bijections.

    ``probe``, ``lp`` and ``random`` re-initialise the subject rows and train nothing.
    ``relearn`` starts from the probe rows (``start: probe``) or from random rows and trains
    only the subject table on the new facts, everything else frozen; by default with the
    ``from`` claim's ``W_E`` optimiser settings. Its control (``control_from``) is the same
    relearning on another trained model, typically the frozen-embedding (associative) one.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    check: Literal["transfer"]
    from_: str = Field(
        alias="from",
        pattern=IDENT,
        description="id of an earlier training claim (or model_file claim, adapter one_layer)",
    )
    method: Literal["probe", "lp", "random", "relearn"] = Field(
        "probe",
        description="probe: b + sum_r M_r u_(pi'_r(s)); lp: P2; random: the control; relearn: "
        "train the subject table only",
    )
    transfer_seed: int = Field(1, ge=0, description="seed of the new bijections")
    start: Literal["probe", "random"] = Field(
        "probe", description="relearn: the subject rows it starts from"
    )
    relearn: RelearnOptim | None = Field(
        None, description="relearn: optimiser and step budget (default: from's W_E settings)"
    )
    control_from: str | None = Field(
        None,
        pattern=IDENT,
        description="relearn: an earlier training claim relearned the same way as the control",
    )
    require: RequireRule | None = Field(
        None, description="how the replicates meet expect; default the from claim's rule"
    )

    MEASURES: ClassVar[tuple[str, ...]] = (
        "accuracy",  # exact recall of every new fact
        "margin",
        "control_accuracy",  # the random re-initialisation (relearn: the control model)
        "advantage",  # accuracy - control_accuracy
        "fit_r2",  # probe: in-sample R^2 of the superposition fit on the old facts
        "n_facts",
        "steps_to_perfect",  # relearn: first step with every new fact right (float32)
        "control_steps_to_perfect",  # relearn: the same on the control_from model
        "start_accuracy",  # relearn: exact recall from the starting rows, before any step
    )

    INSTANCE_KINDS: ClassVar[tuple[str, ...]] = ("bijection",)

    @model_validator(mode="after")
    def _no_grid(self) -> TransferClaim:
        if self.sweep or self.search_spec():
            raise ValueError(
                "transfer claims take no sweep, minimize or maximize; sweep the training claim "
                "in `from`"
            )
        if self.method != "relearn":
            for name in ("relearn", "control_from"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name}: only method relearn takes it, got method {self.method}"
                    )
        return self

    def produced_measures(self, instance: BijectionInstance | MultiHopInstance) -> Iterable[str]:
        """The method's measures (verifier/checks/transfer.py): ``fit_r2`` with ``probe``; with
        ``relearn`` the steps and starting accuracy, and the control's only with
        ``control_from``."""
        if self.method != "relearn":
            names = _REINIT_MEASURES + (("fit_r2",) if self.method == "probe" else ())
        else:
            names = _RELEARN_MEASURES + (_RELEARN_CONTROL if self.control_from else ())
        return tuple(m for m in self.MEASURES if m in names)

    def depends_on(self) -> list[str]:
        """The training claim, and the control's."""
        return [self.from_] + ([self.control_from] if self.control_from else [])

    def follows_sweep_of(self) -> str | None:
        """A swept ``from`` claim: this claim runs at each of its points."""
        return self.from_

    def check_dependency(self, dep: ClaimBase, instance: Any) -> str | None:
        """``from`` must name a training claim without minimize (a sweep is followed point by
        point; ``control_from`` must have the same sweep), and the probe must be determined."""
        field = "from" if dep.id == self.from_ else "control_from"
        if isinstance(dep, ModelFileClaim):  # its d_model is read in preflight_sources
            if self.method == "relearn":
                return (
                    f"{field}: method relearn takes a training claim's optimiser settings; "
                    f"{dep.id!r} is a model_file claim (expected method probe, lp or random)"
                )
            if dep.adapter != ONE_LAYER:
                return (
                    f"{field}: transfer re-initialises the one-layer model's subject rows; "
                    f"expected a model_file claim with adapter one_layer, got {dep.adapter!r}"
                )
            return None
        if not isinstance(dep, TrainingClaim):
            return (
                f"{field}: expected the id of a training claim, got {dep.id!r}, "
                f"a {dep.check_kind()} claim (a model_file claim serves too)"
            )
        if dep.search_spec():
            return f"{field}: expected a training claim without a search, got {dep.id!r}"
        n, r, d = instance.entities, instance.relations, dep.model.d_model
        probe = self.method == "probe" or (self.method == "relearn" and self.start == "probe")
        if probe and n <= r * d + 1:
            how = "probe" if self.method == "probe" else "relearn (start: probe)"
            return (
                f"method: {how} is underdetermined: its fit needs N > R*d + 1 = {r * d + 1} "
                f"subjects (d = d_model of {dep.id!r}), got N = {n}"
            )
        return None


_REINIT_MEASURES = ("accuracy", "margin", "control_accuracy", "advantage", "n_facts")
_RELEARN_MEASURES = ("accuracy", "margin", "steps_to_perfect", "start_accuracy", "n_facts")
_RELEARN_CONTROL = ("control_accuracy", "control_steps_to_perfect", "advantage")
