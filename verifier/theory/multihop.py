"""LBk evaluated exactly on the seeded instance (docs/theory.md section 5): the tree sum.

For each subject x, reveal its chain tree level by level; at the last level relation r maps the
depth-(k-1) points ``S_r`` on which ``pi_r`` is not yet revealed, uniformly and injectively,
into the ``N - |D_r|`` values not yet used (``D_r``: the points where ``pi_r`` was revealed at
shallower levels), worth ``log2((N - |D_r|)! / (N - |D_r| - |S_r|)!)`` bits. Summed over r this
is ``H(T_x | shallower levels) <= H(T_x)``, for the realised shallower tree of x. The closed
form ``R**k log2 N`` is theorem LBk's ``bits`` (:mod:`verifier.theory.builtin`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import gammaln

if TYPE_CHECKING:  # the registry is served by the API process, which never imports torch
    from verifier.facts.chains import ChainFacts


@dataclass(frozen=True)
class LBkValue:
    """LBk evaluated on the seeded chain trees.

    Attributes:
        min_bits: min over x of ``H(T_x | shallower levels)``.
        avg_bits: its average over x.
        argmin: a subject attaining the minimum.
        approx_bits: the closed form ``|C| log2 N``.
    """

    min_bits: float
    avg_bits: float
    argmin: int
    approx_bits: float


def _distinct_per_row(a: np.ndarray) -> np.ndarray:
    """Number of distinct values in each row of a 2-d int array (0 for empty rows)."""
    if a.shape[1] == 0:
        return np.zeros(a.shape[0], dtype=np.int64)
    s = np.sort(a, axis=1)
    return np.asarray(1 + (np.diff(s, axis=1) != 0).sum(axis=1))


def _log2_falling(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log2(a! / (a - b)!)`` elementwise, via lgamma."""
    return np.asarray(gammaln(a + 1.0) - gammaln(a - b + 1.0)) / math.log(2.0)


def lbk_bits(facts: ChainFacts, chunk: int = 65_536) -> LBkValue:
    """LBk on the seeded instance's chain trees (the chains of ``facts``), min and mean over x.

    Work and memory are ``O(N * nodes)`` in chunks of ``chunk`` tree entries, where ``nodes``
    is the number of prefixes of the chains.
    """
    n, k = facts.n_entities, facts.hops
    chains = facts.all_chains()  # (|C|, k)
    # prefixes of length l (0..k-1) as sorted unique tuples; points are their values at x
    prefixes = [sorted({tuple(c[:length]) for c in chains.tolist()}) for length in range(k)]
    # for each relation r: shallower edges (prefix of length < k-1 followed by r) and last-level
    # edges (prefix of length k-1 followed by r)
    shallow_sets: list[set[tuple[int, ...]]] = [set() for _ in range(facts.n_relations)]
    last_sets: list[set[tuple[int, ...]]] = [set() for _ in range(facts.n_relations)]
    for c in chains.tolist():
        for length in range(k):
            (last_sets if length == k - 1 else shallow_sets)[c[length]].add(tuple(c[:length]))
    shallow, last = [sorted(s) for s in shallow_sets], [sorted(s) for s in last_sets]
    nodes = sum(len(p) for p in prefixes)
    step = max(1, chunk // max(1, nodes))
    bits_all = np.zeros(n)
    for start in range(0, n, step):
        xs = np.arange(start, min(n, start + step), dtype=np.int64)
        values: dict[tuple[int, ...], np.ndarray] = {(): xs}
        for length in range(1, k):
            for p in prefixes[length]:
                values[p] = facts.perms[p[-1], values[p[:-1]]]
        bits = np.zeros(len(xs))
        for r in range(facts.n_relations):
            if not last[r]:
                continue
            dom = np.stack([values[p] for p in shallow[r]], 1) if shallow[r] else xs[:, None][:, :0]
            new = np.stack([values[p] for p in last[r]], 1)
            size_dom = _distinct_per_row(dom)
            size_new = _distinct_per_row(np.concatenate([dom, new], axis=1)) - size_dom
            bits += _log2_falling((n - size_dom).astype(np.float64), size_new.astype(np.float64))
        bits_all[xs] = bits
    argmin = int(bits_all.argmin())
    return LBkValue(
        min_bits=float(bits_all[argmin]),
        avg_bits=float(bits_all.mean()),
        argmin=argmin,
        approx_bits=facts.n_chains * math.log2(n),
    )
