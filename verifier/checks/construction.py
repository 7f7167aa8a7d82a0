"""The ``construction`` claim: build G1 or the compact construction (docs/theory.md sections 3, 3b),
run every fact exactly.

Measures ``accuracy`` and ``margin`` over all N*R facts through the float64 forward pass, and
the construction's ``coherence``, ``code_dim``, ``embedding_dim``, ``mlp_width``, ``params`` and
``fact_params`` (the subject table, ``N d``). A failure's evidence names a failing fact. Where
``W_U`` is the codebook readout (both constructions) the method is ``certified``
(:mod:`verifier.measure.certified`): a sound margin bound decides most facts and the rest, and
the facts of smallest bound, go through the full float64 logits, so accuracy, failures and
(within a cap) the margin are the brute force's. On a ``multi_hop`` instance the claim builds
the multi-hop construction it names, Gk (``chain``) or Ck (``cot``)
(:mod:`verifier.checks.multihop`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from verifier.checks import multihop
from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.constructions.base import size_params
from verifier.constructions.codebooks import codebook, coherence
from verifier.constructions.registry import construction
from verifier.constructions.widths import (
    preflight_code_dim,
    require_size,
    resolve_code_dim,
    width_cap,
)
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits, require
from verifier.measure.certified import (
    RESOLVE_CAP,
    Readout,
    certified_recall,
    sign_gram_extremes,
)
from verifier.measure.recall import RecallResult, exact_recall
from verifier.spec import BijectionInstance, ConstructionClaim, MultiHopInstance

BATCH = 512  # facts per forward batch: BATCH x (d_mlp + n_out) floats stay in cache (measured
# fastest of 256..4096 at N = 3072, R = 4, and it keeps two pool workers off each other)


def bijection_facts(instance: BijectionInstance) -> BijectionFacts:
    """The seeded facts of a bijection instance."""
    return BijectionFacts(
        n_entities=instance.entities,
        n_relations=instance.relations,
        seed=instance.seed,
        disjoint=instance.attributes == "disjoint",
    )


def attribute_count(instance: BijectionInstance) -> int:
    """A, the attributes: N shared by every relation, or N per relation when disjoint."""
    return instance.entities * (instance.relations if instance.attributes == "disjoint" else 1)


def geometric_size(instance: BijectionInstance, m: int) -> tuple[int, int, int]:
    """(d_model, d_mlp, params) of G1 at code width m, without building it."""
    return construction_size(instance, "geometric", m)


def construction_size(instance: BijectionInstance, name: str, m: int) -> tuple[int, int, int]:
    """(d_model, d_mlp, params) of the named construction at code width m: the registry's size
    formulas, evaluated exactly."""
    sizes = construction(name).size(size_params(instance, m))
    return sizes.d_model, sizes.d_mlp, sizes.params


def margin_judged(claim: ConstructionClaim) -> bool:
    """Whether an expectation or a search's ``until`` reads the margin (then it must be the
    exact minimum, never a lower bound)."""
    searches = [s.until for s in (claim.minimize, claim.maximize) if s is not None]
    return any("margin" in repr(part) for part in (claim.expect, *searches))


def fact_tokens(facts: BijectionFacts, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``(len(index), 2)`` and answers of the facts at enumeration ``index``
    (``s = index mod N``, ``r = index div N``, as :meth:`BijectionFacts.batches` orders them)."""
    s, r = index % facts.n_entities, index // facts.n_entities
    return facts.tokens(s, r), torch.from_numpy(np.asarray(facts.answers(s, r), dtype=np.int64))


def fact_counterexample(
    facts: BijectionFacts, recall: RecallResult
) -> dict[str, int | None] | None:
    """The first fact ``recall`` got wrong, as report evidence (None if every fact is right)."""
    if recall.first_failure is None:
        return None
    n = facts.n_entities
    s, r = recall.first_failure % n, recall.first_failure // n
    return {
        "subject": int(s),
        "relation": int(r),
        "expected": int(facts.answers(s, r)),
        "got": recall.first_failure_prediction,
    }


def bijection_width_cap(name: str, instance: BijectionInstance, limits: Limits) -> int:
    """The widest m ``code_dim: auto`` may try for the named construction on ``instance``:
    its own cap (:func:`verifier.constructions.widths.width_cap`), 0 when none fits."""
    return width_cap(construction(name), size_params(instance, 1), limits)


