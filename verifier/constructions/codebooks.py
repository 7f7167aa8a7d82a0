"""Attribute codebooks (docs/theory.md section 3): unit vectors ``a_0..a_{n-1}`` in ``R^m``.

Codes are nested: the code of width m is the first m columns of one seeded sequence of
columns, drawn in blocks of ``_BLOCK`` from ``rng(seed, CODEBOOK, block)``, so the code at a
given m never depends on how far a search looked. Coherence is the signed
``mu = max_{i != j} <a_i, a_j>``, which is what the margin ``1 - mu`` needs.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from verifier.device import resolve_device
from verifier.errors import LimitExceeded
from verifier.seeds import Stream, rng

CodebookKind = Literal["rademacher", "gaussian", "onehot"]
_BLOCK = 64
_GRAM_ROWS = 2048  # row block of the Gram matrix; bounds memory at 2048 x n floats
_SCAN_FLOATS = 1 << 24  # entries of one row block of the code search's scan (64 MB of float32)
_WITNESSES = 256  # pairs kept from a failing scan, to rule out other widths


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
    evaluated: int  # how many widths had their coherence computed (or scanned for a violation)
    # rademacher: each code's (max, min) integer inner product with the others at width m
    sign_extremes: tuple[np.ndarray, np.ndarray] | None = None


def smallest_code_dim(
    kind: CodebookKind, n: int, max_coherence: float, seed: int, max_m: int
) -> CodeSearch:
    """The smallest m with ``coherence(codebook(kind, n, m, seed)) <= max_coherence``.

    Rademacher codes go to :func:`smallest_sign_code_dim`. Gaussian codes are scanned width
    by width from the Welch bound ``sqrt((n-m)/(m(n-1)))``.

    Raises:
        LimitExceeded: no width up to ``max_m`` reaches the target.
    """
    if kind == "onehot":
        return CodeSearch(m=n, coherence=0.0, evaluated=1)
    if kind == "rademacher":
        return smallest_sign_code_dim(n, max_coherence, seed, max_m)
    m, evaluated = 1, 0
    while m < n and math.sqrt((n - m) / (m * (n - 1))) > max_coherence:
        m += 1
    while m <= max_m:
        evaluated += 1
        mu = coherence(codebook(kind, n, m, seed))
        if mu <= max_coherence:
            return CodeSearch(m=m, coherence=mu, evaluated=evaluated)
        m += 1
    raise _exhausted(kind, n, max_coherence, max_m)


def _exhausted(kind: str, n: int, max_coherence: float, max_m: int) -> LimitExceeded:
    return LimitExceeded.search_exhausted(
        "code_dim auto",
        ("max_code_dim", "max_width"),
        max_m,
        f"reaches {kind} coherence <= {max_coherence:g} for {n} attributes",
    )


def violation_threshold(max_coherence: float, m: int) -> int:
    """The smallest integer P with ``P - max_coherence * m > 1e-9`` (in float64): sign inner
    products at width m at or above it break the target, below it they meet it."""
    p = math.floor(max_coherence * m) - 1
    while not p - max_coherence * m > 1e-9:
        p += 1
    return p


class _SignColumns:
    """The nested rademacher columns as float32 on a device, drawn block by block on demand."""

    def __init__(self, n: int, seed: int, device: torch.device) -> None:
        self.n, self.seed, self.device = n, seed, device
        self.mat = torch.empty(n, 0, dtype=torch.float32, device=device)

    def upto(self, m: int) -> torch.Tensor:
        """``(n, m')`` float32 signs, ``m' >= m`` a multiple of the block."""
        blocks = [self.mat]
        for b in range(self.mat.shape[1] // _BLOCK, math.ceil(m / _BLOCK)):
            g = rng(self.seed, Stream.CODEBOOK, b)
            signs = g.integers(0, 2, size=(self.n, _BLOCK)).astype(np.float32) * 2 - 1
            blocks.append(torch.from_numpy(signs).to(self.device))
        if len(blocks) > 1:
            self.mat = torch.cat(blocks, dim=1)
        return self.mat


def smallest_sign_code_dim(
    n: int, max_coherence: float, seed: int, max_m: int, device: torch.device | None = None
) -> CodeSearch:
    """The smallest m whose rademacher code meets ``max P_ij(m) - max_coherence m <= 1e-9``.

    ``P_ij(m)``, the inner product of sign rows i and j over the first m columns, is an integer
    that float32 holds exactly (m < 2^24). Widths are tried in increasing order. Each failing
    width leaves witnesses, pairs (i, j) with ``P_ij`` over the threshold, whose whole
    trajectory ``P_ij(1..m)`` (a cumulative sum) proves every other width where they exceed it
    failing without a scan. A width no witness rules out is scanned over every pair in
    row blocks: the first block with a violation adds its worst pairs as witnesses and ends the
    scan; a scan with none is the answer, and gives each row's extreme inner products with
    the others (``sign_extremes``, what a recall certificate needs). The result equals the
    width-by-width scan's.

    Raises:
        LimitExceeded: no width up to ``max_m`` reaches the target.
    """
    if n < 2:
        return CodeSearch(m=1, coherence=-1.0, evaluated=1)
    dev = resolve_device() if device is None else device
    columns = _SignColumns(n, seed, dev)
    rows = min(n, max(64, _SCAN_FLOATS // n))
    wit = np.zeros((0, 2), dtype=np.int64)
    traj = np.zeros((0, 0))  # (witnesses, width) P_ij(1..width)
    m, evaluated = 1, 0
    while m <= max_m:
        mat = columns.upto(m)
        width = mat.shape[1]
        if traj.shape[1] != width or len(traj) != len(wit):
            prods = mat[wit[:, 0]] * mat[wit[:, 1]]  # (witnesses, width)
            traj = prods.cumsum(dim=1).double().cpu().numpy()
        if len(wit):
            widths = np.arange(1, width + 1)
            ruled_out = traj.max(axis=0) - max_coherence * widths > 1e-9
            while m <= min(width, max_m) and ruled_out[m - 1]:
                m += 1
            if m > width:
                continue
            if m > max_m:
                break
        evaluated += 1
        found = _scan(mat[:, :m].contiguous(), violation_threshold(max_coherence, m), rows)
        if isinstance(found, tuple):
            mu = int(found[0].max())
            return CodeSearch(m=m, coherence=mu / m, evaluated=evaluated, sign_extremes=found)
        wit = np.concatenate([wit, found])
    raise _exhausted("rademacher", n, max_coherence, max_m)


def _scan(
    signs: torch.Tensor, threshold: int, rows: int
) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """Scan the pairs of ``signs`` (``(n, m)`` float32) in row blocks: rows ``[start, stop)``
    against rows ``[start, n)``, so each pair is seen at least once (pairs inside a block
    twice, which changes no extreme); only the diagonal ``P_ii = m`` is masked. On the CPU
    blocks run side by side, as many as torch had threads, one thread each (an op on one
    block is too small to split across threads without waiting on a busy machine); results
    are taken in block order, so the first violating block is the same as in a serial scan.

    Returns:
        When no pair reaches ``threshold``: every row's ``(max_{j != i} P_ij, min_{j != i}
        P_ij)``, int64 ``(n,)`` each. Else up to :data:`_WITNESSES` pairs ``(k, 2)`` of the
        first block that has one (each row's largest, the largest rows first).
    """
    n = signs.shape[0]
    top = torch.full((n,), -math.inf, device=signs.device)
    bottom = torch.full((n,), math.inf, device=signs.device)
    local = threading.local()

    @torch.inference_mode()
    def block_of(start: int) -> _Block | np.ndarray:
        stop = min(n, start + rows)
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = torch.empty(rows * n, dtype=signs.dtype, device=signs.device)
        block = buf[: (stop - start) * (n - start)].view(stop - start, n - start)
        torch.mm(signs[start:stop], signs[start:].T, out=block)  # (rows, n - start)
        diag = block[:, : stop - start].diagonal()
        diag.fill_(-math.inf)
        row_max = block.amax(dim=1)  # values only: far cheaper than max() with indices
        if float(row_max.max()) >= threshold:  # the rows' worst pairs, worst rows first
            row_max, row_arg = block.max(dim=1)
            count = min(_WITNESSES, int((row_max >= threshold).sum()))
            i = row_max.topk(count).indices
            j = row_arg[i] + start
            return torch.stack([i + start, j], dim=1).cpu().numpy().astype(np.int64)
        col_max = block.amax(dim=0)
        diag.fill_(math.inf)
        return _Block(start, stop, row_max, col_max, block.amin(dim=1), block.amin(dim=0))

    starts = range(0, n - 1, rows)
    serial = signs.device.type != "cpu" or len(starts) < 2
    with _one_thread_each(serial) as workers, ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[_Block | np.ndarray]] = deque()
        for start in [*starts, None]:
            if start is not None:
                pending.append(pool.submit(block_of, start))
            while pending and (start is None or len(pending) > 2 * workers):
                found = pending.popleft().result()
                if isinstance(found, np.ndarray):
                    for rest in pending:
                        rest.cancel()
                    return found
                # P is symmetric: rows give rows start..stop, columns rows start..n
                b0, b1 = found.start, found.stop
                top[b0:b1] = torch.maximum(top[b0:b1], found.row_max)
                top[b0:] = torch.maximum(top[b0:], found.col_max)
                bottom[b0:b1] = torch.minimum(bottom[b0:b1], found.row_min)
                bottom[b0:] = torch.minimum(bottom[b0:], found.col_min)
    return top.cpu().numpy().astype(np.int64), bottom.cpu().numpy().astype(np.int64)


@dataclass(frozen=True)
class _Block:
    """One scanned row block ``[start, stop)`` without a violation: its rows' and columns'
    extremes (columns are rows ``start..n``)."""

    start: int
    stop: int
    row_max: torch.Tensor
    col_max: torch.Tensor
    row_min: torch.Tensor
    col_min: torch.Tensor


@contextmanager
def _one_thread_each(serial: bool) -> Iterator[int]:
    """Yields how many blocks to run side by side: torch's thread count, each block on one
    intra-op thread (restored after); with ``serial`` one block at a time on every thread."""
    before = torch.get_num_threads()
    if serial:
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield max(1, before)
    finally:
        torch.set_num_threads(before)
