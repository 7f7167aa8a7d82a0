"""The ``feasibility`` claim: convex certificates (docs/theory.md section 6).

``program: codebook_margin`` (P1), ``reembed`` (P2) or ``associative_width`` (P3). Measures
``status``, ``margin`` (the checked sandwich ``[margin_lower, margin_upper]``), ``min_code_dim``
(P1, P2 with ``code_dim: auto``), ``min_d_model`` (P2), ``min_width`` (P3 with ``width: auto``),
``max_violation``, and for P2/P3 the forward pass's ``accuracy``. The ``margin`` value handed
to an expectation is the side of the sandwich that makes the verdict sound: the lower bound
for ``>=``/``>``, the upper bound for ``<=``/``<``, and for ``==``/``!=`` the interval only
when it is closed.
A solver that does not answer ``optimal`` makes the claim an ``error``, never a pass.

Each program is its own :class:`~verifier.checks.base.CheckKind` (:class:`CodebookMargin`,
:class:`Reembed`, :class:`AssociativeWidth`); the registered :class:`FeasibilityCheck` checks
the limits every program shares and hands the claim to its ``program``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from verifier.checks.base import CheckContext, CheckKind, Measurement, register
from verifier.checks.construction import (
    attribute_count,
    bijection_facts,
    bijection_width_cap,
    geometric_size,
)
from verifier.constructions.codebooks import codebook, coherence
from verifier.constructions.registry import construction
from verifier.constructions.widths import require_code_dim
from verifier.convex.associative import AssociativeResult, associative_width, p3_nonzeros
from verifier.convex.codebook_margin import CodebookMarginResult, codebook_margin
from verifier.convex.min_dimension import min_code_dim, min_reembed_dim, min_width
from verifier.convex.reembed import reembed
from verifier.convex.solver import SolverSettings
from verifier.errors import LimitExceeded, SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits, require
from verifier.seeds import Stream, rng
from verifier.spec import BijectionInstance, FeasibilityClaim, GeometricConstruction

CLOSED = 1e-9  # an interval this narrow counts as a point for == and !=
FeasibilityContext = CheckContext[BijectionInstance, FeasibilityClaim]


def settings_of(claim: FeasibilityClaim, limits: Limits) -> SolverSettings:
    """The claim's solver choice with the configured time limit."""
    return SolverSettings(claim.solver, claim.fallback, float(limits.solver_time_limit_s))


def margin_for(claim: FeasibilityClaim, lower: float, upper: float) -> float | None:
    """The sandwich side that makes the claim's ``margin`` expectation sound (None: undecided)."""
    for e in claim.expectations:
        if e.measure != "margin":
            continue
        op = e.comparison.op if e.comparison is not None else "=="
        if op in (">=", ">"):
            return lower
        if op in ("<=", "<"):
            return upper
        return (lower + upper) / 2 if upper - lower <= CLOSED else None
    return lower


def p3_max_width(instance: BijectionInstance, claim: FeasibilityClaim, limits: Limits) -> int:
    """Widest w whose P3 program (its nonzeros, :func:`p3_nonzeros`) fits max_lp_entries and
    max_width."""
    n_out = attribute_count(instance)
    f, d = instance.entities * instance.relations, claim.embed_dim
    by_entries = (limits.max_lp_entries - p3_nonzeros(f, n_out, d, 0)) // (f * d)
    return int(min(limits.max_width, by_entries))


def p2_entries(instance: BijectionInstance, m: int) -> int:
    """Entries of one subject's full P2 program over G1 at code width m (rows x columns)."""
    n_attr = attribute_count(instance)
    d, w, _ = geometric_size(instance, m)
    return (instance.relations * (n_attr - 1 + w)) * (d + 1)


def p2_max_code_dim(instance: BijectionInstance, limits: Limits) -> int:
    """Widest G1 code width whose network and P2 programs fit the limits (0: none)."""
    for m in range(bijection_width_cap("geometric", instance, limits), 0, -1):
        d, w, params = geometric_size(instance, m)
        if (
            max(d, w) <= limits.max_width
            and params <= limits.max_weights
            and p2_entries(instance, m) <= limits.max_lp_entries
        ):
            return m
    return 0


