"""The ``training`` claim: train on every example, then measure the mechanism (docs/theory.md 5, 7).

Trains the section 2 model with :mod:`verifier.train` (float32, seeded, early stop at exact
recall) and evaluates it in float64 through the real forward pass:

- on a ``bijection`` instance: every fact through :func:`verifier.recall.exact_recall`, then the
  mechanism measures of :mod:`verifier.mechanism`. A measure whose fit is underdetermined is
  reported unmeasured, with the reason in the evidence; a claim that *expects* such a measure
  is refused before training.
- on a ``multi_hop`` instance: trained on all ``N*|C|`` queries (with ``cot: true`` by teacher
  forcing, see :func:`verifier.train.query_task`). Without chain-of-thought every query is one
  forward pass on ``[r_1..r_k, x]``; with it, ``y_1..y_k`` are decoded greedily by
  :func:`verifier.constructions.cot.greedy_decode` (each argmax fed back) and a query counts
  only when *every* intermediate is the true one, so a right final answer reached through a
  wrong intermediate is a failure. The mechanism measures are defined on single-hop facts
  (docs/theory.md section 7), so expecting one here is refused before training.

The trained model is kept in ``Measurement.artifacts["model"]`` for ``transfer`` claims. The
frozen-embedding control is this claim with ``freeze: [W_E]``.
"""

from __future__ import annotations

import logging
from typing import Any

from verifier import mechanism as mech
from verifier.checks.base import CheckContext, Measurement, register
from verifier.checks.construction import facts_of
from verifier.checks.multihop import evaluate_queries
from verifier.checks.multihop import facts_of as chain_facts_of
from verifier.errors import SpecError
from verifier.instances import BijectionFacts
from verifier.limits import Limits, require
from verifier.recall import exact_recall
from verifier.spec import MECHANISM_MEASURES, BijectionInstance, MultiHopInstance, TrainingClaim
from verifier.train import (
    TrainConfig,
    TrainResult,
    TrainTask,
    fact_task,
    query_task,
    run_key,
    train_cached,
    training_threads,
)

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


def train_config(
    instance: BijectionInstance | MultiHopInstance, claim: TrainingClaim
) -> TrainConfig:
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


def model_params(n_vocab: int, n_out: int, cfg: TrainConfig, n_ctx: int = 2) -> int:
    """Parameter count of the section 2 model with these shapes (L = ``n_ctx`` positions)."""
    d, w, h, dh = cfg.d_model, cfg.d_mlp, cfg.n_heads, cfg.head_dim
    return n_vocab * d + n_ctx * d + 4 * h * d * dh + 2 * d * w + w + d + d * n_out


def require_bijection(instance: Any, kind: str) -> BijectionInstance:
    """Claims defined on single-hop facts only (transfer re-embeds the subjects of R relations)."""
    if not isinstance(instance, BijectionInstance):
        raise SpecError(
            f"{kind} claims: expected a bijection instance, got kind "
            f"{getattr(instance, 'kind', '?')!r} ({kind} is defined on single-hop facts, "
            "THEORY.md section 7)",
            key="instance.kind",
        )
    return instance


def _require_shapes(cfg: TrainConfig, params: int, limits: Limits) -> None:
    require("max_steps", cfg.steps, limits.max_steps, "optim.steps")
    require("max_width", cfg.d_model, limits.max_width, "model.d_model")
    require("max_width", cfg.d_mlp, limits.max_width, "model.d_mlp")
    require("max_width", cfg.n_heads * cfg.head_dim, limits.max_width, "heads * d_head")
    require("max_weights", params, limits.max_weights, "the trained model's parameter count")


def _preflight_multi_hop(inst: MultiHopInstance, claim: TrainingClaim, limits: Limits) -> None:
    """Multi-hop training: queries and shapes within the limits, no mechanism measure."""
    for e in claim.expectations:
        if e.measure in MECHANISM_MEASURES:
            raise SpecError(
                f"{e.measure} is undefined on a multi_hop instance: THEORY.md section 7 defines "
                "the mechanism measures on single-hop facts; expected one of accuracy, "
                "step_accuracy, steps_to_perfect, final_loss, params (or a bijection instance)",
                key=f"{claim.id}.expect.{e.measure}",
            )
    n, k = inst.entities, inst.hops
    require("max_entities", n, limits.max_entities, "N")
    require(
        "max_queries",
        n * inst.n_chains,
        limits.max_queries,
        f"N*|C| (training queries at k = {k}: {n} x {inst.n_chains} chains)",
    )
    cfg = train_config(inst, claim)
    n_ctx = 2 * k if inst.cot else k + 1
    _require_shapes(cfg, model_params(n + inst.relations, n, cfg, n_ctx), limits)


