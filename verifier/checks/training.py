"""The ``training`` claim: gradient descent on every fact, then the mechanism (THEORY.md 7).

Trains the section 2 model with :mod:`verifier.train` (float32, seeded, early stop at exact
recall), evaluates every fact in float64 through :func:`verifier.recall.exact_recall`, and
measures the mechanism with :mod:`verifier.mechanism`. A measure whose fit is underdetermined
is reported unmeasured, with the reason in the evidence; a claim that *expects* such a measure
is refused before training. The trained model is kept in ``Measurement.artifacts["model"]`` for
``transfer`` claims. The frozen-embedding control is this claim with ``freeze: [W_E]``.
"""

from __future__ import annotations

import logging
from typing import Any

from verifier import mechanism as mech
from verifier.checks.base import CheckContext, Measurement, register
from verifier.checks.construction import facts_of
from verifier.errors import SpecError
from verifier.instances import BijectionFacts
from verifier.limits import Limits, require
from verifier.recall import exact_recall
from verifier.spec import MECHANISM_MEASURES, BijectionInstance, TrainingClaim
from verifier.train import TrainConfig, run_key, train_cached

log = logging.getLogger(__name__)
BATCH = 4096
TRAIN_SHARE = 0.85  # progress fraction spent training; the rest is evaluation and measures

MEASURE_FUNCTIONS = {
    "superposition_r2": mech.superposition_r2,
    "probe_accuracy": mech.probe_accuracy,
    "selector_linearity": mech.selector_linearity,
    "gated_fraction": mech.gated_fraction,
    "intervention_success": mech.intervention_success,
}


def train_config(instance: BijectionInstance, claim: TrainingClaim) -> TrainConfig:
    """The trainer's settings for a claim (the seed defaults to the instance's)."""
    m, o = claim.model, claim.optim
    return TrainConfig(
        d_model=m.d_model,
        d_mlp=m.d_mlp,
        n_heads=m.heads,
        d_head=m.d_head,
        init_scale=m.init_scale,
        optimizer=o.optimizer,
        lr=o.lr,
        steps=o.steps,
        schedule=o.schedule,
        warmup=o.warmup,
        weight_decay=o.weight_decay,
        momentum=o.momentum,
        batch_size=o.batch_size,
        stop_loss=o.stop_loss,
        eval_every=o.eval_every,
        seed=instance.seed if claim.train_seed is None else claim.train_seed,
        freeze=tuple(claim.freeze),
    )


def model_params(n_vocab: int, n_out: int, cfg: TrainConfig) -> int:
    """Parameter count of the section 2 model with these shapes (L = 2)."""
    d, w, h, dh = cfg.d_model, cfg.d_mlp, cfg.n_heads, cfg.head_dim
    return n_vocab * d + 2 * d + 4 * h * d * dh + 2 * d * w + w + d + d * n_out


def require_bijection(instance: Any, kind: str) -> BijectionInstance:
    """Training and transfer run on single-hop instances only (multi-hop: not implemented)."""
    if not isinstance(instance, BijectionInstance):
        raise SpecError(
            f"{kind} claims: expected a bijection instance, got kind "
            f"{getattr(instance, 'kind', '?')!r} (multi-hop training is not implemented yet)",
            key="instance.kind",
        )
    return instance