def g1_codebook(claim: FeasibilityClaim) -> GeometricConstruction:
    """P1's and P2's G1 construction (the spec requires one for these programs)."""
    if claim.construction is None:
        raise SpecError(f"program {claim.program}: expected a construction, got none")
    return claim.construction


def code_width_cap(instance: BijectionInstance, claim: FeasibilityClaim, limits: Limits) -> int:
    """The widest code width P1 or P2 may use: ``code_dim``, or the cap of ``code_dim: auto``.

    Raises:
        SpecError: a one-hot ``code_dim`` other than the attribute count.
        LimitExceeded: ``code_dim`` over max_code_dim, or too many attributes for auto.
    """
    m = require_code_dim(g1_codebook(claim), attribute_count(instance), "attributes", limits)
    return bijection_width_cap("geometric", instance, limits) if m is None else m


class Program(CheckKind[BijectionInstance, FeasibilityClaim]):
    """One convex program of a feasibility claim: its limits, then its solve on the instance's
    facts with the claim's solver settings."""

    def run(self, ctx: FeasibilityContext) -> Measurement:
        return self.solve(ctx, bijection_facts(ctx.instance), settings_of(ctx.claim, ctx.limits))

    @abstractmethod
    def solve(
        self, ctx: FeasibilityContext, facts: BijectionFacts, settings: SolverSettings
    ) -> Measurement:
        """Solve the program and report its certified values."""


class CodebookMargin(Program):
    """P1: the largest margin by which each attribute code separates from the others."""

    def preflight(
        self, instance: BijectionInstance, claim: FeasibilityClaim, limits: Limits
    ) -> None:
        require(
            "max_lp_entries",
            (attribute_count(instance) - 1) * (code_width_cap(instance, claim, limits) + 1),
            limits.max_lp_entries,
            "each P1 program (rows x columns)",
        )

    def solve(
        self, ctx: FeasibilityContext, facts: BijectionFacts, settings: SolverSettings
    ) -> Measurement:
        instance, claim = ctx.instance, ctx.claim
        spec = g1_codebook(claim)
        n_attr = facts.n_attributes
        evidence: dict[str, Any] = {
            "codebook": spec.codebook,
            "seed": instance.seed,
            "min_margin": claim.min_margin,
        }
        values: dict[str, Any] = {"n_facts": facts.n_facts}
        if spec.code_dim == "auto":
            m_max = code_width_cap(instance, claim, ctx.limits)  # onehot: its one width, A
            search = min_code_dim(
                spec.codebook,
                n_attr,
                instance.seed,
                claim.min_margin,
                m_max,
                claim.box,
                settings,
                lambda msg: ctx.report(0.5, msg),
            )
            if search.m is None or search.at is None:
                raise LimitExceeded.search_exhausted(
                    "code_dim auto",
                    ("max_code_dim", "max_width"),
                    m_max,
                    f"has a certified P1 margin >= {claim.min_margin:g}",
                )
            result = search.at
            values["min_code_dim"] = search.m
            evidence["neighbours"] = {
                str(search.m): _p1_summary(search.at, claim.min_margin),
                **(
                    {str(search.m - 1): _p1_summary(search.below, claim.min_margin)}
                    if search.below is not None
                    else {}
                ),
            }
            evidence["widths_below_all_certified_infeasible"] = not search.undecided
            if search.undecided:
                evidence["undecided_widths"] = search.undecided
            m = search.m
        else:
            m = spec.code_dim
            codes = codebook(spec.codebook, n_attr, m, instance.seed)

            def progress(done: int, total: int) -> None:
                ctx.report(done / total, f"{done}/{total} targets")

            result = codebook_margin(codes, claim.box, settings, progress=progress)
        codes = codebook(spec.codebook, n_attr, m, instance.seed)
        status = result.status(claim.min_margin)
        g1_margin = 1 - coherence(codes)
        lower, upper = result.margin_lower, result.margin_upper
        if spec.codebook == "rademacher" and lower < g1_margin - 1e-9:  # v = a_t is feasible
            raise AssertionError(f"P1 lower bound {lower} below the G1 point's {g1_margin}")
        values.update(
            status=status,
            margin=margin_for(claim, lower, upper),
            margin_lower=lower,
            margin_upper=upper,
            max_violation=result.max_violation,
            code_dim=m,
        )
        evidence.update(
            sandwich=[lower, upper],
            box=result.box,
            solvers=list(result.solvers),
            solves=result.solves,
            g1_margin_one_minus_mu=g1_margin,
            tightest_target=result.tightest().as_evidence(),
            weakest_lower_target=result.loosest_lower().as_evidence(),
        )
        message = f"{status}: certified margin in [{lower:.6g}, {upper:.6g}] over {n_attr} targets"
        if status == "infeasible":
            cert = result.tightest()
            message = (
                f"infeasible: target {cert.target} cannot be separated with margin "
                f">= {claim.min_margin:g}; its dual certificate bounds the margin by "
                f"{cert.upper:.6g} (weights on competitors {[j for j, _ in cert.support]})"
            )
        return Measurement(
            method="certificate",
            values=values,
            evidence=evidence,
            symbols={"m": m},
            message=message,
            status="undecided" if status == "undecided" else None,
        )


