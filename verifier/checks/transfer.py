"""The ``transfer`` claim: a trained network recalls new facts zero-shot (docs/theory.md section 7).

Takes the model of an earlier ``training`` claim (``from:``), draws new bijections from
``transfer_seed``, re-initialises only the subject table (``method``: probe, lp, random) and
counts exact recall of every new fact in float64, without training. The random
re-initialisation is always run too, as the control (``control_accuracy``, about 1/N).
"""

from __future__ import annotations

from typing import Any

from verifier import mechanism as mech
from verifier.checks.base import CheckContext, Measurement, register
from verifier.checks.training import require_bijection
from verifier.convex.solver import SolverSettings
from verifier.errors import VerifierError
from verifier.limits import Limits, require
from verifier.spec import TransferClaim


@register("transfer")
class TransferCheck:
    """Zero-shot transfer through the frozen network."""

    def preflight(self, instance: Any, claim: Any, limits: Limits) -> None:
        require_bijection(instance, "transfer")
        assert isinstance(claim, TransferClaim)

    def run(self, ctx: CheckContext) -> Measurement:
        claim: TransferClaim = ctx.claim
        source = ctx.dependencies.get(claim.from_)
        if source is None or "model" not in source.artifacts:
            raise VerifierError(
                f"from: expected the trained model of training claim {claim.from_!r}, got none"
            )
        model, facts = source.artifacts["model"], source.artifacts["facts"]
        new_facts = mech.new_bijections(facts, claim.transfer_seed)
        ctx.report(0.0, f"{claim.method} re-initialisation")
        settings = None
        if claim.method == "lp":  # refused before P2 starts when one subject's LP is too large
            cfg = model.cfg
            require(
                "max_lp_entries",
                facts.n_relations * (cfg.n_out - 1 + cfg.d_mlp) * (cfg.d_model + 1),
                ctx.limits.max_lp_entries,
                "each P2 program (rows x columns)",
            )
            settings = SolverSettings(time_limit_s=float(ctx.limits.solver_time_limit_s))
        result = mech.transfer_accuracy(
            model, facts, new_facts, claim.method, claim.transfer_seed, settings
        )
        ctx.report(0.5, "random control")
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
        ctx.report(1.0, "done")
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
