"""The ``training`` claim: train on every example, then measure the mechanism (docs/theory.md 5, 7).

Trains the section 2 model with :mod:`verifier.train` (float32, seeded, early stop at exact
recall) and evaluates it in float64 through the real forward pass:

- on a ``bijection`` instance: every fact through :func:`verifier.measure.recall.exact_recall`, then
  the mechanism measures of :mod:`verifier.measure.mechanism`. A measure whose fit is
  underdetermined is reported unmeasured, with the reason in the evidence; a claim that *expects*
  such a measure is refused before training.
- on a ``multi_hop`` instance: trained on all ``N*|C|`` queries (with ``cot: true`` by teacher
  forcing, see :func:`verifier.train.query_task`). Without chain-of-thought every query is one
  forward pass on ``[r_1..r_k, x]``; with it, ``y_1..y_k`` are decoded greedily by
  :func:`verifier.constructions.cot.greedy_decode` (each argmax fed back) and a query counts
  only when *every* intermediate is the true one, so a right final answer reached through a
  wrong intermediate is a failure. The mechanism measures are defined on single-hop facts
  (docs/theory.md section 7), so expecting one here is refused before training.

With ``seeds: [s_1, .., s_S]`` the claim is replicated: replicate i redraws the instance from
``s_i`` and initialises the model from it, all S train as one stacked model
(:func:`verifier.train.train_replicates`), each is evaluated and measured on its own, and the
runner judges them by ``require`` (:mod:`verifier.engine.replicates`).

The trained models (one per replicate) are handed to ``transfer`` claims as
:class:`~verifier.checks.trained.TrainedModels`. The frozen-embedding control is this claim
with ``freeze: [W_E, W_U]``; the associative-memory peer's like-for-like setting adds
``attention: none`` and ``unit_norm: [W_E, W_U]``. Every run reports its trainable
parameters, the facts and bits (``R log2 N!``, docs/theory.md section 4) per trainable
parameter, and whether it diverged.

With ``W_U`` frozen, some attributes may be unreachable: no hidden state makes them the strict
argmax (:mod:`verifier.convex.reachability`, P1). A claim whose ``expect`` (or whose search's
``until``, when the searched field leaves ``W_U`` as it is) needs more accuracy than the
reachable attributes allow is refused before training, naming them and the certificate; a
search where nothing holds is explained the same way (:meth:`TrainingCheck.explain`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import torch

from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.checks.construction import attribute_count, bijection_facts, fact_counterexample
from verifier.checks.multihop import multi_hop_facts
from verifier.checks.trained import TrainedModels
from verifier.convex.reachability import reachability
from verifier.engine.replicates import aggregate, judge_all
from verifier.errors import SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.limits import Limits, require
from verifier.measure import mechanism as mech
from verifier.measure.queries import evaluate_queries
from verifier.measure.recall import exact_recall
from verifier.measure.registry import INIT_MEASURES, plugin_measure
from verifier.spec import (
    MECHANISM_MEASURES,
    SWEEP_ALIASES,
    BijectionInstance,
    MultiHopInstance,
    TrainingClaim,
)
from verifier.spec.expectations import Expectation, parse_expectation
from verifier.theory.sizes import model_param_count
from verifier.train import (
    TrainConfig,
    TrainResult,
    TrainTask,
    fact_task,
    initial_unembedding,
    initial_weights,
    query_task,
    run_key,
    to_model,
    train_replicates_cached,
    training_threads,
)
from verifier.train.config import train_config

log = logging.getLogger(__name__)
BATCH = 4096
TRAIN_SHARE = 0.85  # progress fraction spent training; the rest is evaluation and measures


Inst = TypeVar("Inst", BijectionInstance, MultiHopInstance)
TrainingContext = CheckContext[BijectionInstance | MultiHopInstance, TrainingClaim]
ACCURACY_MEASURES = ("accuracy", "step_accuracy")  # what unreachable attributes cap
DIVERGED_FACTOR = 2.0  # a loss above this multiple of the initial loss: the run diverged
# Fields (the last part of a searched path) that change the frozen W_U's draw.
UNEMBEDDING_FIELDS = frozenset(
    {"N", "R", "entities", "relations", "attributes", "seed", "train_seed", "seeds"}
    | {"d_model", "init_scale", "W_U", "unit_norm", "init", "model"}
)


def replicate_instances(instance: Inst, claim: TrainingClaim) -> tuple[list[Inst], list[int]]:
    """Each replicate's instance and init seed: ``seeds`` redraw both; else the claim's own."""
    if claim.seeds is None:
        cfg_seed = instance.seed if claim.train_seed is None else claim.train_seed
        return [instance], [cfg_seed]
    return [instance.model_copy(update={"seed": s}) for s in claim.seeds], list(claim.seeds)


def model_params(n_vocab: int, n_out: int, cfg: TrainConfig, n_ctx: int = 2) -> int:
    """Parameter count of the section 2 model with these shapes (L = ``n_ctx`` positions)."""
    return model_param_count(
        {
            "n_vocab": n_vocab,
            "n_ctx": n_ctx,
            "d_model": cfg.d_model,
            "d_head": cfg.head_dim,
            "n_heads": cfg.n_heads,
            "d_mlp": cfg.d_mlp,
            "n_out": n_out,
        }
    )


def _require_shapes(cfg: TrainConfig, params: int, limits: Limits, claim: TrainingClaim) -> None:
    """Limits from the most specific to the aggregate: a width the user typed is named before
    the parameter count it implies, one model's count before the stacked replicates' count."""
    replicates = len(claim.seeds or [0])
    require("max_replicates", replicates, limits.max_replicates, "seeds (replicates)")
    require("max_steps", cfg.steps, limits.max_steps, "optim.steps")
    require("max_width", cfg.d_model, limits.max_width, "model.d_model")
    require("max_width", cfg.d_mlp, limits.max_width, "model.d_mlp")
    require("max_width", cfg.n_heads * cfg.head_dim, limits.max_width, "heads * d_head")
    require("max_weights", params, limits.max_weights, "the trained model's parameter count")
    require(
        "max_weights",
        replicates * params,
        limits.max_weights,
        "the stacked replicates' parameter count",
    )


def _preflight_augment(
    instance: BijectionInstance | MultiHopInstance, claim: TrainingClaim, limits: Limits
) -> None:
    """Combination augmentation: single-hop facts, a determined fit, synthetic facts within
    the fact limit."""
    augment = claim.optim.augment
    if augment is None:
        return
    key = f"{claim.id}.optim.augment"
    if isinstance(instance, MultiHopInstance):
        raise SpecError(
            "augment draws synthetic subjects for single-hop facts [r, s] -> pi_r(s); expected "
            "a bijection instance, got multi_hop",
            key=key,
        )
    n, r, d = instance.entities, instance.relations, claim.model.d_model
    if n <= r * d + 1:
        raise SpecError(
            f"underdetermined: augment fits e_s ~ b + sum_r M_r u_(pi_r(s)) on all N subjects: "
            f"expected N > R*d_model + 1 = {r * d + 1}, got N = {n}; use a smaller d_model or "
            "more entities",
            key=key,
        )
    subjects = n if augment.subjects is None else augment.subjects
    require("max_facts", subjects * r, limits.max_facts, "augment.subjects * R (synthetic facts)")


def _preflight_multi_hop(inst: MultiHopInstance, claim: TrainingClaim, limits: Limits) -> None:
    """Multi-hop training: queries and shapes within the limits, no mechanism measure."""
    for e in claim.expectations:
        if e.measure in MECHANISM_MEASURES:
            raise SpecError(
                f"{e.measure} is undefined on a multi_hop instance: docs/theory.md section 7 "
                "defines the mechanism measures on single-hop facts; expected one of accuracy, "
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
    _require_shapes(cfg, model_params(n + inst.relations, n, cfg, n_ctx), limits, claim)
    _preflight_reachable(inst, claim)


def _n_out(instance: BijectionInstance | MultiHopInstance) -> int:
    if isinstance(instance, MultiHopInstance) or instance.attributes != "disjoint":
        return instance.entities
    return instance.entities * instance.relations


def unreachable_ceilings(
    instance: BijectionInstance | MultiHopInstance, claim: TrainingClaim
) -> list[dict[str, Any]] | None:
    """Per replicate, the frozen ``W_U``'s unreachable attributes and the accuracy they allow.

    Every attribute is the answer of equally many examples (the relations are bijections), so
    with k of A attributes unreachable at most ``1 - k / A`` of the examples can be recalled (a
    multi-hop query with chain-of-thought needs more: this is an upper bound). None when
    ``W_U`` is trained.
    """
    cfg = train_config(instance, claim)
    if not cfg.frozen("W_U"):
        return None
    n_out = _n_out(instance)
    out = []
    for seed in claim.seeds if claim.seeds is not None else [cfg.seed]:  # replicate_instances
        reach = reachability(initial_unembedding(n_out, cfg, seed))
        ceiling = 1 - len(reach.unreachable) / n_out
        out.append({"seed": seed, "ceiling": ceiling, "reach": reach})
    return out


def _needed(claim: TrainingClaim) -> list[Expectation]:
    """The accuracy expectations of ``expect`` and, when the searched field leaves ``W_U`` as it
    is, of the search's ``until``."""
    needs = [e for e in claim.expectations if e.measure in ACCURACY_MEASURES]
    search = claim.search_spec()
    if search is not None:
        field = SWEEP_ALIASES.get(search.field, search.field).split(".")[-1]
        if field not in UNEMBEDDING_FIELDS:
            needs += [
                parse_expectation(m, raw, claim.SYMBOLS)
                for m, raw in search.until.items()
                if m in ACCURACY_MEASURES
            ]
    return needs


