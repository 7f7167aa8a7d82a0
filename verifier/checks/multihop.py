"""Construction claims on multi-hop instances (docs/theory.md section 5): Gk and Ck through the
real forward pass.

``construction`` on a ``multi_hop`` instance (dispatched here from
:mod:`verifier.checks.construction`) builds Gk (``cot: false``) or Ck (``cot: true``) and
checks all ``N * |C|`` queries exactly (:func:`verifier.measure.queries.evaluate_queries`): one
forward pass per query without chain-of-thought, greedy autoregressive decoding of ``y_1..y_k``
with it (every intermediate entity judged). It also evaluates LBk on the seeded chain trees
(:mod:`verifier.theory.multihop`). The depth-at-a-budget claim built on these is
:mod:`verifier.checks.budget`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from verifier.checks.base import CheckContext, Measurement
from verifier.constructions.chain import ChainLayout, positional_pattern
from verifier.constructions.codebooks import codebook, coherence, smallest_code_dim
from verifier.constructions.registry import construction
from verifier.errors import LimitExceeded, SpecError
from verifier.facts.chains import ChainFacts, chain_facts
from verifier.limits import Limits, require
from verifier.measure.certified import Readout
from verifier.measure.queries import evaluate_queries
from verifier.measure.recall import ProgressFn
from verifier.model import OneLayerTransformer
from verifier.spec import CodebookConstruction, ConstructionClaim, MultiHopInstance
from verifier.theory.multihop import lbk_bits
from verifier.theory.sizes import size_of


def multi_hop_facts(instance: MultiHopInstance, hops: int | None = None) -> ChainFacts:
    """The seeded chain facts of a multi-hop instance (at another depth: all chains)."""
    k = instance.hops if hops is None else hops
    chains = instance.chains if k == instance.hops else "all"
    return chain_facts(instance.entities, instance.relations, k, instance.seed, chains)


def max_auto_code_dim(cot: bool, n_rel: int, hops: int, n_chains: int, limits: Limits) -> int:
    """The widest m code_dim auto may try: within max_code_dim and max_width."""
    slots, blocks = (n_rel, 1) if cot else (n_chains, hops)
    by_d = (limits.max_width - blocks * n_rel - 2) // (slots + 1)
    by_mlp = limits.max_width // (2 * slots)
    return min(limits.max_code_dim, by_d, by_mlp)


def resolve_code_dim(
    spec: CodebookConstruction, n: int, seed: int, max_m: int
) -> tuple[int, dict[str, Any]]:
    """The construction's code width m (onehot: N; auto: the exact coherence search)."""
    if spec.codebook == "onehot":
        if spec.code_dim not in ("auto", n):
            raise SpecError(
                f"codebook onehot: expected code_dim auto or {n} (= entities), got {spec.code_dim}"
            )
        return n, {}
    if spec.code_dim != "auto":
        return int(spec.code_dim), {}
    if max_m < 1:
        raise LimitExceeded.search_exhausted(
            "code_dim auto", ("max_width", "max_code_dim"), max_m, "for this depth"
        )
    search = smallest_code_dim(spec.codebook, n, 1 - spec.margin, seed, max_m)
    return search.m, {
        "code_search": {
            "target_coherence": 1 - spec.margin,
            "found": search.m,
            "widths_evaluated": search.evaluated,
        }
    }


def require_size(
    cot: bool,
    instance: MultiHopInstance,
    hops: int,
    m: int,
    limits: Limits,
    n_chains: int | None = None,
) -> None:
    """Gk's or Ck's width and parameter count at depth ``hops`` and code width ``m``."""
    d, w, params = size_of(cot, instance.entities, instance.relations, hops, m, n_chains)
    name = "Ck" if cot else "Gk"
    require("max_width", max(d, w), limits.max_width, f"the {name} model's width (d_model, d_mlp)")
    require("max_weights", params, limits.max_weights, f"the {name} model's parameter count")


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
    facts: ChainFacts, codes: np.ndarray, cot: bool, progress: ProgressFn | None = None
) -> Verified:
    """Build Gk or Ck on ``codes`` and check every query exactly.

    Args:
        facts: the depth-k queries.
        codes: ``(N, m)`` unit entity codes.
        cot: Ck with greedy decoding, else Gk with one forward pass.
        progress: optional ``(done, total)`` callback.
    """
    model, layout = construction("cot" if cot else "chain").build(facts, codes)
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


