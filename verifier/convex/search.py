"""Minimal dimension and width (THEORY.md section 6), reported with both neighbours.

- ``min_code_dim`` (P1): scans m = 1, 2, ... upwards. Codes of width m are normalised per width,
  so P1 feasibility need not be monotone in m; the scan therefore certifies *every* smaller m
  infeasible (each by one target's dual bound, found most-crowded-first, usually in one solve)
  and the answer feasible over all targets.
- ``min_width`` (P3): feasibility is monotone in w (nested features), so doubling then bisection
  is sound; the answer w is certified feasible and w - 1 certified infeasible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from verifier.constructions.codebooks import CodebookKind, codebook
from verifier.convex.associative import AssociativeResult, associative_width
from verifier.convex.codebook_margin import CodebookMarginResult, codebook_margin
from verifier.convex.solver import SolverSettings
from verifier.instances import BijectionFacts

ProgressFn = Callable[[str], None]


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
    for m in range(1, max_m + 1):
        if progress is not None:
            progress(f"code_dim {m}")
        codes = codebook(kind, n_codes, m, seed)
        result = codebook_margin(codes, box, settings, stop_below=min_margin)
        status = result.status(min_margin)
        if status == "feasible":
            return CodeDimSearch(m, result, below, undecided, m)
        if status == "undecided":
            undecided.append(m)
        below = result
    return CodeDimSearch(None, None, below, undecided, max_m)


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
) -> WidthSearch:
    """Smallest w with a certified P3 margin ``>= min_margin`` (doubling, then bisection).

    An undecided width counts as not certified feasible; if the neighbour below the answer is
    not certified infeasible, ``below`` says so through its status.

    Raises:
        SolverError: a solve did not end ``optimal``.
    """
    results: dict[int, AssociativeResult] = {}

    def at(w: int) -> AssociativeResult:
        if w not in results:
            if progress is not None:
                progress(f"width {w}")
            results[w] = associative_width(facts, embed_dim, w, seed, box, settings)
        return results[w]

    def feasible(w: int) -> bool:
        return at(w).status(min_margin) == "feasible"

    lo, hi = 0, 1  # lo: largest width known not feasible (0: none), hi: candidate
    while not feasible(hi):
        lo = hi
        if hi >= max_width:
            return WidthSearch(None, None, at(hi), _tried(results, min_margin))
        hi = min(2 * hi, max_width)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if feasible(mid):
            hi = mid
        else:
            lo = mid
    below = at(hi - 1) if hi > 1 else None
    return WidthSearch(hi, at(hi), below, _tried(results, min_margin))


def _tried(results: dict[int, AssociativeResult], min_margin: float) -> dict[int, dict[str, Any]]:
    return {
        w: {"status": r.status(min_margin), "margin": [r.lower, r.upper]}
        for w, r in sorted(results.items())
    }
