"""Multi-hop claims (docs/theory.md section 5): Gk and Ck through the real forward pass.

``construction`` on a ``multi_hop`` instance (dispatched here from
:mod:`verifier.checks.construction`) builds Gk (``cot: false``) or Ck (``cot: true``) and
checks all ``N * |C|`` queries exactly, in float64 and bounded batches: one forward pass per
query without chain-of-thought, greedy autoregressive decoding of ``y_1..y_k`` with it (every
intermediate entity judged). It also evaluates LBk on the seeded chain trees
(:mod:`verifier.theory.multihop`).

``budget`` ("at parameter budget P, the largest depth solved"): for each depth ``k = 1..max_hops``
the instance's mode is built at the largest code width ``m_k <= m`` (m: the construction's own
width, ``code_dim: auto`` searched once, since it depends on N only) whose model fits the budget
(``params <= P``, ``d_model <= D``; ``D: cot`` is Ck's width at m), and all its queries are
checked exactly. Depth k is solved when accuracy is 1. ``depth`` is the largest k with every
depth ``1..k`` solved; the search stops at the first unsolved depth past the instance's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from verifier.checks.base import CheckContext, Measurement, register
from verifier.constructions.chain import ChainLayout, build_chain, positional_pattern
from verifier.constructions.codebooks import codebook, coherence, smallest_code_dim
from verifier.constructions.cot import build_cot, first_failure, greedy_decode
from verifier.errors import LimitExceeded, SpecError
from verifier.facts.chains import ChainFacts, chain_facts
from verifier.limits import Limits, require
from verifier.measure.recall import exact_recall
from verifier.model import OneLayerTransformer
from verifier.spec import BudgetClaim, GeometricConstruction, MultiHopInstance
from verifier.theory.multihop import lbk_bits
from verifier.theory.sizes import size_of

QUERY_FLOATS = 4_000_000  # floats per forward batch: bounds memory at ~32 MB of activations


def facts_of(instance: MultiHopInstance, hops: int | None = None) -> ChainFacts:
    """The seeded chain facts of a multi-hop instance (at another depth: all chains)."""
    k = instance.hops if hops is None else hops
    chains = instance.chains if k == instance.hops else "all"
    return chain_facts(instance.entities, instance.relations, k, instance.seed, chains)


def batch_size(d_model: int, d_mlp: int, n_out: int, n_ctx: int) -> int:
    """Queries per forward batch, so one batch holds about ``QUERY_FLOATS`` activations."""
    return max(16, min(8192, QUERY_FLOATS // (n_ctx * d_model + d_mlp + n_out)))


def max_auto_code_dim(cot: bool, n_rel: int, hops: int, n_chains: int, limits: Limits) -> int:
    """The widest m code_dim auto may try: within max_code_dim and max_width."""
    slots, blocks = (n_rel, 1) if cot else (n_chains, hops)
    by_d = (limits.max_width - blocks * n_rel - 2) // (slots + 1)
    by_mlp = limits.max_width // (2 * slots)
    return min(limits.max_code_dim, by_d, by_mlp)


def resolve_code_dim(
    spec: GeometricConstruction, n: int, seed: int, max_m: int
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


def _require_size(
    cot: bool,
    instance: MultiHopInstance,
    hops: int,
    m: int,
    limits: Limits,
    n_chains: int | None = None,
) -> None:
    d, w, params = size_of(cot, instance.entities, instance.relations, hops, m, n_chains)
    name = "Ck" if cot else "Gk"
    require("max_width", max(d, w), limits.max_width, f"the {name} model's width (d_model, d_mlp)")
    require("max_weights", params, limits.max_weights, f"the {name} model's parameter count")


def _require_queries(instance: MultiHopInstance, hops: int, n_chains: int, limits: Limits) -> None:
    n = instance.entities
    require("max_entities", n, limits.max_entities, "N")
    require(
        "max_queries",
        n * n_chains,
        limits.max_queries,
        f"N*R^k (queries at k = {hops}: {n} x {n_chains} chains)",
    )


def _require_instance(instance: Any) -> MultiHopInstance:
    if not isinstance(instance, MultiHopInstance):
        raise SpecError(f"expected a multi_hop instance, got kind {instance.kind!r}")
    return instance


# --- exact verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueryRecall:
    """Every multi-hop query through one model, float64.

    Attributes:
        total: queries checked (``N*|C|``).
        correct: queries with every decoding step right.
        step_correct: (query, step) pairs right.
        decode_steps: k with chain-of-thought, else 1.
        margin: min over queries and steps of (true token's logit - best other logit), each
            step given the model's own earlier emissions.
        final_correct: queries whose last emitted token is the answer, however it got there.
        counterexample: the first failing query, or None.
    """

    total: int
    correct: int
    step_correct: int
    decode_steps: int
    margin: float
    final_correct: int
    counterexample: dict[str, Any] | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def step_accuracy(self) -> float:
        steps = self.total * self.decode_steps
        return self.step_correct / steps if steps else 0.0


def evaluate_queries(
    model: OneLayerTransformer, facts: ChainFacts, cot: bool, progress: Any = None
) -> QueryRecall:
    """Every query of ``facts`` through ``model``'s forward pass, exactly, in bounded batches.

    Without chain-of-thought: one pass on ``[r_1..r_k, x]``, judged against ``pi_c(x)``. With it:
    greedy decoding of ``y_1..y_k``, each step judged against the *true* ``y_i`` (a query is right
    only when every step is). ``progress``: optional ``(done, total)`` callback.
    """
    cfg = model.cfg
    size = batch_size(cfg.d_model, cfg.d_mlp, cfg.n_out, cfg.n_ctx)
    if not cot:
        res = exact_recall(model, facts.batches(size), facts.n_queries, progress)
        cex = None
        if res.first_failure is not None:
            subjects, chains = facts.query_arrays(res.first_failure, res.first_failure + 1)
            cex = {
                "subject": int(subjects[0]),
                "chain": [int(r) for r in chains[0]],
                "expected": int(facts.answers(subjects, chains)[0]),
                "got": res.first_failure_prediction,
            }
        return QueryRecall(res.total, res.correct, res.correct, 1, res.margin, res.correct, cex)
    correct = step_correct = final_correct = seen = 0
    margin = math.inf
    cex = None
    for subjects, chains in facts.query_batches(size):
        dec = greedy_decode(model, facts, subjects, chains)
        ok = dec.margins > 0  # (b, k): step i right given the model's own y_1..y_{i-1}
        all_ok = ok.all(dim=1)
        step_correct += int(ok.sum())
        correct += int(all_ok.sum())
        answers = facts.answers(subjects, chains)
        final_correct += int((dec.predictions[:, -1].numpy() == answers).sum())
        margin = min(margin, float(dec.margins.min()))
        if cex is None:
            cex = first_failure(facts, subjects, chains, dec)
        seen += len(subjects)
        if progress is not None:
            progress(seen, facts.n_queries)
    k = facts.hops
    return QueryRecall(seen, correct, step_correct, k, margin, final_correct, cex)


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

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def verify(facts: ChainFacts, codes: np.ndarray, cot: bool, progress: Any = None) -> Verified:
    """Build Gk or Ck on ``codes`` and check every query exactly.

    Args:
        facts: the depth-k queries.
        codes: ``(N, m)`` unit entity codes.
        cot: Ck with greedy decoding, else Gk with one forward pass.
        progress: optional ``(done, total)`` callback.
    """
    model, layout = (build_cot if cot else build_chain)(facts, codes)
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
    res = evaluate_queries(model, facts, cot, progress)
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
    )


# --- construction claims on multi-hop instances ------------------------------------------------


def preflight_construction(instance: MultiHopInstance, claim: Any, limits: Limits) -> None:
    """Limits of a construction claim on a multi-hop instance, before any work."""
    spec: GeometricConstruction = claim.construction
    _require_queries(instance, instance.hops, instance.n_chains, limits)
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
            _require_size(instance.cot, instance, instance.hops, 1, limits, instance.n_chains)
        return
    m = instance.entities if spec.codebook == "onehot" else int(spec.code_dim)
    require("max_code_dim", m, limits.max_code_dim, "code_dim")
    _require_size(instance.cot, instance, instance.hops, m, limits, instance.n_chains)


def run_construction(ctx: CheckContext) -> Measurement:
    """Gk or Ck on every query of a multi-hop instance, exactly."""
    instance: MultiHopInstance = ctx.instance
    spec: GeometricConstruction = ctx.claim.construction
    facts = facts_of(instance)
    n, cot = instance.entities, instance.cot
    ctx.report(0.0, "codebook")
    cap = max_auto_code_dim(cot, instance.relations, instance.hops, facts.n_chains, ctx.limits)
    m, evidence = resolve_code_dim(spec, n, instance.seed, cap)
    _require_size(cot, instance, instance.hops, m, ctx.limits, facts.n_chains)
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
    return Measurement(
        method="exact",
        values=values,
        evidence=evidence,
        symbols={"m": m, "d": d},
        artifacts={"model": res.model, "facts": facts, "codes": codes, "layout": res.layout},
        message=f"{res.correct}/{res.total} queries, {res.decode_steps} step(s) each, "
        f"margin {res.margin:.4g}",
    )


# --- budget claims ---------------------------------------------------------------------------


def _fits(
    cot: bool,
    instance: MultiHopInstance,
    hops: int,
    m: int,
    max_params: int | None,
    max_dim: int | None,
) -> bool:
    d, _, params = size_of(cot, instance.entities, instance.relations, hops, m)
    return (max_params is None or params <= max_params) and (max_dim is None or d <= max_dim)


def largest_fitting_code_dim(
    cot: bool,
    instance: MultiHopInstance,
    hops: int,
    m_max: int,
    max_params: int | None,
    max_dim: int | None,
) -> int:
    """Largest ``m <= m_max`` whose model fits the budget (0 if none): sizes grow with m."""
    lo, hi = 0, m_max
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(cot, instance, hops, mid, max_params, max_dim):
            lo = mid
        else:
            hi = mid - 1
    return lo


@register("budget")
class BudgetCheck:
    """At a size budget, the largest depth the instance's mode solves exactly."""

    def preflight(self, instance: Any, claim: Any, limits: Limits) -> None:
        inst = _require_instance(instance)
        assert isinstance(claim, BudgetClaim)
        if inst.chains != "all":
            raise SpecError(
                f"claim {claim.id!r}: a budget claim searches depths 1..max_hops over all chains; "
                "expected instance chains: all, got a list"
            )
        spec = claim.construction
        top = claim.max_hops or inst.hops
        known_m = (
            inst.entities
            if spec.codebook == "onehot"
            else None
            if spec.code_dim == "auto"
            else int(spec.code_dim)
        )
        if known_m is not None:
            require("max_code_dim", known_m, limits.max_code_dim, "code_dim")
        elif spec.codebook != "onehot":
            require(
                "max_auto_attributes",
                inst.entities,
                limits.max_auto_attributes,
                "entities for code_dim auto",
            )
        if claim.budget.params is not None:
            require("max_weights", claim.budget.params, limits.max_weights, "the budget's params")
        if isinstance(claim.budget.embedding_dim, int):
            require(
                "max_width",
                claim.budget.embedding_dim,
                limits.max_width,
                "the budget's embedding_dim",
            )
        for hops in range(1, max(top, inst.hops) + 1):
            _require_queries(inst, hops, inst.relations**hops, limits)

    def run(self, ctx: CheckContext) -> Measurement:
        instance: MultiHopInstance = ctx.instance
        claim: BudgetClaim = ctx.claim
        spec = claim.construction
        n, n_rel, cot = instance.entities, instance.relations, instance.cot
        top = claim.max_hops or instance.hops
        ctx.report(0.0, "codebook")
        m_star, evidence = resolve_code_dim(
            spec, n, instance.seed, max_auto_code_dim(True, n_rel, 1, n_rel, ctx.limits)
        )
        dim_budget = claim.budget.embedding_dim
        if dim_budget == "cot":
            dim_budget = size_of(True, n, n_rel, 1, m_star)[0]
        max_dim = dim_budget if isinstance(dim_budget, int) else None
        max_params = claim.budget.params
        rows: list[dict[str, Any]] = []
        depth, at_own = 0, None
        last = max(top, instance.hops)
        for hops in range(1, last + 1):
            ctx.report(hops / (last + 1), f"depth {hops}")
            m_k = largest_fitting_code_dim(cot, instance, hops, m_star, max_params, max_dim)
            if spec.codebook == "onehot" and m_k < m_star:
                m_k = 0  # one-hot codes cannot shrink
            row: dict[str, Any] = {"hops": hops, "code_dim": m_k}
            if m_k == 0:
                row.update(solved=False, reason="no code width fits the budget")
            else:
                _require_size(cot, instance, hops, m_k, ctx.limits)
                codes = codebook(spec.codebook, n, m_k, instance.seed)  # nested: a prefix
                res = verify(facts_of(instance, hops), codes, cot)
                d, _, params = size_of(cot, n, n_rel, hops, m_k)
                row.update(
                    solved=res.correct == res.total,
                    accuracy=res.accuracy,
                    margin=res.margin,
                    embedding_dim=d,
                    params=params,
                    queries=res.total,
                )
                if res.counterexample is not None:
                    row["counterexample"] = res.counterexample
            rows.append(row)
            if hops == instance.hops:
                at_own = row
            if row["solved"] and depth == hops - 1:
                depth = hops
            if not row["solved"] and hops >= instance.hops:
                break
        depth = min(depth, top)
        own = at_own or {}
        values = {
            "depth": depth,
            "saturated": depth >= top,
            "failed_at": depth + 1 if depth < top else None,
            "accuracy": own.get("accuracy"),
            "margin": own.get("margin"),
            "code_dim": own.get("code_dim"),
            "embedding_dim": own.get("embedding_dim"),
            "params": own.get("params"),
            "budget_params": max_params,
            "budget_dim": max_dim,
        }
        evidence.update(mode="Ck" if cot else "Gk", code_dim=m_star, depths=rows)
        symbols: dict[str, float] = {"m": m_star}
        if max_params is not None:
            symbols["P"] = max_params
        if max_dim is not None:
            symbols["D"] = max_dim
        return Measurement(
            method="exact",
            values=values,
            evidence=evidence,
            symbols=symbols,
            message=f"{'Ck' if cot else 'Gk'} solves depths 1..{depth} of 1..{top} within "
            f"params <= {max_params}, d <= {max_dim}",
        )
