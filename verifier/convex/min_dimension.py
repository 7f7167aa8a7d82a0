"""Minimal dimension and width (docs/theory.md section 6), reported with both neighbours.

A onehot codebook has one width, ``m = n`` (:func:`code_widths`): there the searches try
only it, and a neighbour below does not exist.

- ``min_code_dim`` (P1): scans m = 1, 2, ... upwards. Codes of width m are normalised per width,
  so P1 feasibility need not be monotone in m; the scan therefore certifies *every* smaller m
  infeasible (each by one target's dual bound, found most-crowded-first, usually in one solve)
  and the answer feasible over all targets.
- ``min_width`` (P3): feasibility is monotone in w (nested features), so galloping from a guess
  then bisection is sound; the answer w is certified feasible and w - 1 certified infeasible.
- ``min_reembed_dim`` (P2): over the code width m of the frozen G1 network (built for the old
  facts at width m, so ``d = R m + R + m``) into which fresh bijections are re-embedded.
  Doubling then bisection on "P2 finds embeddings recalling every new fact with the margin".
  The answer m is confirmed by the forward pass. A width below it is either *impossible*,
  certified without the network's internals: G1's logits are ``<a_j, z>`` with z the answer
  slot of h2, so a P1 dual bound ``<= 0`` for some target t (P1 is positively homogeneous)
  means no embedding whatsoever makes t beat its rivals; or only *not found* (no proof).
  P2 is not known to be monotone in m, so the answer is the smallest m found by bisection,
  with both neighbours run and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verifier.bisection import find_minimum
from verifier.constructions.base import Construction
from verifier.constructions.codebooks import CodebookKind, codebook
from verifier.constructions.geometric import GEOMETRIC
from verifier.convex.associative import AssociativeResult, associative_width, width_guess
from verifier.convex.codebook_margin import (
    CodebookMarginResult,
    TargetCertificate,
    codebook_margin,
    crowding_order,
)
from verifier.convex.reembed import ReembedResult, reembed
from verifier.convex.solver import SolverSettings
from verifier.facts.bijections import BijectionFacts

ProgressFn = Callable[[str], None]


def code_widths(kind: CodebookKind, n_codes: int, max_m: int) -> range:
    """The code widths ``kind`` has, up to ``max_m``: every ``m >= 1``, but onehot only one,
    ``m = n_codes`` (:func:`~verifier.constructions.codebooks.codebook`)."""
    if kind == "onehot":
        return range(n_codes, min(n_codes, max_m) + 1)
    return range(1, max_m + 1)


@dataclass
class CodeDimSearch:
    """The smallest certified-feasible code width and its neighbour below.

    Attributes:
        m: the answer, or None when no width up to the limit was certified feasible.
        at: P1 at m (complete over every target).
        below: P1 at m - 1 (stopped at its certified failure), None when m = 1.
        undecided: widths below m whose sandwich straddled ``min_margin``.
        scanned: widths tried.
    """

    m: int | None
    at: CodebookMarginResult | None
    below: CodebookMarginResult | None
    undecided: list[int] = field(default_factory=list)
    scanned: int = 0


def min_code_dim(
    kind: CodebookKind,
    n_codes: int,
    seed: int,
    min_margin: float,
    max_m: int,
    box: float | None = None,
    settings: SolverSettings | None = None,
    progress: ProgressFn | None = None,
) -> CodeDimSearch:
    """Smallest m whose seeded codebook has a certified P1 margin ``>= min_margin``.

    Raises:
        SolverError: a solve did not end ``optimal``.
    """
    below: CodebookMarginResult | None = None
    undecided: list[int] = []
    widths = code_widths(kind, n_codes, max_m)
    for m in widths:
        if progress is not None:
            progress(f"code_dim {m}")
        codes = codebook(kind, n_codes, m, seed)
        result = codebook_margin(codes, box, settings, stop_below=min_margin)
        status = result.status(min_margin)
        if status == "feasible":
            return CodeDimSearch(m, result, below, undecided, widths.index(m) + 1)
        if status == "undecided":
            undecided.append(m)
        below = result
    return CodeDimSearch(None, None, below, undecided, len(widths))


@dataclass
class WidthSearch:
    """The smallest certified-feasible width of P3 and its neighbour below.

    Attributes:
        width: the answer, or None when ``max_width`` is not certified feasible.
        at: P3 at the answer.
        below: P3 at ``width - 1`` (None when the answer is 1).
        tried: every width solved, with its status and sandwich.
    """

    width: int | None
    at: AssociativeResult | None
    below: AssociativeResult | None
    tried: dict[int, dict[str, Any]] = field(default_factory=dict)


def min_width(
    facts: BijectionFacts,
    embed_dim: int,
    seed: int,
    min_margin: float,
    max_width: int,
    box: float = 1.0,
    settings: SolverSettings | None = None,
    progress: ProgressFn | None = None,
    guess: int | None = None,
) -> WidthSearch:
    """Smallest w with a certified P3 margin ``>= min_margin`` (galloping, then bisection).

    Galloping from ``guess`` (default :func:`width_guess`) probes ``g``, then ``g -+ 1,
    g -+ 3, g -+ 7, ...`` until the status flips, then bisects the bracket
    (:func:`~verifier.bisection.find_minimum`). The guess only changes how many
    widths are solved, never the answer: monotonicity makes any bracket
    ``(not feasible, certified feasible)`` hold the minimum. An undecided width counts as not
    certified feasible; if the neighbour below the answer is not certified infeasible,
    ``below`` says so through its status.

    Raises:
        SolverError: a solve did not end ``optimal``.
    """
    results: dict[int, AssociativeResult] = {}

    def at(w: int) -> AssociativeResult:
        if w not in results:
            if progress is not None:
                progress(f"width {w}")
            results[w] = associative_width(
                facts, embed_dim, w, seed, box, settings, decide_at=min_margin
            )
        return results[w]

    def feasible(w: int) -> bool:
        return at(w).status(min_margin) == "feasible"

    g = guess if guess is not None else width_guess(facts, embed_dim)
    found = find_minimum(feasible, 1, max_width, guess=g)
    tried = _tried(results, min_margin)
    if found.minimum is None:
        return WidthSearch(None, None, results.get(max_width), tried)
    below = at(found.below) if found.below is not None else None
    return WidthSearch(found.minimum, at(found.minimum), below, tried)


def _tried(results: dict[int, AssociativeResult], min_margin: float) -> dict[int, dict[str, Any]]:
    return {
        w: {"status": r.status(min_margin), "margin": [r.lower, r.upper]}
        for w, r in sorted(results.items())
    }


IMPOSSIBLE_TARGETS = 4  # most crowded targets whose P1 dual bound is checked for <= 0


@dataclass
class ReembedAt:
    """P2 at one code width m of the G1 network.

    Attributes:
        m: code width; ``d_model = R m + R + m``.
        d_model: the network's residual width.
        status: ``feasible`` (the forward pass recalls every new fact with the margin),
            ``impossible`` (a P1 dual certificate: no embedding recalls some fact) or
            ``not_found`` (P2 found none in the regions tried; not a proof).
        result: the P2 run (None when ``impossible`` made it unnecessary).
        certificate: the P1 certificate behind ``impossible``.
    """

    m: int
    d_model: int
    status: str
    result: ReembedResult | None = None
    certificate: TargetCertificate | None = None

    def as_evidence(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out: dict[str, Any] = {"status": self.status, "d_model": self.d_model}
        if self.result is not None:
            out.update(
                accuracy=self.result.accuracy,
                margin=self.result.margin,
                rounds=self.result.rounds,
                solves=self.result.solves,
            )
        if self.certificate is not None:
            out["p1_certificate"] = self.certificate.as_evidence()
        return out


@dataclass
class ReembedDimSearch:
    """The smallest code width at which P2 stores the new bijections, and its neighbour below.

    Attributes:
        m: the answer, or None when P2 found nothing up to ``max_m``.
        at: P2 at m.
        below: m - 1 (None when m = 1).
        tried: every width run.
    """

    m: int | None
    at: ReembedAt | None
    below: ReembedAt | None
    tried: dict[int, ReembedAt] = field(default_factory=dict)


def p2_impossible(
    codes: np.ndarray, settings: SolverSettings | None = None, k: int = IMPOSSIBLE_TARGETS
) -> TargetCertificate | None:
    """A P1 certificate that some attribute can never win in G1 with these codes, or None.

    P1 over the ``k`` most crowded targets; a dual bound ``<= 0`` for target t holds for every
    answer-slot vector z (positive homogeneity), so ``logit_t <= max_j logit_j`` always.

    Raises:
        SolverError: a solve did not end ``optimal``.
    """
    order = crowding_order(np.asarray(codes, dtype=np.float64))[:k]
    result = codebook_margin(codes, settings=settings, targets=[int(t) for t in order])
    cert = result.tightest()
    return cert if cert.upper <= 0 else None


def min_reembed_dim(
    facts: BijectionFacts,
    new_facts: BijectionFacts,
    kind: CodebookKind,
    seed: int,
    min_margin: float,
    max_m: int,
    start: str = "current",
    max_rounds: int = 4,
    settings: SolverSettings | None = None,
    progress: ProgressFn | None = None,
    frozen: Construction[BijectionFacts, Any] = GEOMETRIC,
) -> ReembedDimSearch:
    """Smallest m at which P2 stores ``new_facts`` in G1 (built for ``facts`` at width m).

    Args:
        facts: the facts the frozen network was built for.
        new_facts: the fresh bijections to store by re-embedding.
        kind, seed: the seeded codebook of each width.
        min_margin: the margin P2 asks for and the forward pass must reach.
        max_m: the widest m tried.
        start: ``current`` (the network's own subject rows) or ``zero``.
        max_rounds: P2 linearisations per subject.
        settings: solver order and time limit.
        progress: called before each width.
        frozen: the construction whose subject rows P2 re-solves (G1: its selector is what P2's
            rows are derived from).

    Raises:
        SolverError: a solve did not end ``optimal``.
    """
    tried: dict[int, ReembedAt] = {}
    n = facts.n_entities

    def at(m: int) -> ReembedAt:
        if m not in tried:
            if progress is not None:
                progress(f"code_dim {m}")
            codes = codebook(kind, facts.n_attributes, m, seed)
            model, layout = frozen.build(facts, codes)
            cert = p2_impossible(codes, settings)
            if cert is not None:
                tried[m] = ReembedAt(m, layout.d_model, "impossible", certificate=cert)
            else:
                rows = (
                    model.W_E.detach().numpy()[:n].copy()
                    if start == "current"
                    else np.zeros((n, layout.d_model))
                )
                res = reembed(model, new_facts, rows, min_margin, max_rounds, settings)
                ok = res.found and res.margin >= min_margin * (1 - 1e-9)
                tried[m] = ReembedAt(m, layout.d_model, "feasible" if ok else "not_found", res)
        return tried[m]

    def feasible(m: int) -> bool:
        return at(m).status == "feasible"

    widths = code_widths(kind, facts.n_attributes, max_m)
    found = find_minimum(feasible, widths.start, widths.stop - 1)
    if found.minimum is None:
        return ReembedDimSearch(None, None, tried.get(widths.stop - 1), tried)
    below = at(found.below) if found.below is not None else None
    return ReembedDimSearch(found.minimum, at(found.minimum), below, tried)
