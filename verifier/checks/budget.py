"""The ``budget`` claim (docs/theory.md section 5): at parameter budget P, the largest depth solved.

For each depth ``k = 1..max_hops`` the instance's mode is built at the largest code width
``m_k <= m`` (m: the construction's own width, ``code_dim: auto`` searched once, since it depends
on N only) whose model fits the budget (``params <= P``, ``d_model <= D``; ``D: cot`` is Ck's width
at m), and all its queries are checked exactly (:func:`verifier.checks.multihop.verify`). Depth k
is solved when accuracy is 1. ``depth`` is the largest k with every depth ``1..k`` solved; the
search stops at the first unsolved depth past the instance's own.
"""

from __future__ import annotations

from typing import Any

from verifier.bisection import find_maximum
from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.checks.multihop import (
    max_auto_code_dim,
    multi_hop_facts,
    require_queries,
    require_size,
    resolve_code_dim,
    verify,
)
from verifier.constructions.codebooks import codebook
from verifier.errors import SpecError
from verifier.limits import Limits, require
from verifier.spec import BudgetClaim, MultiHopInstance
from verifier.theory.sizes import size_of


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
    fits = find_maximum(lambda m: _fits(cot, instance, hops, m, max_params, max_dim), 1, m_max)
    return fits.minimum or 0


@register("budget")
class BudgetCheck(CheckKind[MultiHopInstance, BudgetClaim]):
    """At a size budget, the largest depth the instance's mode solves exactly."""

    INSTANCE_NOTE = "a budget searches the depths of multi-hop queries"

    def preflight(self, instance: MultiHopInstance, claim: BudgetClaim, limits: Limits) -> None:
        if instance.chains != "all":
            raise SpecError(
                f"claim {claim.id!r}: a budget claim searches depths 1..max_hops over all chains; "
                "expected instance chains: all, got a list"
            )
        spec = claim.construction
        top = claim.max_hops or instance.hops
        known_m = (
            instance.entities
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
                instance.entities,
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
        for hops in range(1, max(top, instance.hops) + 1):
            require_queries(instance, hops, instance.relations**hops, limits)

    def run(self, ctx: CheckContext[MultiHopInstance, BudgetClaim]) -> Measurement:
        instance, claim = ctx.instance, ctx.claim
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
                require_size(cot, instance, hops, m_k, ctx.limits)
                codes = codebook(spec.codebook, n, m_k, instance.seed)  # nested: a prefix
                res = verify(multi_hop_facts(instance, hops), codes, cot)
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
