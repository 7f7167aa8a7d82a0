"""The ``transfer`` claim: a trained network recalls new facts (docs/theory.md section 7).

Takes the models of an earlier ``training`` claim (``from:``; handed on as
:class:`~verifier.checks.trained.TrainedModels`), draws new bijections from
``transfer_seed`` and each replicate's instance seed, and either re-initialises only the subject
table (``method``: probe, lp, random) and counts exact recall of every new fact in float64
without training, or relearns the subject table alone (``relearn``, :mod:`verifier.train.relearn`)
and counts the steps to exact recall. The controls: for re-initialisation, random rows (always
run, ``control_accuracy``, about 1/N); for relearning, the same relearning on the
``control_from`` claim's models (typically the frozen-embedding, associative ones).

A replicated ``from`` claim (``seeds:``) makes this claim replicated too: one measurement per
replicate, judged by ``require`` (default: the training claim's rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.checks.construction import attribute_count
from verifier.checks.trained import TrainedModels, trained_models
from verifier.convex.solver import SolverSettings
from verifier.engine.replicates import aggregate
from verifier.errors import SpecError, VerifierError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits, require
from verifier.measure import mechanism as mech
from verifier.model import OneLayerTransformer
from verifier.spec import (
    BijectionInstance,
    ClaimBase,
    ModelFileClaim,
    TrainingClaim,
    TransferClaim,
)
from verifier.train import OptimGroup, TrainConfig
from verifier.train.config import train_config
from verifier.train.relearn import RelearnResult, relearn

TransferContext = CheckContext[BijectionInstance, TransferClaim]


def p2_entries(instance: BijectionInstance, trained: TrainingClaim) -> int:
    """Entries of one subject's P2 program over the trained model (rows x columns):
    ``R (n_out - 1 + d_mlp)`` rows, ``d_model + 1`` columns."""
    cfg = train_config(instance, trained)
    n_out = attribute_count(instance)
    return instance.relations * (n_out - 1 + cfg.d_mlp) * (cfg.d_model + 1)


def _source(ctx: TransferContext, claim_id: str) -> tuple[Measurement, TrainedModels]:
    """The measurement of claim ``claim_id`` and the models it handed on."""
    source = ctx.dependencies.get(claim_id)
    if source is None:
        raise VerifierError(f"expected the trained models of claim {claim_id!r}, got none")
    return source, trained_models(source, claim_id)


def relearn_group(trained: TrainConfig, claim: TransferClaim) -> tuple[OptimGroup, int]:
    """The subject rows' relearning settings and step budget.

    Each unset field comes from the training run's ``W_E`` settings (its ``groups.W_E``, else
    its ``optim``).
    """
    kind, lr, momentum, decay, per_subject = trained.group("W_E")
    over = claim.relearn
    if over is None:
        return OptimGroup(kind, lr, momentum, decay, per_subject), 500
    return (
        OptimGroup(
            over.optimizer or kind,
            lr if over.lr is None else over.lr,
            momentum if over.momentum is None else over.momentum,
            decay if over.weight_decay is None else over.weight_decay,
            per_subject if over.per_subject is None else over.per_subject,
        ),
        over.steps,
    )


@register("transfer")
class TransferCheck(CheckKind[BijectionInstance, TransferClaim]):
    """Zero-shot transfer, or relearning, through the frozen network."""

    INSTANCE_NOTE = "transfer is defined on single-hop facts, docs/theory.md section 7"

    def preflight(self, instance: BijectionInstance, claim: TransferClaim, limits: Limits) -> None:
        if claim.relearn is not None:
            require("max_steps", claim.relearn.steps, limits.max_steps, "relearn.steps")

    def preflight_sources(
        self,
        instance: BijectionInstance,
        claim: TransferClaim,
        sources: Mapping[str, ClaimBase],
        limits: Limits,
    ) -> None:
        """``lp``: each subject's P2 program over the ``from`` claim's model fits
        ``max_lp_entries`` (refused before that model trains)."""
        trained = sources.get(claim.from_)
        if isinstance(trained, ModelFileClaim):
            self._preflight_model_file(instance, claim, trained, limits)
        if claim.method == "lp" and isinstance(trained, TrainingClaim):
            require(
                "max_lp_entries",
                p2_entries(instance, trained),
                limits.max_lp_entries,
                "each P2 program (rows x columns)",
            )

    def _preflight_model_file(
        self,
        instance: BijectionInstance,
        claim: TransferClaim,
        source: ModelFileClaim,
        limits: Limits,
    ) -> None:
        """From a model file: the probe determined and P2 within the limits, at the widths the
        file's shapes give (read without its weights)."""
        from verifier.checks.model_file import inspect_model

        _, info = inspect_model(instance, source, limits)
        n, r, d = instance.entities, instance.relations, info.d_model
        if claim.method == "probe" and n <= r * d + 1:
            raise SpecError(
                f"method: probe is underdetermined: its fit needs N > R*d + 1 = {r * d + 1} "
                f"subjects (d = d_model of {source.id!r}'s file), got N = {n}",
                key=f"{claim.id}.method",
            )
        if claim.method == "lp" and info.d_mlp is not None:
            entries = r * (attribute_count(instance) - 1 + info.d_mlp) * (d + 1)
            require(
                "max_lp_entries", entries, limits.max_lp_entries, "each P2 program (rows x columns)"
            )

    def run(self, ctx: TransferContext) -> Measurement:
        claim = ctx.claim
        source, trained = _source(ctx, claim.from_)
        models, facts = trained.models, trained.bijections(claim.from_)
        new_facts = [mech.new_bijections(f, claim.transfer_seed) for f in facts]
        if claim.method == "relearn":
            measured = self._relearn(ctx, claim, trained, new_facts)
        else:
            measured = [
                self._reinit(ctx, claim, model, old, new, i / len(models))
                for i, (model, old, new) in enumerate(zip(models, facts, new_facts, strict=True))
            ]
        ctx.report(1.0, "done")
        if source.replicates is None:
            return measured[0]
        undecided = [m for m in measured if m.status == "undecided"]
        return Measurement(
            method="empirical",
            values=aggregate([m.values for m in measured]),
            evidence={
                "from": claim.from_,
                "replicates": {
                    "seeds": list(trained.seeds),
                    "require": claim.require or source.require,
                    "values": [m.values for m in measured],
                    "evidence": [m.evidence for m in measured],
                },
            },
            status="undecided" if undecided else None,
            message=undecided[0].message
            if undecided
            else f"{len(measured)} replicates: " + "; ".join(m.message for m in measured),
            replicates=[m.values for m in measured],
            require=claim.require or source.require,
        )

    def _reinit(
        self,
        ctx: TransferContext,
        claim: TransferClaim,
        model: OneLayerTransformer,
        facts: BijectionFacts,
        new_facts: BijectionFacts,
        done: float,
    ) -> Measurement:
        """One replicate's re-initialisation (no training) and its random control."""
        ctx.report(done, f"{claim.method} re-initialisation")
        settings = None
        if claim.method == "lp":  # its size was checked by preflight_sources
            settings = SolverSettings(time_limit_s=float(ctx.limits.solver_time_limit_s))
        method: mech.TransferMethod = (
            "lp" if claim.method == "lp" else ("random" if claim.method == "random" else "probe")
        )
        result = mech.transfer_accuracy(
            model, facts, new_facts, method, claim.transfer_seed, settings
        )
        control = (
            result
            if claim.method == "random"
            else mech.transfer_accuracy(model, facts, new_facts, "random", claim.transfer_seed)
        )
        evidence: dict[str, Any] = {
            "from": claim.from_,
            "seeds": {"instance": facts.seed, "transfer": claim.transfer_seed},
            "method": result.detail,
            "control": control.detail,
        }
        if result.value is None:
            return Measurement(
                method="empirical",
                values={"accuracy": None, "control_accuracy": control.value},
                evidence=evidence,
                status="undecided",
                message=f"underdetermined: {result.underdetermined}",
            )
        return Measurement(
            method="empirical",
            values={
                "accuracy": result.value,
                "margin": result.detail["margin"],
                "control_accuracy": control.value,
                "advantage": result.value - (control.value or 0.0),
                "fit_r2": result.detail.get("fit_r2"),
                "n_facts": result.detail["facts"],
            },
            evidence=evidence,
            message=f"{result.detail['correct']}/{result.detail['facts']} new facts "
            f"({claim.method}); control {control.detail['correct']}",
        )

    def _relearn(
        self,
        ctx: TransferContext,
        claim: TransferClaim,
        source: TrainedModels,
        new_facts: list[BijectionFacts],
    ) -> list[Measurement]:
        """Every replicate relearned together; the control the same on ``control_from``."""
        trained = source.training_config(claim.from_)
        group, steps = relearn_group(trained, claim)
        ctx.report(0.0, f"relearning the subject table ({steps} steps at most)")
        runs = relearn(
            source.models,
            source.bijections(claim.from_),
            new_facts,
            trained,
            group,
            steps,
            claim.start,
            claim.transfer_seed,
        )
        if isinstance(runs, str):
            return [
                Measurement(
                    method="empirical",
                    values={"accuracy": None},
                    evidence={"from": claim.from_},
                    status="undecided",
                    message=f"underdetermined: {runs}",
                )
            ] * len(new_facts)
        controls: list[RelearnResult | None] = [None] * len(runs)
        if claim.control_from is not None:
            ctx.report(0.5, f"relearning the control {claim.control_from}")
            _, control = _source(ctx, claim.control_from)
            if control.seeds != source.seeds:
                raise VerifierError(
                    f"control_from: expected the replicate seeds of {claim.from_!r} "
                    f"({list(source.seeds)}), got {list(control.seeds)} on "
                    f"{claim.control_from!r}"
                )
            control_runs = relearn(
                control.models,
                control.bijections(claim.control_from),
                new_facts,
                control.training_config(claim.control_from),
                group,
                steps,
                claim.start,
                claim.transfer_seed,
            )
            if not isinstance(control_runs, str):
                controls = list(control_runs)
        out = []
        for run, new, ctl in zip(runs, new_facts, controls, strict=True):
            values: dict[str, Any] = {
                "accuracy": run.accuracy,
                "margin": run.margin,
                "steps_to_perfect": run.steps_to_perfect,
                "start_accuracy": run.start_accuracy,
                "n_facts": new.n_facts,
                "control_accuracy": None if ctl is None else ctl.accuracy,
                "control_steps_to_perfect": None if ctl is None else ctl.steps_to_perfect,
                "advantage": None if ctl is None else run.accuracy - ctl.accuracy,
            }
            evidence = {
                "from": claim.from_,
                "seeds": {"instance": new.seed, "transfer": claim.transfer_seed},
                "start": claim.start,
                "optimizer": vars(group),
                "steps": run.steps,
                "control": None if ctl is None else {**vars(ctl), "from": claim.control_from},
            }
            reached = "never" if run.steps_to_perfect is None else f"at step {run.steps_to_perfect}"
            out.append(
                Measurement(
                    method="empirical",
                    values=values,
                    evidence=evidence,
                    message=f"relearned {run.accuracy:.3f} of {new.n_facts} new facts, exact "
                    f"{reached}" + ("" if ctl is None else f"; control {ctl.accuracy:.3f}"),
                )
            )
        return out


__all__ = ["TransferCheck"]