class Reembed(Program):
    """P2: new subject rows for new bijections through the frozen G1 network."""

    def preflight(
        self, instance: BijectionInstance, claim: FeasibilityClaim, limits: Limits
    ) -> None:
        m_max = code_width_cap(instance, claim, limits)
        spec = g1_codebook(claim)
        if spec.code_dim == "auto" and spec.codebook != "onehot":
            if p2_max_code_dim(instance, limits) >= 1:
                return
            m_max = 1  # not even m = 1 fits: the checks below name the limit
        d, w, params = geometric_size(instance, m_max)
        require("max_width", max(d, w), limits.max_width, "the G1 model's width")
        require("max_weights", params, limits.max_weights, "the G1 model's parameters")
        require(
            "max_lp_entries",
            p2_entries(instance, m_max),
            limits.max_lp_entries,
            "each P2 program (rows x columns)",
        )

    def solve(
        self, ctx: FeasibilityContext, facts: BijectionFacts, settings: SolverSettings
    ) -> Measurement:
        instance, claim = ctx.instance, ctx.claim
        spec = g1_codebook(claim)
        new_perms = np.stack(
            [
                rng(instance.seed, Stream.TRANSFER, r).permutation(facts.n_entities)
                for r in range(facts.n_relations)
            ]
        )
        new = facts.with_perms(new_perms)
        if spec.code_dim == "auto":
            return self._search(ctx, facts, new, settings)
        m = spec.code_dim
        d, _, _ = geometric_size(instance, m)
        codes = codebook(spec.codebook, facts.n_attributes, m, instance.seed)
        model, layout = construction(spec.name).build(facts, codes)
        n = facts.n_entities
        start = (
            model.W_E.detach().numpy()[:n].copy()
            if claim.start == "current"
            else np.zeros((n, layout.d_model))
        )
        res = reembed(
            model,
            new,
            start,
            claim.min_margin,
            claim.max_rounds,
            settings,
            progress=lambda i, k: ctx.report(i / k, f"round {i}/{k}"),
        )
        status = "feasible" if res.found else "not_found"
        not_found = [s.subject for s in res.subjects if not s.found]
        values = {
            "status": status,
            "margin": res.margin,
            "margin_lower": res.margin,
            "margin_upper": res.margin,
            "accuracy": res.accuracy,
            "max_violation": res.max_violation,
            "code_dim": m,
            "n_facts": new.n_facts,
        }
        evidence: dict[str, Any] = {
            "seed": instance.seed,
            "new_bijections_stream": "TRANSFER",
            "start": claim.start,
            "rounds": res.rounds,
            "solves": res.solves,
            "forward_pass_margin": res.margin,
            "rows_used": res.rows_used,
            "solvers": list(res.solvers),
            "subjects_not_found": not_found[:20],
        }
        message = (
            f"{status}: forward pass recalls {res.accuracy:.4%} of {new.n_facts} new "
            f"facts, margin {res.margin:.6g}, {res.rounds} linearisation round(s)"
        )
        if not res.found:
            message += "; not found in the regions tried (this is not a proof of impossibility)"
        return Measurement(
            method="certificate",
            values=values,
            evidence=evidence,
            symbols={"m": m, "d": d},
            message=message,
        )

    def _search(
        self,
        ctx: FeasibilityContext,
        facts: BijectionFacts,
        new: BijectionFacts,
        settings: SolverSettings,
    ) -> Measurement:
        """``code_dim: auto``: the smallest G1 code width into which P2 stores ``new``."""
        instance, claim = ctx.instance, ctx.claim
        spec = g1_codebook(claim)
        onehot = spec.codebook == "onehot"  # its one width, checked by preflight
        m_max = facts.n_attributes if onehot else p2_max_code_dim(instance, ctx.limits)
        search = min_reembed_dim(
            facts,
            new,
            spec.codebook,
            instance.seed,
            claim.min_margin,
            m_max,
            claim.start,
            claim.max_rounds,
            settings,
            lambda msg: ctx.report(0.5, msg),
            frozen=construction(spec.name),
        )
        evidence: dict[str, Any] = {
            "seed": instance.seed,
            "new_bijections_stream": "TRANSFER",
            "start": claim.start,
            "searched": "code width m of the frozen G1 network, d = R*m + R + m",
            "max_code_dim": m_max,
            "widths_tried": {str(m): a.as_evidence() for m, a in sorted(search.tried.items())},
        }
        values: dict[str, Any] = {"n_facts": new.n_facts}
        if search.m is None or search.at is None or search.at.result is None:
            values.update(status="not_found", min_code_dim=None, min_d_model=None)
            return Measurement(
                method="certificate",
                values=values,
                evidence=evidence,
                status="undecided",
                message=f"not_found: P2 stored the new bijections at no code width up to "
                f"{m_max} (not a proof of impossibility)",
            )
        res, below = search.at.result, search.below
        evidence["neighbours"] = {
            str(search.m): search.at.as_evidence(),
            **({str(below.m): below.as_evidence()} if below is not None else {}),
        }
        below_impossible = below is None or below.status == "impossible"
        evidence["below_certified_impossible"] = below_impossible
        values.update(
            status="feasible",
            margin=res.margin,
            margin_lower=res.margin,
            margin_upper=res.margin,
            accuracy=res.accuracy,
            max_violation=res.max_violation,
            code_dim=search.m,
            min_code_dim=search.m,
            min_d_model=search.at.d_model,
        )
        message = (
            f"feasible at code width {search.m} (d = {search.at.d_model}): forward pass "
            f"recalls {res.accuracy:.4%} of {new.n_facts} new facts, margin "
            f"{res.margin:.6g}"
        )
        if below is not None:
            message += f"; at {below.m} (d = {below.d_model}) " + (
                "impossible, certified by a P1 dual bound <= 0"
                if below_impossible
                else "not found (not a proof of impossibility)"
            )
        return Measurement(
            method="certificate",
            values=values,
            evidence=evidence,
            symbols={"m": search.m, "d": search.at.d_model},
            message=message,
        )


