"""Attribute codebooks (docs/theory.md section 3): unit vectors ``a_0..a_{n-1}`` in ``R^m``.

Codes are nested: the code of width m is the first m columns of one seeded sequence of
columns, drawn in blocks of ``_BLOCK`` from ``rng(seed, CODEBOOK, block)``, so the code at a
given m never depends on how far a search looked. Coherence is the signed
``mu = max_{i != j} <a_i, a_j>``, which is what the margin ``1 - mu`` needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from verifier.errors import LimitExceeded
from verifier.seeds import Stream, rng

CodebookKind = Literal["rademacher", "gaussian", "onehot"]
_BLOCK = 64
_GRAM_ROWS = 2048  # row block of the Gram matrix; bounds memory at 2048 x n floats


def raw_columns(kind: CodebookKind, n: int, m: int, seed: int) -> np.ndarray:
    """The first m unnormalised columns, ``(n, m)`` float64 (signs for rademacher)."""
    blocks = []
    for b in range(math.ceil(m / _BLOCK)):
        g = rng(seed, Stream.CODEBOOK, b)
        if kind == "rademacher":
            blocks.append(g.integers(0, 2, size=(n, _BLOCK)).astype(np.float64) * 2 - 1)
        else:
            blocks.append(g.standard_normal(size=(n, _BLOCK)))
    return np.concatenate(blocks, axis=1)[:, :m] if blocks else np.zeros((n, 0))


def codebook(kind: CodebookKind, n: int, m: int, seed: int) -> np.ndarray:
    """Unit-norm codes ``(n, m)`` float64. ``onehot`` requires ``m == n``."""
    if kind == "onehot":
        if m != n:
            raise ValueError(f"onehot codebook: expected m == n == {n}, got m = {m}")
        return np.eye(n)
    cols = raw_columns(kind, n, m, seed)
    norms = np.linalg.norm(cols, axis=1, keepdims=True)
    return cols / np.where(norms == 0, 1.0, norms)


def coherence(codes: np.ndarray) -> float:
    """Signed coherence ``max_{i != j} <a_i, a_j>`` of the rows, blocked over rows.

    For unit rows this is ``mu``; for sign rows it is the largest integer inner product.
    """
    n = codes.shape[0]
    if n < 2:
        return -1.0
    best = -math.inf
    for start in range(0, n, _GRAM_ROWS):
        gram = codes[start : start + _GRAM_ROWS] @ codes.T  # (block, n)
        rows = np.arange(gram.shape[0])
        gram[rows, rows + start] = -math.inf
        best = max(best, float(gram.max()))
    return best


@dataclass(frozen=True)
class CodeSearch:
    """The result of ``code_dim: auto``."""

    m: int  # smallest code width reaching the coherence target
    coherence: float  # its coherence
    evaluated: int  # how many widths had their coherence computed


def smallest_code_dim(
    kind: CodebookKind, n: int, max_coherence: float, seed: int, max_m: int
) -> CodeSearch:
    """The smallest m with ``coherence(codebook(kind, n, m, seed)) <= max_coherence``.

    Exact for rademacher: with integer inner products ``P_ij(m)`` of the sign columns and
    ``f(m) = max P(m) - max_coherence * m``, each column changes ``P`` by at most 1, so
    ``f(m+t) >= f(m) - t (1 + max_coherence)``; a width with ``f(m) > 0`` therefore rules out
    the next ``ceil(f(m) / (1 + max_coherence)) - 1`` widths, and the scan skips them. Gaussian
    codes are scanned width by width from the Welch bound ``sqrt((n-m)/(m(n-1)))``.

    Raises:
        LimitExceeded: no width up to ``max_m`` reaches the target.
    """
    if kind == "onehot":
        return CodeSearch(m=n, coherence=0.0, evaluated=1)
    m, evaluated = 1, 0
    if kind == "gaussian":
        while m < n and math.sqrt((n - m) / (m * (n - 1))) > max_coherence:
            m += 1
    signs = raw_columns(kind, n, max_m, seed) if kind == "rademacher" else None
    while m <= max_m:
        evaluated += 1
        if signs is not None:
            # float32 is exact here: inner products of sign vectors are integers below 2**24
            mu_int = round(coherence(np.ascontiguousarray(signs[:, :m], dtype=np.float32)))
            excess = mu_int - max_coherence * m
            if excess <= 1e-9:
                return CodeSearch(m=m, coherence=mu_int / m, evaluated=evaluated)
            m += max(1, math.ceil(excess / (1 + max_coherence) - 1e-12))
            continue
        mu = coherence(codebook(kind, n, m, seed))
        if mu <= max_coherence:
            return CodeSearch(m=m, coherence=mu, evaluated=evaluated)
        m += 1
    raise LimitExceeded.search_exhausted(
        "code_dim auto",
        ("max_code_dim", "max_width"),
        max_m,
        f"reaches {kind} coherence <= {max_coherence:g} for {n} attributes",
    )