@register("construction")
class ConstructionCheck(CheckKind[BijectionInstance | MultiHopInstance, ConstructionClaim]):
    """G1 or the compact construction through the real forward pass (Gk or Ck on chains)."""

    def preflight(
        self,
        instance: BijectionInstance | MultiHopInstance,
        claim: ConstructionClaim,
        limits: Limits,
    ) -> None:
        if isinstance(instance, MultiHopInstance):
            return multihop.preflight_construction(instance, claim, limits)
        spec = claim.construction
        built = construction(spec.name, "bijection", key=f"{claim.id}.construction.name")
        n, r, n_attr = instance.entities, instance.relations, attribute_count(instance)
        require("max_entities", n, limits.max_entities, "N")
        require("max_facts", n * r, limits.max_facts, "N*R (facts)")
        # code_dim auto: the exact search's last scan computes every pair's product, O(A^2 m)
        preflight_code_dim(spec, built, size_params(instance, 1), n_attr, "attributes", limits)

    def run(
        self, ctx: CheckContext[BijectionInstance | MultiHopInstance, ConstructionClaim]
    ) -> Measurement:
        if isinstance(ctx.instance, MultiHopInstance):
            return multihop.run_construction(ctx.on(ctx.instance))
        return self._run_bijection(ctx.on(ctx.instance))

    def _run_bijection(
        self, ctx: CheckContext[BijectionInstance, ConstructionClaim]
    ) -> Measurement:
        """G1 or the compact construction on every fact of a bijection instance."""
        instance, spec = ctx.instance, ctx.claim.construction
        name = spec.name
        label = construction(name).label
        facts = bijection_facts(instance)
        evidence: dict[str, Any] = {"codebook": spec.codebook, "seed": instance.seed}
        extremes: tuple[np.ndarray, np.ndarray] | None = None  # the search's Gram extremes
        ctx.report(0.0, "codebook")
        cap = bijection_width_cap(name, instance, ctx.limits)
        width = resolve_code_dim(
            spec, facts.n_attributes, instance.seed, cap, "attributes", "for this construction"
        )
        m, search = width.m, width.search
        evidence.update(width.evidence())
        if search is not None:
            extremes = search.sign_extremes
        params = require_size(construction(name), size_params(instance, m), ctx.limits).params
        codes = codebook(spec.codebook, facts.n_attributes, m, instance.seed)
        ctx.report(0.05, f"building {label}")
        model, layout = construction(name).build(facts, codes)
        ctx.report(0.1, "forward pass over every fact")

        def progress(done: int, total: int) -> None:
            ctx.report(0.1 + 0.9 * done / total, f"{done}/{total} facts")

        cert = certified_recall(
            model,
            Readout(codes, layout.readout),
            facts.batches(BATCH),
            lambda idx: fact_tokens(facts, idx),
            facts.n_facts,
            progress,
            resolve_cap=None if margin_judged(ctx.claim) else RESOLVE_CAP,
            gram=None if extremes is None else sign_gram_extremes(codes, *extremes),
        )
        if cert is None:  # W_U is not the codebook readout: every fact through the logits
            result, mu = exact_recall(model, facts.batches(BATCH), facts.n_facts, progress), None
        else:
            result, mu = cert.result, cert.coherence
            evidence["certificate"] = {
                "facts_certified": cert.certified,
                "facts_full_logits": cert.full_logits,
                "margin": "exact" if cert.margin_exact else "lower bound",
            }
        if mu is None:
            mu = coherence(codes)
        n = facts.n_entities
        values = {
            "accuracy": result.accuracy,
            "margin": result.margin,
            "coherence": mu,
            "code_dim": m,
            "embedding_dim": layout.d_model,
            "mlp_width": layout.d_mlp,
            "params": model.n_params(),
            "fact_params": n * layout.d_model,
            "n_facts": result.total,
        }
        if values["params"] != params:  # internal invariant: the size formula is the model's
            raise AssertionError(f"{label} params: formula {params}, model {values['params']}")
        counterexample = fact_counterexample(facts, result)
        if counterexample is not None:
            evidence["counterexample"] = counterexample
        if result.worst_index is not None:
            ws, wr = result.worst_index % n, result.worst_index // n
            evidence["tightest_fact"] = {"subject": int(ws), "relation": int(wr)}
        evidence["margin_vs_coherence"] = {"margin": result.margin, "one_minus_mu": 1 - mu}
        at_least = "at least " if cert is not None and not cert.margin_exact else ""
        return Measurement(
            method="exact" if cert is None else "certified",
            values=values,
            evidence=evidence,
            symbols={"m": m, "d": layout.d_model},
            artifacts={"model": model, "facts": facts, "codes": codes, "layout": layout},
            message=f"{result.correct}/{result.total} facts, margin {at_least}{result.margin:.4g}"
            if math.isfinite(result.margin)
            else "",
        )