class AssociativeWidth(Program):
    """P3: the narrowest MLP over frozen random embeddings that stores every fact."""

    def preflight(
        self, instance: BijectionInstance, claim: FeasibilityClaim, limits: Limits
    ) -> None:
        n_facts, n_attr = instance.entities * instance.relations, attribute_count(instance)
        require("max_width", claim.embed_dim, limits.max_width, "embed_dim")
        if claim.width == "auto":
            if p3_max_width(instance, claim, limits) < 1:
                require(
                    "max_lp_entries",
                    p3_nonzeros(n_facts, n_attr, claim.embed_dim, 1),
                    limits.max_lp_entries,
                    "the P3 program at width 1 (nonzeros)",
                )
            return
        require("max_width", claim.width, limits.max_width, "width")
        require(
            "max_lp_entries",
            p3_nonzeros(n_facts, n_attr, claim.embed_dim, claim.width),
            limits.max_lp_entries,
            "the P3 program (nonzeros)",
        )

    def solve(
        self, ctx: FeasibilityContext, facts: BijectionFacts, settings: SolverSettings
    ) -> Measurement:
        instance, claim = ctx.instance, ctx.claim
        box = claim.box or 1.0
        values: dict[str, Any] = {"n_facts": facts.n_facts}
        evidence: dict[str, Any] = {
            "seed": instance.seed,
            "embed_dim": claim.embed_dim,
            "box": box,
            "min_margin": claim.min_margin,
        }
        result: AssociativeResult
        if claim.width == "auto":
            w_max = p3_max_width(instance, claim, ctx.limits)
            search = min_width(
                facts,
                claim.embed_dim,
                instance.seed,
                claim.min_margin,
                w_max,
                box,
                settings,
                lambda msg: ctx.report(0.5, msg),
            )
            evidence["widths_tried"] = {str(k): v for k, v in search.tried.items()}
            if search.width is None or search.at is None:
                raise LimitExceeded.search_exhausted(
                    "width auto",
                    ("max_width", "max_lp_entries"),
                    w_max,
                    f"has a certified P3 margin >= {claim.min_margin:g}",
                )
            result = search.at
            values["min_width"] = search.width
            below = search.below
            evidence["neighbours"] = {
                str(search.width): _p3_summary(search.at, claim.min_margin),
                **(
                    {str(search.width - 1): _p3_summary(below, claim.min_margin)}
                    if below is not None
                    else {}
                ),
            }
            below_ok = below is None or below.status(claim.min_margin) == "infeasible"
            evidence["below_certified_infeasible"] = below_ok
        else:
            result = associative_width(
                facts, claim.embed_dim, claim.width, instance.seed, box, settings
            )
            below_ok = True
        status = result.status(claim.min_margin)
        values.update(
            status=status,
            margin=margin_for(claim, result.lower, result.upper),
            margin_lower=result.lower,
            margin_upper=result.upper,
            accuracy=result.accuracy,
            max_violation=result.max_violation,
            width=result.width,
        )
        evidence.update(
            sandwich=[result.lower, result.upper],
            solver=result.solver,
            rows_used=result.rows_used,
            rounds=result.rounds,
        )
        undecided = status == "undecided" or not below_ok
        message = (
            f"{status} at width {result.width}: margin in [{result.lower:.6g}, "
            f"{result.upper:.6g}], forward pass accuracy {result.accuracy:.4%}"
        )
        if not below_ok:
            message += "; the width below is not certified infeasible, so minimality is undecided"
        return Measurement(
            method="certificate",
            values=values,
            evidence=evidence,
            symbols={"w": result.width, "d": claim.embed_dim},
            message=message,
            status="undecided" if undecided else None,
        )