def _preflight_reachable(
    instance: BijectionInstance | MultiHopInstance, claim: TrainingClaim
) -> None:
    """Refuse a claim whose accuracy expectation needs an attribute the frozen W_U never lets
    win (docs/theory.md section 6, P1 on W_U's columns)."""
    needs = _needed(claim)
    if not needs:
        return
    ceilings = unreachable_ceilings(instance, claim)
    if ceilings is None or all(not c["reach"].unreachable for c in ceilings):
        return
    reps = [{m: c["ceiling"] for m in ACCURACY_MEASURES} for c in ceilings]
    symbols = instance.symbol_values()
    replicated = claim.seeds is not None
    outcomes, verdict = judge_all(
        needs, reps[0], symbols, reps if replicated else None, claim.require
    )
    if verdict != "failed":
        return
    worst = min(ceilings, key=lambda c: c["ceiling"])
    failed = next(o for o in outcomes if o.ok is False)
    raise SpecError(
        f"{failed.measure} {failed.expected} cannot hold: {worst['reach'].message()}; so at "
        f"most {worst['ceiling']:.4g} of the facts can be recalled (replicate seed "
        f"{worst['seed']}). Expected a reachable unembedding: draw it with "
        "model.unit_norm: [W_U], or train W_U",
        key=f"{claim.id}.expect.{failed.measure}",
    )