@register("training")
class TrainingCheck:
    """Train, evaluate exactly, measure the mechanism."""

    def preflight(self, instance: Any, claim: Any, limits: Limits) -> None:
        inst = require_bijection(instance, "training")
        assert isinstance(claim, TrainingClaim)
        n, r = inst.entities, inst.relations
        n_out = n * (r if inst.attributes == "disjoint" else 1)
        cfg = train_config(inst, claim)
        require("max_entities", n, limits.max_entities, "N")
        require("max_facts", n * r, limits.max_facts, "N*R (facts)")
        require("max_steps", cfg.steps, limits.max_steps, "optim.steps")
        require("max_width", cfg.d_model, limits.max_width, "model.d_model")
        require("max_width", cfg.d_mlp, limits.max_width, "model.d_mlp")
        require("max_width", cfg.n_heads * cfg.head_dim, limits.max_width, "heads * d_head")
        params = model_params(n + r, n_out, cfg)
        require("max_weights", params, limits.max_weights, "the trained model's parameter count")
        for e in claim.expectations:
            if e.measure in MECHANISM_MEASURES:
                why = mech.fit_requirement(e.measure, n, r, cfg.d_model)
                if why is not None:
                    raise SpecError(
                        f"underdetermined: {why}; use a smaller d_model or more entities",
                        key=f"{claim.id}.expect.{e.measure}",
                    )

    def run(self, ctx: CheckContext) -> Measurement:
        instance: BijectionInstance = ctx.instance
        claim: TrainingClaim = ctx.claim
        facts: BijectionFacts = facts_of(instance)
        cfg = train_config(instance, claim)
        key = run_key(instance.model_dump(mode="json"), cfg)
        ctx.report(0.0, "training")

        def on_step(step: int, loss: float, accuracy: float) -> None:
            ctx.report(
                TRAIN_SHARE * step / cfg.steps,
                f"step {step}/{cfg.steps}: loss {loss:.4g}, accuracy {accuracy:.4f}",
            )

        result = train_cached(facts, cfg, key, ctx.cache_dir, on_step)
        if result.from_cache:
            log.info("training claim %s: checkpoint %s reused", claim.id, key[:12])
        ctx.report(TRAIN_SHARE, "exact recall in float64")
        model64 = mech.as_float64(result.model)
        recall = exact_recall(model64, facts.batches(BATCH), facts.n_facts)
        values: dict[str, Any] = {
            "accuracy": recall.accuracy,
            "margin": recall.margin,
            "steps_to_perfect": result.steps_to_perfect,
            "steps": result.steps,
            "final_loss": result.final_loss,
        }
        evidence: dict[str, Any] = {
            "seeds": {"instance": instance.seed, "train": cfg.seed},
            "checkpoint": key,
            "stopped_early": result.stopped_early,
            "float32_accuracy": result.final_accuracy,
            "history": [list(row) for row in result.history[-5:]],
        }
        underdetermined: dict[str, str] = {}
        details: dict[str, Any] = {}
        for i, (name, fn) in enumerate(MEASURE_FUNCTIONS.items()):
            ctx.report(TRAIN_SHARE + (1 - TRAIN_SHARE) * i / len(MEASURE_FUNCTIONS), name)
            measured = fn(model64, facts)
            values[name] = measured.value
            if measured.underdetermined is not None:
                underdetermined[name] = measured.underdetermined
            if measured.detail:
                details[name] = measured.detail
        values.update(
            {
                "params": model64.n_params(),
                "trainable_params": sum(
                    p.numel() for p in result.model.parameters() if p.requires_grad
                ),
                "fact_params": facts.n_entities * cfg.d_model,
                "embedding_dim": cfg.d_model,
                "mlp_width": cfg.d_mlp,
                "n_facts": recall.total,
            }
        )
        evidence["mechanism"] = details
        if underdetermined:
            evidence["underdetermined"] = underdetermined
        if recall.first_failure is not None:
            n = facts.n_entities
            s, r = recall.first_failure % n, recall.first_failure // n
            evidence["counterexample"] = {
                "subject": int(s),
                "relation": int(r),
                "expected": int(facts.answers(s, r)),
                "got": recall.first_failure_prediction,
            }
        ctx.report(1.0, "done")
        return Measurement(
            method="empirical",
            values=values,
            evidence=evidence,
            symbols={"d": cfg.d_model},
            artifacts={"model": result.model, "facts": facts, "config": cfg},
            message=f"{recall.correct}/{recall.total} facts after {result.steps} steps",
        )