PROGRAMS: dict[str, Program] = {
    "codebook_margin": CodebookMargin(),
    "reembed": Reembed(),
    "associative_width": AssociativeWidth(),
}


@register("feasibility")
class FeasibilityCheck(CheckKind[BijectionInstance, FeasibilityClaim]):
    """P1, P2 and P3 with checked sandwiches."""

    INSTANCE_NOTE = "the convex programs are over single-hop facts, docs/theory.md section 6"

    def preflight(
        self, instance: BijectionInstance, claim: FeasibilityClaim, limits: Limits
    ) -> None:
        n, r = instance.entities, instance.relations
        require("max_entities", n, limits.max_entities, "N")
        require("max_facts", n * r, limits.max_facts, "N*R (facts)")
        PROGRAMS[claim.program].preflight(instance, claim, limits)

    def run(self, ctx: FeasibilityContext) -> Measurement:
        return PROGRAMS[ctx.claim.program].run(ctx)


def _p1_summary(result: CodebookMarginResult | None, min_margin: float) -> dict[str, Any]:
    if result is None:
        return {}
    cert = result.tightest()
    return {
        "status": result.status(min_margin),
        "margin": [result.margin_lower, result.margin_upper],
        "targets_solved": len(result.certificates),
        "certificate": cert.as_evidence(),
    }


def _p3_summary(result: AssociativeResult | None, min_margin: float) -> dict[str, Any]:
    if result is None:
        return {}
    return {
        "status": result.status(min_margin),
        "margin": [result.lower, result.upper],
        "accuracy": result.accuracy,
    }