def preflight_construction(
    instance: MultiHopInstance, claim: ConstructionClaim, limits: Limits
) -> None:
    """Limits of a construction claim on a multi-hop instance, before any work."""
    spec = claim.construction
    if spec.name != "geometric":
        raise SpecError(
            f"construction {spec.name}: expected a bijection instance, "
            "got multi_hop (chains are built from G1: name geometric)",
            key=f"{claim.id}.construction.name",
        )
    require_queries(instance, instance.hops, instance.n_chains, limits)
    if spec.codebook != "onehot" and spec.code_dim == "auto":
        require(
            "max_auto_attributes",
            instance.entities,
            limits.max_auto_attributes,
            "entities for code_dim auto",
        )
        cap = max_auto_code_dim(
            instance.cot, instance.relations, instance.hops, instance.n_chains, limits
        )
        if cap < 1:
            require_size(instance.cot, instance, instance.hops, 1, limits, instance.n_chains)
        return
    m = instance.entities if spec.codebook == "onehot" else int(spec.code_dim)
    require("max_code_dim", m, limits.max_code_dim, "code_dim")
    require_size(instance.cot, instance, instance.hops, m, limits, instance.n_chains)


def run_construction(ctx: CheckContext[MultiHopInstance, ConstructionClaim]) -> Measurement:
    """Gk or Ck on every query of a multi-hop instance, exactly."""
    instance, spec = ctx.instance, ctx.claim.construction
    facts = multi_hop_facts(instance)
    n, cot = instance.entities, instance.cot
    ctx.report(0.0, "codebook")
    cap = max_auto_code_dim(cot, instance.relations, instance.hops, facts.n_chains, ctx.limits)
    m, evidence = resolve_code_dim(spec, n, instance.seed, cap)
    require_size(cot, instance, instance.hops, m, ctx.limits, facts.n_chains)
    codes = codebook(spec.codebook, n, m, instance.seed)
    mu = coherence(codes)
    ctx.report(0.05, f"building {'Ck' if cot else 'Gk'}, verifying {facts.n_queries} queries")

    def progress(done: int, total: int) -> None:
        ctx.report(0.05 + 0.85 * done / total, f"{done}/{total} queries")

    res = verify(facts, codes, cot, progress)
    ctx.report(0.9, "LBk on the chain trees")
    lbk = lbk_bits(facts)
    d, w, params = size_of(cot, n, instance.relations, instance.hops, m, facts.n_chains)
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
        construction="Ck" if cot else "Gk",
        attention_off_target_max=res.attention_off_target,
        margin_vs_coherence={"margin": res.margin, "one_minus_mu": 1 - mu},
        lbk={"min_bits": lbk.min_bits, "argmin_subject": lbk.argmin, "avg_bits": lbk.avg_bits},
    )
    if res.counterexample is not None:
        evidence["counterexample"] = res.counterexample
    if res.certified is not None:
        evidence["certificate"] = {"queries_certified": res.certified, "margin": "exact"}
    return Measurement(
        method="exact" if res.certified is None else "certified",
        values=values,
        evidence=evidence,
        symbols={"m": m, "d": d},
        artifacts={"model": res.model, "facts": facts, "codes": codes, "layout": res.layout},
        message=f"{res.correct}/{res.total} queries, {res.decode_steps} step(s) each, "
        f"margin {res.margin:.4g}",
    )