@register("training")
class TrainingCheck(CheckKind[BijectionInstance | MultiHopInstance, TrainingClaim]):
    """Train, evaluate exactly, measure the mechanism."""

    def preflight(
        self, instance: BijectionInstance | MultiHopInstance, claim: TrainingClaim, limits: Limits
    ) -> None:
        _preflight_augment(instance, claim, limits)
        if isinstance(instance, MultiHopInstance):
            return _preflight_multi_hop(instance, claim, limits)
        n, r = instance.entities, instance.relations
        n_out = attribute_count(instance)
        cfg = train_config(instance, claim)
        require("max_entities", n, limits.max_entities, "N")
        require("max_facts", n * r, limits.max_facts, "N*R (facts)")
        _require_shapes(cfg, model_params(n + r, n_out, cfg), limits, claim)
        for name in claim.plugin_measures():
            try:
                plugin_measure(name)
            except KeyError as exc:
                raise SpecError(str(exc.args[0]), key=f"{claim.id}.expect.{name}") from None
        mech.refuse_underdetermined(
            claim.id,
            (e.measure for e in claim.expectations),
            n,
            r,
            cfg.d_model,
            "use a smaller d_model or more entities",
        )
        _preflight_reachable(instance, claim)
        return None

    def explain(
        self, instance: BijectionInstance | MultiHopInstance, claim: TrainingClaim
    ) -> dict[str, Any] | None:
        """Why ``until`` may fail at this point: the frozen W_U's unreachable attributes."""
        ceilings = unreachable_ceilings(instance, claim)
        if ceilings is None or all(not c["reach"].unreachable for c in ceilings):
            return None
        worst = min(ceilings, key=lambda c: c["ceiling"])
        return {
            "message": f"{worst['reach'].message()}; accuracy at most {worst['ceiling']:.4g}",
            "replicates": [
                {
                    "seed": c["seed"],
                    "unreachable": list(c["reach"].unreachable),
                    "ceiling": c["ceiling"],
                }
                for c in ceilings
            ],
            "certificate": worst["reach"].evidence(),
        }

    def run(self, ctx: TrainingContext) -> Measurement:
        claim = ctx.claim
        cfg = train_config(ctx.instance, claim)
        facts_list: list[BijectionFacts] | list[ChainFacts]
        if isinstance(ctx.instance, MultiHopInstance):
            chain_instances, seeds = replicate_instances(ctx.instance, claim)
            facts_list = chains = [multi_hop_facts(i) for i in chain_instances]
            tasks = [query_task(f, ctx.instance.cot) for f in chains]
            measures = [
                partial(self._measure_multi_hop, ctx, inst, facts, cfg)
                for inst, facts in zip(chain_instances, chains, strict=True)
            ]
        else:
            instances, seeds = replicate_instances(ctx.instance, claim)
            facts_list = bijections = [bijection_facts(i) for i in instances]
            tasks = [fact_task(f) for f in bijections]
            measures = [
                partial(self._measure, ctx, inst, facts, cfg)
                for inst, facts in zip(instances, bijections, strict=True)
            ]
        results, key = _train(ctx, tasks, cfg, seeds)
        measured: list[Measurement] | None = ctx.memo.get(f"measured:{key}:{claim.mechanism}")
        if measured is None:  # else another claim of this spec run measured the same models
            count = len(results)
            measured = [
                measure(key, result, (i / count, (i + 1) / count))
                for i, (measure, result) in enumerate(zip(measures, results, strict=True))
            ]
            ctx.memo[f"measured:{key}:{claim.mechanism}"] = measured
        ctx.report(1.0, "done")
        artifacts = TrainedModels(
            tuple(r.model for r in results), tuple(facts_list), tuple(seeds), cfg
        ).as_artifacts()
        history = [_curve(seed, result) for seed, result in zip(seeds, results, strict=True)]
        if claim.seeds is None:
            return replace(measured[0], artifacts=artifacts, history=history)
        values = aggregate([m.values for m in measured])
        return Measurement(
            method="empirical",
            values=values,
            evidence={
                "replicates": {
                    "seeds": seeds,
                    "require": claim.require,
                    "values": [_numbers(m.values) for m in measured],
                    "evidence": [m.evidence for m in measured],
                },
                "checkpoint": key,
            },
            symbols=measured[0].symbols,
            artifacts=artifacts,
            message=f"{len(seeds)} replicates (seeds {', '.join(map(str, seeds))}): "
            + "; ".join(m.message for m in measured),
            replicates=[m.values for m in measured],
            require=claim.require,
            history=history,
        )

    def _measure(
        self,
        ctx: TrainingContext,
        instance: BijectionInstance,
        facts: BijectionFacts,
        cfg: TrainConfig,
        key: str,
        result: TrainResult,
        share: tuple[float, float],
    ) -> Measurement:
        """Exact recall and every mechanism measure of one trained single-hop replicate."""

        def at(fraction: float, message: str) -> None:
            lo, hi = share
            ctx.report(TRAIN_SHARE + (1 - TRAIN_SHARE) * (lo + (hi - lo) * fraction), message)

        at(0.0, "exact recall in float64")
        model64 = mech.as_float64(result.model)
        recall = exact_recall(model64, facts.batches(BATCH), facts.n_facts)
        values: dict[str, Any] = {
            "accuracy": recall.accuracy,
            "margin": recall.margin,
            "steps_to_perfect": result.steps_to_perfect,
            "steps": result.steps,
            "final_loss": result.final_loss,
        }
        evidence = _evidence(instance.seed, result.seed, key, result)
        underdetermined: dict[str, str] = {}
        details: dict[str, Any] = {}
        functions = (
            {**mech.MEASURES, **{m: plugin_measure(m) for m in ctx.claim.plugin_measures()}}
            if ctx.claim.mechanism
            else {}
        )
        diverged = not all(bool(torch.isfinite(w).all()) for w in model64.parameters())
        for i, (name, fn) in enumerate(functions.items()):
            at((i + 1) / (len(functions) + 1), name)
            if diverged:  # an SVD or a fit of inf/nan weights has no answer
                values[name] = None
                underdetermined[name] = "the trained weights are not finite (training diverged)"
                continue
            measured = fn(model64, facts)
            values[name] = measured.value
            if measured.underdetermined is not None:
                underdetermined[name] = measured.underdetermined
            if measured.detail:
                details[name] = measured.detail
        if functions:
            at(1.0, "measures of the untrained model")
            values.update(_initial_measures(facts, cfg, result.seed, underdetermined, details))
        values.update(_capacity(result, facts.n_entities, facts.n_relations))
        values.update(
            {
                "params": model64.n_params(),
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
        message = f"{recall.correct}/{recall.total} facts after {result.steps} steps"
        return _replicate(values, evidence, fact_counterexample(facts, recall), cfg, message)

    def _measure_multi_hop(
        self,
        ctx: TrainingContext,
        instance: MultiHopInstance,
        facts: ChainFacts,
        cfg: TrainConfig,
        key: str,
        result: TrainResult,
        share: tuple[float, float],
    ) -> Measurement:
        """Every query of one trained multi-hop replicate, in float64."""
        mode = "greedy decoding" if instance.cot else "one forward pass"
        ctx.report(TRAIN_SHARE + (1 - TRAIN_SHARE) * share[0], f"every query in float64 ({mode})")
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
            **_capacity(result, n, instance.relations),
            "fact_params": n * cfg.d_model,
            "embedding_dim": cfg.d_model,
            "mlp_width": cfg.d_mlp,
            "n_facts": n * instance.relations,
            "n_queries": res.total,
            "step_accuracy": res.step_accuracy,
            "decode_steps": res.decode_steps,
        }
        evidence = _evidence(instance.seed, result.seed, key, result)
        evidence.update(
            training="teacher forcing" if instance.cot else "answer at the last position",
            evaluation=mode,
            final_answer_accuracy=res.final_correct / res.total if res.total else 0.0,
        )
        message = (
            f"{res.correct}/{res.total} queries ({res.decode_steps} step(s) each) "
            f"after {result.steps} steps"
        )
        return _replicate(values, evidence, res.counterexample, cfg, message)


def _initial_measures(
    facts: BijectionFacts,
    cfg: TrainConfig,
    seed: int,
    underdetermined: dict[str, str],
    details: dict[str, Any],
) -> dict[str, float | None]:
    """:data:`~verifier.measure.registry.INIT_MEASURES` on the replicate's untrained model: the
    trainer's initial weights for ``seed`` (:func:`verifier.train.initial_weights`), float64."""
    task = fact_task(facts)
    start = mech.as_float64(to_model(task, cfg, initial_weights(task, cfg, seed)))
    values: dict[str, float | None] = {}
    for name, base in INIT_MEASURES.items():
        measured = mech.MEASURES[base](start, facts)
        values[name] = measured.value
        if measured.underdetermined is not None:
            underdetermined[name] = measured.underdetermined
        if measured.detail:
            details[name] = measured.detail
    return values


def _replicate(
    values: dict[str, Any],
    evidence: dict[str, Any],
    counterexample: Mapping[str, Any] | None,
    cfg: TrainConfig,
    message: str,
) -> Measurement:
    """One trained replicate's measurement; its first failing example, if any, ends the evidence."""
    if counterexample is not None:
        evidence["counterexample"] = counterexample
    return Measurement("empirical", values, evidence, {"d": cfg.d_model}, message=message)


def _train(
    ctx: TrainingContext, tasks: list[TrainTask], cfg: TrainConfig, seeds: list[int]
) -> tuple[list[TrainResult], str]:
    """Train the replicates (or reuse the checkpoint keyed by instance, settings, seeds, code)."""
    claim = ctx.claim
    threads = training_threads(tasks[0], cfg, len(tasks))
    key = run_key(
        ctx.instance.model_dump(mode="json"),
        cfg,
        threads,
        seeds if claim.seeds is not None else None,
    )
    ctx.report(0.0, "training")
    what = f"{len(tasks)} replicates, " if len(tasks) > 1 else ""

    def on_step(step: int, loss: float, accuracy: float) -> None:
        ctx.report(
            TRAIN_SHARE * step / cfg.steps,
            f"step {step}/{cfg.steps}: {what}loss {loss:.4g}, accuracy {accuracy:.4f}",
        )

    memo_key = f"training:{key}"
    if memo_key in ctx.memo:  # another claim of this spec run trained the same models
        return ctx.memo[memo_key], key
    results = train_replicates_cached(tasks, cfg, seeds, key, ctx.cache_dir, on_step)
    ctx.memo[memo_key] = results
    if results[0].from_cache:
        log.info("training claim %s: checkpoint %s reused", claim.id, key[:12])
    return results, key


def _curve(seed: int, result: TrainResult) -> dict[str, Any]:
    """One replicate's ``(step, loss, accuracy)`` history as columns (float32 training accuracy)."""
    return {
        "seed": seed,
        "step": [int(row[0]) for row in result.history],
        "loss": [float(row[1]) for row in result.history],
        "accuracy": [float(row[2]) for row in result.history],
    }


def _trainable(result: TrainResult) -> int:
    return sum(p.numel() for p in result.model.parameters() if p.requires_grad)


def _capacity(result: TrainResult, n: int, r: int) -> dict[str, Any]:
    """Trainable parameters, facts and bits (``R log2 N!``, docs/theory.md section 4) per trainable
    parameter, the loss before training, and whether the run diverged: its final loss not
    finite or above where it started, or its loss at some step above
    :data:`DIVERGED_FACTOR` times its start (an lr that blows up and kills the ReLUs leaves a
    loss just under the start). The search never reports a boundary next to such a run."""
    trainable = _trainable(result)
    initial = result.history[0][1] if result.history and result.history[0][0] == 0 else None
    final = result.final_loss
    peak = result.peak_loss  # nan: not recorded
    diverged = not math.isfinite(final) or (
        initial is not None
        and (final > initial or math.isinf(peak) or peak > DIVERGED_FACTOR * initial)
    )
    bits = r * math.lgamma(n + 1) / math.log(2)
    return {
        "trainable_params": trainable,
        "facts_per_trainable_param": n * r / trainable if trainable else None,
        "bits_per_trainable_param": bits / trainable if trainable else None,
        "initial_loss": initial,
        "diverged": diverged,
    }


def _numbers(values: dict[str, Any]) -> dict[str, Any]:
    """The numeric and missing measures of one replicate (what the report tabulates)."""
    return {k: v for k, v in values.items() if v is None or isinstance(v, int | float)}


def _evidence(seed: int, train_seed: int, key: str, result: TrainResult) -> dict[str, Any]:
    return {
        "seeds": {"instance": seed, "train": train_seed},
        "checkpoint": key,
        "stopped_early": result.stopped_early,
        "float32_accuracy": result.final_accuracy,
        "history": [list(row) for row in result.history[-5:]],
        **(
            {"augment_fit_r2": [list(row) for row in result.fit_history]}
            if result.fit_history
            else {}
        ),
    }


__all__ = ["TrainingCheck"]