@register("training")
class TrainingCheck:
    """Train, evaluate exactly, measure the mechanism."""

    def preflight(self, instance: Any, claim: Any, limits: Limits) -> None:
        assert isinstance(claim, TrainingClaim)
        if isinstance(instance, MultiHopInstance):
            return _preflight_multi_hop(instance, claim, limits)
        inst = require_bijection(instance, "training")
        n, r = inst.entities, inst.relations
        n_out = n * (r if inst.attributes == "disjoint" else 1)
        cfg = train_config(inst, claim)
        require("max_entities", n, limits.max_entities, "N")
        require("max_facts", n * r, limits.max_facts, "N*R (facts)")
        _require_shapes(cfg, model_params(n + r, n_out, cfg), limits)
        for e in claim.expectations:
            if e.measure in MECHANISM_MEASURES:
                why = mech.fit_requirement(e.measure, n, r, cfg.d_model)
                if why is not None:
                    raise SpecError(
                        f"underdetermined: {why}; use a smaller d_model or more entities",
                        key=f"{claim.id}.expect.{e.measure}",
                    )
        return None

    def run(self, ctx: CheckContext) -> Measurement:
        if isinstance(ctx.instance, MultiHopInstance):
            return self._run_multi_hop(ctx)
        instance: BijectionInstance = ctx.instance
        claim: TrainingClaim = ctx.claim
        facts: BijectionFacts = facts_of(instance)
        cfg = train_config(instance, claim)
        result, key = _train(ctx, fact_task(facts), cfg)
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
        evidence = _evidence(instance.seed, cfg, key, result)
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
                "trainable_params": _trainable(result),
                "fact_params": facts.n_entities * cfg.d_model,
                "embedding_dim": cfg.d_model,
                "mlp_width": cfg.d_mlp,
                "n_facts": recall.total,
                "n_queries": recall.total,
                "step_accuracy": recall.accuracy,
                "decode_steps": 1,
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

    def _run_multi_hop(self, ctx: CheckContext) -> Measurement:
        instance: MultiHopInstance = ctx.instance
        cfg = train_config(instance, ctx.claim)
        facts = chain_facts_of(instance)
        result, key = _train(ctx, query_task(facts, instance.cot), cfg)
        mode = "greedy decoding" if instance.cot else "one forward pass"
        ctx.report(TRAIN_SHARE, f"every query in float64 ({mode})")
        model64 = mech.as_float64(result.model)
        res = evaluate_queries(model64, facts, instance.cot)
        n = facts.n_entities
        values: dict[str, Any] = {
            "accuracy": res.accuracy,
            "margin": res.margin,
            "steps_to_perfect": result.steps_to_perfect,
            "steps": result.steps,
            "final_loss": result.final_loss,
            "params": model64.n_params(),
            "trainable_params": _trainable(result),
            "fact_params": n * cfg.d_model,
            "embedding_dim": cfg.d_model,
            "mlp_width": cfg.d_mlp,
            "n_facts": n * instance.relations,
            "n_queries": res.total,
            "step_accuracy": res.step_accuracy,
            "decode_steps": res.decode_steps,
        }
        evidence = _evidence(instance.seed, cfg, key, result)
        evidence.update(
            training="teacher forcing" if instance.cot else "answer at the last position",
            evaluation=mode,
            final_answer_accuracy=res.final_correct / res.total if res.total else 0.0,
        )
        if res.counterexample is not None:
            evidence["counterexample"] = res.counterexample
        ctx.report(1.0, "done")
        return Measurement(
            method="empirical",
            values=values,
            evidence=evidence,
            symbols={"d": cfg.d_model},
            artifacts={"model": result.model, "facts": facts, "config": cfg},
            message=f"{res.correct}/{res.total} queries ({res.decode_steps} step(s) each) "
            f"after {result.steps} steps",
        )


def _train(ctx: CheckContext, task: TrainTask, cfg: TrainConfig) -> tuple[TrainResult, str]:
    """Train (or reuse the checkpoint keyed by instance, settings and code) with progress."""
    key = run_key(ctx.instance.model_dump(mode="json"), cfg, training_threads(task, cfg))
    ctx.report(0.0, "training")

    def on_step(step: int, loss: float, accuracy: float) -> None:
        ctx.report(
            TRAIN_SHARE * step / cfg.steps,
            f"step {step}/{cfg.steps}: loss {loss:.4g}, accuracy {accuracy:.4f}",
        )

    result = train_cached(task, cfg, key, ctx.cache_dir, on_step)
    if result.from_cache:
        log.info("training claim %s: checkpoint %s reused", ctx.claim.id, key[:12])
    return result, key


def _trainable(result: TrainResult) -> int:
    return sum(p.numel() for p in result.model.parameters() if p.requires_grad)


def _evidence(seed: int, cfg: TrainConfig, key: str, result: TrainResult) -> dict[str, Any]:
    return {
        "seeds": {"instance": seed, "train": cfg.seed},
        "checkpoint": key,
        "stopped_early": result.stopped_early,
        "float32_accuracy": result.final_accuracy,
        "history": [list(row) for row in result.history[-5:]],
    }


__all__ = ["TrainingCheck"]
