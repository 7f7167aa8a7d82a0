"""Construction claims on multi-hop instances (docs/theory.md section 5): Gk and Ck through the
real forward pass.

``construction`` on a ``multi_hop`` instance (dispatched here from
:mod:`verifier.checks.construction`) builds the registry construction it names (``chain``: Gk,
for ``cot: false``; ``cot``: Ck, for ``cot: true``; the deprecated ``geometric`` picks one by
``cot``) and checks all ``N * |C|`` queries exactly
(:func:`verifier.measure.queries.evaluate_queries`): one forward pass per query without
chain-of-thought, greedy autoregressive decoding of ``y_1..y_k`` with it (every intermediate
entity judged). It also evaluates LBk on the seeded chain trees
(:mod:`verifier.theory.multihop`). The depth-at-a-budget claim built on these is
:mod:`verifier.checks.budget`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from verifier.checks.base import CheckContext, Measurement
from verifier.constructions.base import Construction, size_params
from verifier.constructions.chain import ChainLayout, positional_pattern
from verifier.constructions.codebooks import codebook, coherence
from verifier.constructions.registry import GEOMETRIC_ALIAS, construction, multi_hop_name
from verifier.constructions.widths import (
    preflight_code_dim,
    require_size,
    resolve_code_dim,
    width_cap,
)
from verifier.errors import SpecError
from verifier.facts.chains import ChainFacts, chain_facts
from verifier.limits import Limits, require
from verifier.measure.certified import Readout
from verifier.measure.queries import evaluate_queries
from verifier.measure.recall import ProgressFn
from verifier.model import OneLayerTransformer
from verifier.spec import ConstructionClaim, MultiHopInstance
from verifier.theory.multihop import lbk_bits
from verifier.theory.sizes import SizeParams


def multi_hop_facts(instance: MultiHopInstance, hops: int | None = None) -> ChainFacts:
    """The seeded chain facts of a multi-hop instance (at another depth: all chains)."""
    k = instance.hops if hops is None else hops
    chains = instance.chains if k == instance.hops else "all"
    return chain_facts(instance.entities, instance.relations, k, instance.seed, chains)


def chain_size_params(instance: MultiHopInstance, m: int, hops: int | None = None) -> SizeParams:
    """The size inputs of a multi-hop construction at code width ``m`` (at another depth
    ``hops``: every chain)."""
    return size_params(instance, m, None if hops == instance.hops else hops)


def query_shape(instance: MultiHopInstance) -> tuple[int, int]:
    """(forward passes per query, context length) of the construction the instance's ``cot``
    picks (:func:`multi_hop_name`): what training on its queries and decoding them cost."""
    built = construction(multi_hop_name(instance.cot), "multi_hop")
    steps = instance.hops if built.cot else 1
    return steps, built.size(chain_size_params(instance, 1)).n_ctx


def require_queries(instance: MultiHopInstance, hops: int, n_chains: int, limits: Limits) -> None:
    """N and the ``N * |C|`` queries at depth ``hops``."""
    n = instance.entities
    require("max_entities", n, limits.max_entities, "N")
    require(
        "max_queries",
        n * n_chains,
        limits.max_queries,
        f"N*R^k (queries at k = {hops}: {n} x {n_chains} chains)",
    )


# --- exact verification ----------------------------------------------------------------------


@dataclass
class Verified:
    """All queries of one depth through one model."""

    model: OneLayerTransformer
    layout: ChainLayout
    total: int
    correct: int
    margin: float
    step_correct: int
    decode_steps: int
    counterexample: dict[str, Any] | None
    attention_off_target: float
    certified: int | None = None  # queries the certificate decided (None: not certified)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def verify(
    facts: ChainFacts,
    codes: np.ndarray,
    built: Construction[ChainFacts, ChainLayout],
    progress: ProgressFn | None = None,
) -> Verified:
    """Build a multi-hop construction on ``codes`` and check every query exactly.

    Args:
        facts: the depth-k queries.
        codes: ``(N, m)`` unit entity codes.
        built: the registry's construction: with ``cot`` (Ck) greedy decoding, else (Gk) one
            forward pass per query.
        progress: optional ``(done, total)`` callback.
    """
    model, layout = built.build(facts, codes)
    cot = built.cot
    k = facts.hops
    n_ctx = model.cfg.n_ctx
    with torch.no_grad():
        pattern = positional_pattern(model, n_ctx)
    # Gk: head t at the last position must put weight 1 on position t; Ck: position p on p - k
    if cot:
        rows = torch.arange(k, n_ctx)
        target = torch.zeros_like(pattern[0, k:])
        target[torch.arange(len(rows)), rows - k] = 1.0
        off = float((pattern[0, k:] - target).abs().max())
    else:
        target = torch.eye(k + 1, dtype=pattern.dtype)[:k]
        off = float((pattern[:, -1] - target).abs().max())
    res = evaluate_queries(model, facts, cot, progress, Readout(codes, (layout.answer,)))
    return Verified(
        model,
        layout,
        res.total,
        res.correct,
        res.margin,
        res.step_correct,
        res.decode_steps,
        res.counterexample,
        off,
        res.certified,
    )


# --- construction claims on multi-hop instances ------------------------------------------------


def claimed_construction(
    instance: MultiHopInstance, claim: ConstructionClaim
) -> tuple[Construction[ChainFacts, ChainLayout], str | None]:
    """The registry's multi-hop construction a claim names, and a deprecation note.

    ``chain`` (Gk) or ``cot`` (Ck), or a plugin's, must answer the queries the way the
    instance's ``cot`` asks (greedy decoding, or one forward pass). The deprecated alias
    ``geometric`` resolves by ``cot`` (:func:`multi_hop_name`) and returns its note.

    Raises:
        SpecError: a name that is not a multi-hop construction, or one whose decoding is not
            the instance's; under ``<claim>.construction.name``.
    """
    name, key = claim.construction.name, f"{claim.id}.construction.name"
    if name == GEOMETRIC_ALIAS:
        resolved = multi_hop_name(instance.cot)
        note = (
            f"deprecated: name: {GEOMETRIC_ALIAS} on a multi_hop instance resolves by the "
            f"instance's cot ({str(instance.cot).lower()}) to {resolved}; name the "
            f"construction: {{name: {resolved}}}"
        )
        return construction(resolved, "multi_hop", key=key), note
    built = construction(name, "multi_hop", key=key)
    if built.cot != instance.cot:
        how = "by greedy decoding (cot)" if built.cot else "in one forward pass (no cot)"
        raise SpecError(
            f"construction {name!r} answers the queries {how}: expected instance cot: "
            f"{str(built.cot).lower()} or name {multi_hop_name(instance.cot)!r}, got cot: "
            f"{str(instance.cot).lower()}",
            key=key,
        )
    return built, None


def preflight_construction(
    instance: MultiHopInstance, claim: ConstructionClaim, limits: Limits
) -> None:
    """Limits of a construction claim on a multi-hop instance, before any work."""
    built, _ = claimed_construction(instance, claim)
    require_queries(instance, instance.hops, instance.n_chains, limits)
    params = chain_size_params(instance, 1)
    preflight_code_dim(claim.construction, built, params, instance.entities, "entities", limits)


def run_construction(ctx: CheckContext[MultiHopInstance, ConstructionClaim]) -> Measurement:
    """A multi-hop construction (Gk, Ck) on every query of a multi-hop instance, exactly."""
    instance, spec = ctx.instance, ctx.claim.construction
    built, deprecated = claimed_construction(instance, ctx.claim)
    facts = multi_hop_facts(instance)
    n = instance.entities
    ctx.report(0.0, "codebook")
    cap = width_cap(built, chain_size_params(instance, 1), ctx.limits)
    width = resolve_code_dim(spec, n, instance.seed, cap, "entities", "for this depth")
    m, evidence = width.m, width.evidence()
    sizes = require_size(built, chain_size_params(instance, m), ctx.limits)
    codes = codebook(spec.codebook, n, m, instance.seed)
    mu = coherence(codes)
    ctx.report(0.05, f"building {built.label}, verifying {facts.n_queries} queries")

    def progress(done: int, total: int) -> None:
        ctx.report(0.05 + 0.85 * done / total, f"{done}/{total} queries")

    res = verify(facts, codes, built, progress)
    ctx.report(0.9, "LBk on the chain trees")
    lbk = lbk_bits(facts)
    d, w, params = sizes.d_model, sizes.d_mlp, sizes.params
    if (res.layout.d_model, res.layout.d_mlp, res.model.n_params()) != (d, w, params):
        raise AssertionError(  # internal invariant: the size formulas are the model's
            f"size formula {(d, w, params)} != model "
            f"{(res.layout.d_model, res.layout.d_mlp, res.model.n_params())}"
        )
    values = {
        "accuracy": res.accuracy,
        "margin": res.margin,
        "coherence": mu,
        "code_dim": m,
        "embedding_dim": d,
        "mlp_width": w,
        "params": params,
        "fact_params": n * d,
        "n_facts": n * instance.relations,
        "decode_steps": res.decode_steps,
        "n_queries": res.total,
        "step_accuracy": res.step_correct / (res.total * res.decode_steps),
        "lbk_bits": lbk.min_bits,
        "lbk_bits_avg": lbk.avg_bits,
        "lbk_bits_approx": lbk.approx_bits,
        "dim_per_lbk_bit": d / lbk.avg_bits if lbk.avg_bits > 0 else None,
    }
    evidence.update(
        codebook=spec.codebook,
        seed=instance.seed,
        construction=built.label,
        attention_off_target_max=res.attention_off_target,
        margin_vs_coherence={"margin": res.margin, "one_minus_mu": 1 - mu},
        lbk={"min_bits": lbk.min_bits, "argmin_subject": lbk.argmin, "avg_bits": lbk.avg_bits},
    )
    if res.counterexample is not None:
        evidence["counterexample"] = res.counterexample
    if res.certified is not None:
        evidence["certificate"] = {"queries_certified": res.certified, "margin": "exact"}
    message = (
        f"{res.correct}/{res.total} queries, {res.decode_steps} step(s) each, "
        f"margin {res.margin:.4g}"
    )
    if deprecated is not None:
        evidence["deprecated"] = deprecated
        message += f" ({deprecated})"
    return Measurement(
        method="exact" if res.certified is None else "certified",
        values=values,
        evidence=evidence,
        symbols={"m": m, "d": d},
        artifacts={"model": res.model, "facts": facts, "codes": codes, "layout": res.layout},
        message=message,
    )
