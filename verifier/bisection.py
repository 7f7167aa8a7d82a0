"""Where a monotone predicate over the integers changes: doubling (or galloping), then bisection.

``holds`` is monotone on ``[start, maximum]``: for :func:`find_minimum` it fails below some
value and holds from there on (``F ... F T ... T``), for :func:`find_maximum` the mirror image
(``T ... T F ... F``). An outward phase brackets the change between a failing and a holding
value, bisection closes the bracket to neighbours, and both neighbours are evaluated. Each
value is evaluated at most once, and every evaluation is recorded in order, so a caller can
report them. The searches of the engine (``minimize:`` / ``maximize:``), of the convex
programs (P2's code width, P3's width) and of the multi-hop budget all stand on these two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Predicate = Callable[[int], bool]


@dataclass
class SearchResult:
    """Where ``holds`` changes, with every value evaluated.

    For :func:`find_minimum`, ``minimum`` is the smallest value found to hold and ``below`` its
    failing neighbour ``minimum - 1``; for :func:`find_maximum`, ``minimum`` holds the largest
    value found to hold and ``below`` the failing ``minimum + 1``.
    """

    minimum: int | None  # None: fails up to max (minimize) or at start (maximize)
    below: int | None  # the failing neighbour; None at start (minimize) / max (maximize)
    holds: dict[int, bool] = field(default_factory=dict)  # every value run, in order


def _memo(holds: Predicate, seen: dict[int, bool]) -> Predicate:
    def test(v: int) -> bool:
        if v not in seen:
            seen[v] = holds(v)
        return seen[v]

    return test


def _double(test: Predicate, start: int, maximum: int) -> tuple[int | None, int | None]:
    """``start, 2 start, 4 start, ...`` (capped at ``maximum``) until one holds:
    ``(last failing or None, first holding or None)``."""
    failing: int | None = None
    v = start
    while not test(v):
        failing = v
        if v >= maximum:
            return failing, None
        v = min(2 * v, maximum)
    return failing, v


def _gallop(test: Predicate, start: int, maximum: int, guess: int) -> tuple[int | None, int | None]:
    """From ``guess`` (clipped into the range) outward by steps 1, 2, 4, ...: down while it
    holds (``g - 1, g - 3, g - 7, ...``, floored at ``start``), else up until it holds
    (``g + 1, g + 3, ...``, capped at ``maximum``): ``(failing or None, holding or None)``."""
    g = min(max(start, guess), maximum)
    step = 1
    if test(g):
        passing = g
        while passing > start:
            probe = max(passing - step, start)
            if not test(probe):
                return probe, passing
            passing, step = probe, 2 * step
        return None, passing
    failing = g
    while failing < maximum:
        probe = min(failing + step, maximum)
        if test(probe):
            return failing, probe
        failing, step = probe, 2 * step
    return failing, None


def find_minimum(
    holds: Predicate, start: int, maximum: int, guess: int | None = None
) -> SearchResult:
    """The smallest ``v`` in ``[start, maximum]`` with ``holds(v)`` (``F ... F T ... T``).

    Without ``guess``: doubling from ``start`` (capped at ``maximum``) until ``holds``, then
    bisection. With ``guess``: galloping from it in the direction the outcome there points to,
    then bisection; the guess changes which values are evaluated, never the answer.

    Returns:
        ``minimum`` holds and ``below = minimum - 1`` was evaluated and failed, or
        ``minimum == start`` and ``below`` is None; ``minimum`` is None when nothing up to
        ``maximum`` holds (or the range is empty, which evaluates nothing).
    """
    seen: dict[int, bool] = {}
    if start > maximum:
        return SearchResult(None, None, seen)
    test = _memo(holds, seen)
    failing, passing = (
        _double(test, start, maximum) if guess is None else _gallop(test, start, maximum, guess)
    )
    if passing is None:
        return SearchResult(None, None, seen)
    if failing is None:
        return SearchResult(passing, None, seen)
    while passing - failing > 1:
        mid = (passing + failing) // 2
        if test(mid):
            passing = mid
        else:
            failing = mid
    return SearchResult(passing, failing, seen)


def find_maximum(holds: Predicate, start: int, maximum: int) -> SearchResult:
    """The largest ``v`` in ``[start, maximum]`` with ``holds(v)`` (``T ... T F ... F``).

    Doubling from ``start`` while ``holds`` (capped at ``maximum``), then bisection: the
    search for the smallest value that fails.

    Returns:
        ``minimum`` (the largest holding value) with ``below = minimum + 1`` evaluated and
        failing, or ``minimum == maximum`` and ``below`` None; ``minimum`` is None when
        ``start`` already fails (or the range is empty, which evaluates nothing).
    """
    seen: dict[int, bool] = {}
    test = _memo(holds, seen)
    first_failing = find_minimum(lambda v: not test(v), start, maximum)
    if first_failing.minimum is None:  # holds at every value tried: the last is maximum
        return SearchResult(max(seen) if seen else None, None, seen)
    if first_failing.below is None:  # fails at start
        return SearchResult(None, None, seen)
    return SearchResult(first_failing.below, first_failing.minimum, seen)
