"""The ``budget`` claim (docs/theory.md section 5): at parameter budget P, the largest depth solved.

For each depth ``k = 1..max_hops`` the instance's mode (the registry's ``chain``, Gk, or with
``cot: true`` its ``cot``, Ck: :func:`verifier.constructions.registry.multi_hop_name`) is built
at the largest code width ``m_k <= m`` (m: the construction's own width, ``code_dim: auto``
searched once, since it depends on N only) whose model fits the budget (``params <= P``,
``d_model <= D``; ``D: cot`` is Ck's width at m), and all its queries are checked exactly
(:func:`verifier.checks.multihop.verify`). Depth k is solved when accuracy is 1. ``depth`` is
the largest k with every depth ``1..k`` solved; the search stops at the first unsolved depth
past the instance's own.
"""

from __future__ import annotations

from typing import Any

from verifier.bisection import find_maximum
from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.checks.multihop import chain_size_params, multi_hop_facts, require_queries, verify
from verifier.constructions.base import Construction
from verifier.constructions.codebooks import codebook
from verifier.constructions.registry import construction, multi_hop_name
from verifier.constructions.widths import (
    require_code_dim,
    require_size,
    resolve_code_dim,
    width_cap,
)
from verifier.errors import SpecError
from verifier.limits import Limits, require
from verifier.spec import BudgetClaim, MultiHopInstance


def largest_fitting_code_dim(
    built: Construction[Any, Any],
    instance: MultiHopInstance,
    hops: int,
    m_max: int,
    max_params: int | None,
    max_dim: int | None,
) -> int:
    """Largest ``m <= m_max`` whose model fits the budget (0 if none): sizes grow with m."""

    def fits(m: int) -> bool:
        sizes = built.size(chain_size_params(instance, m, hops))
        return (max_params is None or sizes.params <= max_params) and (
            max_dim is None or sizes.d_model <= max_dim
        )

    return find_maximum(fits, 1, m_max).minimum or 0


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
        top = claim.max_hops or instance.hops
        require_code_dim(claim.construction, instance.entities, "entities", limits)
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
        n = instance.entities
        built: Construction[Any, Any] = construction(multi_hop_name(instance.cot), "multi_hop")
        top = claim.max_hops or instance.hops
        ctx.report(0.0, "codebook")
        cap = width_cap(built, chain_size_params(instance, 1, 1), ctx.limits)
        width = resolve_code_dim(spec, n, instance.seed, cap, "entities", "for this depth")
        m_star, evidence = width.m, width.evidence()
        dim_budget = claim.budget.embedding_dim
        if dim_budget == "cot":  # Ck's width at depth 1 and the construction's code width
            ck = construction("cot", "multi_hop")
            dim_budget = ck.size(chain_size_params(instance, m_star, 1)).d_model
        max_dim = dim_budget if isinstance(dim_budget, int) else None
        max_params = claim.budget.params
        rows: list[dict[str, Any]] = []
        depth, at_own = 0, None
        last = max(top, instance.hops)
        for hops in range(1, last + 1):
            ctx.report(hops / (last + 1), f"depth {hops}")
            m_k = largest_fitting_code_dim(built, instance, hops, m_star, max_params, max_dim)
            if spec.codebook == "onehot" and m_k < m_star:
                m_k = 0  # one-hot codes cannot shrink
            row: dict[str, Any] = {"hops": hops, "code_dim": m_k}
            if m_k == 0:
                row.update(solved=False, reason="no code width fits the budget")
            else:
                sizes = require_size(built, chain_size_params(instance, m_k, hops), ctx.limits)
                codes = codebook(spec.codebook, n, m_k, instance.seed)  # nested: a prefix
                res = verify(multi_hop_facts(instance, hops), codes, built)
                d, params = sizes.d_model, sizes.params
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
        evidence.update(mode=built.label, code_dim=m_star, depths=rows)
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
            message=f"{built.label} solves depths 1..{depth} of 1..{top} within "
            f"params <= {max_params}, d <= {max_dim}",
        )
