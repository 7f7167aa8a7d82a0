"""Certified recall: exact accuracy without the N-wide unembedding for most facts.

When the unembedding is a codebook read from a few residual blocks, ``W_U[block_b] = K^T`` for
every block b and zero elsewhere (K: ``(A, m)`` codes ``k_a``), a fact's logits are
``logit_a = z . k_a`` with ``z = sum_b o[block_b]`` (``o``: its final residual h2). Write
``z = beta k_t + r`` (t the answer, ``beta = z . k_t / |k_t|^2``). For every rival a,

    logit_t - logit_a = beta (|k_t|^2 - k_a . k_t) + r . (k_t - k_a)
                      >= beta (|k_t|^2 - g_t) - |r| K - |r . k_t|,

with ``g_t = max_{a != t} k_a . k_t`` when ``beta >= 0`` and ``min_{a != t} k_a . k_t`` when
``beta < 0`` and ``K = max_a |k_a|``. One pass over the codebook's Gram matrix gives g_t; each
fact then costs O(B m) after its forward pass. A fact whose bound, less a floating-point
allowance (:func:`_allowance`), is positive is recalled by the float64 brute force too; every
other fact goes through the full float64 logits, so accuracy and the set of failures are
exactly the brute force's. The minimum margin is resolved exactly by running the facts of
smallest bound through the full logits until no unresolved bound can undercut the smallest
exact margin; past :data:`RESOLVE_CAP` such facts the margin is reported as a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from verifier.device import resolve_device
from verifier.measure.recall import ProgressFn, RecallResult, margins_of
from verifier.model import OneLayerTransformer

UNIT = 2.0**-53  # float64 unit roundoff
GRAM_FLOATS = 1 << 25  # entries of one Gram row block (128 MB of float32)
RESOLVE_CAP = 16_384  # facts run through the full logits to pin down the minimum margin
TokensFn = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]  # fact indices -> batch


@dataclass(frozen=True)
class Readout:
    """``W_U`` as a codebook read from residual blocks: ``W_U[block] = codes.T`` for each block,
    zero on every other row.

    Attributes:
        codes: ``(A, m)`` float64 attribute codes ``k_a``.
        blocks: the residual slices (each of width m) whose sum z the logits read.
    """

    codes: np.ndarray
    blocks: tuple[slice, ...]

    def matches(self, w_u: torch.Tensor) -> bool:
        """Whether ``w_u`` (``(d_model, A)``) is exactly this readout (bitwise, no tolerance),
        compared a block of rows at a time."""
        a, m = self.codes.shape
        if w_u.shape[1] != a or not self.blocks:
            return False
        owner = np.full(w_u.shape[0], -1)
        for b, block in enumerate(self.blocks):
            if block.stop - block.start != m or block.stop > w_u.shape[0]:
                return False
            if (owner[block] >= 0).any():
                return False  # overlapping blocks
            owner[block] = b
        codes_t = torch.from_numpy(np.ascontiguousarray(self.codes.T)).to(w_u)
        for block in self.blocks:
            if not torch.equal(w_u[block], codes_t):
                return False
        rest = np.flatnonzero(owner < 0)
        for start in range(0, len(rest), 64):
            if bool(w_u[torch.from_numpy(rest[start : start + 64])].any()):
                return False
        return True


@dataclass(frozen=True)
class GramExtremes:
    """Per attribute t: ``top[t] = max_{a != t} k_a . k_t``, ``bottom[t] = min_{a != t}``,
    ``norm2[t] = |k_t|^2`` (float64 ``(A,)`` each), every entry within ``error`` of the exact
    real value; ``kmax >= max_a |k_a|``."""

    top: np.ndarray
    bottom: np.ndarray
    norm2: np.ndarray
    error: float
    kmax: float


def _sign_scale(codes: np.ndarray) -> float | None:
    """c when every entry of ``codes`` is exactly ``+c`` or ``-c`` (c > 0), else None."""
    c = float(np.abs(codes.flat[0])) if codes.size else 0.0
    if c > 0 and bool(np.all(np.abs(codes) == c)):
        return c
    return None


def sign_gram_extremes(codes: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> GramExtremes:
    """:class:`GramExtremes` of sign codes ``codes = c S`` from the integer row extremes of
    ``S S^T`` (``top``, ``bottom``: ``(A,)`` each, as a code search found them).

    Raises:
        ValueError: ``codes`` are not sign codes, or the extremes do not fit them.
    """
    a, m = codes.shape
    scale = _sign_scale(codes)
    if scale is None or top.shape != (a,) or bottom.shape != (a,):
        raise ValueError("sign_gram_extremes: expected sign codes and (A,) extremes")
    c2 = scale * scale
    norm2 = np.full(a, float(m)) * c2
    kmax = math.sqrt(c2 * m) * (1 + 4 * UNIT)
    return GramExtremes(top * c2, bottom * c2, norm2, 3 * UNIT * c2 * m, kmax)


@torch.inference_mode()
def gram_extremes(codes: np.ndarray, device: torch.device | None = None) -> GramExtremes:
    """Row extremes of the codebook's Gram matrix, in row blocks on ``device``.

    Sign codes (``codes = c S``, S in {-1, +1}, m < 2^24) are multiplied as S in float32,
    which is exact: every partial sum is an integer of size at most m. Then ``G = c^2 S S^T``
    and ``fl(fl(c c) P)`` is within ``3 u c^2 m`` of it. Other codes are multiplied in
    float64, each entry within ``gamma_m |k_a| |k_t| <= gamma_m K^2`` (``gamma_n = n u /
    (1 - n u)``), the recursive-summation bound that holds for any order of summation.

    Args:
        codes: ``(A, m)`` float64, A >= 2.
        device: where the products run (default :func:`verifier.device.resolve_device`).
    """
    dev = resolve_device() if device is None else device
    a, m = codes.shape
    scale = _sign_scale(codes) if m < 2**24 else None
    if scale is not None:
        mat = torch.from_numpy(np.sign(codes).astype(np.float32)).to(dev)
    else:
        mat = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float64)).to(dev)
    rows = max(1, GRAM_FLOATS // a)
    top = torch.empty(a, dtype=mat.dtype, device=dev)
    bottom = torch.empty(a, dtype=mat.dtype, device=dev)
    diag = torch.empty(a, dtype=mat.dtype, device=dev)
    for start in range(0, a, rows):
        stop = min(a, start + rows)
        block = mat[start:stop] @ mat.T  # (rows, A)
        idx = torch.arange(stop - start, device=dev)
        diag[start:stop] = block[idx, idx + start]
        block[idx, idx + start] = -math.inf
        top[start:stop] = block.max(dim=1).values
        block[idx, idx + start] = math.inf
        bottom[start:stop] = block.min(dim=1).values
    top_np, bottom_np, diag_np = (t.double().cpu().numpy() for t in (top, bottom, diag))
    if scale is not None:
        return sign_gram_extremes(codes, top_np, bottom_np)
    row_max = float(np.sqrt((codes * codes).sum(axis=1)).max())
    kmax_bound = row_max * (1 + (m + 4) * UNIT) * 1.01
    error = 2 * m * UNIT / (1 - m * UNIT) * kmax_bound**2
    return GramExtremes(top_np, bottom_np, diag_np, error, kmax_bound)


def _allowance(
    wn: torch.Tensor,
    beta: torch.Tensor,
    p: torch.Tensor,
    gram: GramExtremes,
    m: int,
    d: int,
    n_blocks: int,
) -> torch.Tensor:
    """Floating-point allowance per fact: the computed bound minus this is at most the margin
    the float64 brute force computes.

    With ``w = sum_b |o[block_b]|`` (so ``|z| <= |w|``) and u the float64 unit roundoff:
    the brute force's logits ``fl(o . u_a)`` are within ``gamma_d |w| K`` of the exact ones
    (its margin within twice that); ``fl(z)`` is within ``gamma_B |w|`` of z; the dot product
    ``p = z . k_t`` within ``gamma_m |w| K``; ``fl(|r|)``, with r formed from the computed beta,
    within ``(2m + 10) u |w|``, times K; the Gram extremes and ``|k_t|^2`` within ``error``
    each, met by ``|beta|`` up to three times; the rounding of ``beta (n - g)`` and of
    ``p - beta n`` (which the decomposition needs, ``r . k_t = p - beta |k_t|^2``) adds
    ``6 u |beta| K^2 + u |p|``. The sum is doubled: this covers ``gamma_n <= 1.01 n u`` for the
    ``n <= 2^20`` that limits allow and the rounding of the allowance itself.
    """
    k = gram.kmax
    lengths = 3 * m + 2 * d + 2 * n_blocks + 20
    return 2 * (
        lengths * UNIT * wn * k + (6 * UNIT * k * k + 3 * gram.error) * beta.abs() + UNIT * p.abs()
    )


@dataclass(frozen=True)
class CertifiedRecall:
    """A :class:`RecallResult` from the certificate, and how it was reached.

    Attributes:
        result: accuracy, failures and margin, as the brute force reports them (``margin`` is
            a lower bound when ``margin_exact`` is False).
        certified: facts decided by the bound alone.
        full_logits: facts run through the full float64 logits (undecided ones, and those
            resolving the minimum margin).
        margin_exact: the margin is the brute force's minimum, not a bound.
        coherence: ``max_t top[t]``, the codebook's signed coherence from the Gram pass.
        failures: enumeration indices of every failing fact (not margin > 0), ascending.
    """

    result: RecallResult
    certified: int
    full_logits: int
    margin_exact: bool
    coherence: float
    failures: np.ndarray


def final_residual(model: OneLayerTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """h2 at the last position, ``(batch, d_model)``, as :meth:`OneLayerTransformer.forward`
    computes it before the unembedding."""
    h1 = model.residual(tokens, last_only=True)
    return (h1 + model.mlp(h1))[:, -1]


def _full_margins(
    h2: torch.Tensor, targets: torch.Tensor, w_u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute-force margins and rivals of rows ``h2`` (float64 logits on ``w_u``'s device)."""
    logits = h2.to(w_u.device) @ w_u
    margins, rival = margins_of(logits, targets.to(w_u.device))
    return margins.cpu(), rival.cpu()


@torch.inference_mode()
def certified_recall(
    model: OneLayerTransformer,
    readout: Readout,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    tokens_of: TokensFn,
    total: int,
    progress: ProgressFn | None = None,
    device: torch.device | None = None,
    resolve_cap: int | None = RESOLVE_CAP,
    gram: GramExtremes | None = None,
) -> CertifiedRecall | None:
    """Every fact's recall, certified where the bound decides it, else by the full logits.

    Args:
        model: float64 model whose ``W_U`` is ``readout`` (checked bitwise).
        readout: the codebook and residual blocks ``W_U`` reads.
        batches: ``(tokens, targets)`` in enumeration order, as the brute force sees them.
        tokens_of: fact indices -> ``(tokens, targets)``, to revisit facts for the margin.
        total: number of facts.
        progress: ``(done, total)`` callback.
        device: where the Gram pass and the full logits run (default ``VERIFIER_DEVICE``).
        resolve_cap: most facts run through the full logits to make the margin exact (None:
            no cap, the margin is always exact); past it the margin is a lower bound.
        gram: the codebook's Gram extremes when already known (a code search's final scan
            computes them), else one pass computes them.

    Returns:
        The result, or None when the certificate does not apply (``W_U`` is not the readout,
        fewer than two attributes, or a non-float64 model); the caller then runs the brute
        force.
    """
    codes = readout.codes
    if (
        codes.shape[0] < 2
        or model.W_U.dtype != torch.float64
        or not np.all(np.isfinite(codes))
        or not readout.matches(model.W_U)
    ):
        return None
    dev = resolve_device() if device is None else device
    gram = gram_extremes(codes, dev) if gram is None else gram
    m, d, n_blocks = codes.shape[1], model.cfg.d_model, len(readout.blocks)
    k_all = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float64))
    top, bottom = torch.from_numpy(gram.top), torch.from_numpy(gram.bottom)
    norm2 = torch.from_numpy(gram.norm2)
    w_u = model.W_U.detach().to(dev)
    lower = torch.empty(total, dtype=torch.float64)  # certified lower bounds (nan: full logits)
    exact = torch.full((total,), math.nan, dtype=torch.float64)  # full-logit margins
    correct, seen, full = 0, 0, 0
    first_fail: int | None = None
    first_fail_pred: int | None = None
    failed: list[np.ndarray] = []
    for tokens, targets in batches:
        o = final_residual(model, tokens)  # (b, d)
        z = o[:, readout.blocks[0]]
        w = z  # only its norm is used: |sum_b |o_b|| (= |z| for one block)
        if n_blocks > 1:
            z, w = z.clone(), z.abs()
            for block in readout.blocks[1:]:
                z += o[:, block]
                w += o[:, block].abs()
        kt = k_all[targets]  # (b, m)
        p = (z * kt).sum(dim=1)
        beta = p / norm2[targets]
        r = z - beta[:, None] * kt
        g = torch.where(beta >= 0, top[targets], bottom[targets])
        bound = beta * (norm2[targets] - g) - (p - beta * norm2[targets]).abs()
        bound = bound - torch.linalg.vector_norm(r, dim=1) * gram.kmax
        wn = torch.linalg.vector_norm(w, dim=1)
        lo = bound - _allowance(wn, beta, p, gram, m, d, n_blocks)
        sure = lo > 0  # nan (non-finite residual) is never sure
        rows = torch.arange(seen, seen + len(targets))
        lower[rows] = torch.where(sure, lo, torch.tensor(math.nan, dtype=torch.float64))
        undecided = (~sure).nonzero().squeeze(1)
        if len(undecided):
            margins, rival = _full_margins(o[undecided], targets[undecided], w_u)
            exact[rows[undecided]] = margins
            full += len(undecided)
            bad = (~(margins > 0)).nonzero().squeeze(1)  # nan fails, as in the brute force
            failed.append(rows[undecided[bad]].numpy())
            if first_fail is None and len(bad):
                first_fail = int(rows[undecided[bad[0]]])
                first_fail_pred = int(rival[bad[0]])
            correct += int(sure.sum()) + int((margins > 0).sum())
        else:
            correct += len(targets)
        seen += len(targets)
        if progress is not None:
            progress(seen, total)
    if seen != total:
        raise ValueError(f"certified recall: expected {total} facts, got {seen}")
    margin_exact, extra = _resolve_margin(model, lower, exact, tokens_of, w_u, resolve_cap)
    known = exact[~exact.isnan()]
    unresolved = lower[~lower.isnan() & exact.isnan()]
    margin = min(
        float(known.min()) if len(known) else math.inf,
        float(unresolved.min()) if len(unresolved) and not margin_exact else math.inf,
    )
    return CertifiedRecall(
        result=RecallResult(
            total=seen,
            correct=correct,
            margin=margin,
            worst_index=_worst_index(exact, lower, margin, margin_exact),
            first_failure=first_fail,
            first_failure_prediction=first_fail_pred,
        ),
        certified=seen - full,
        full_logits=full + extra,
        margin_exact=margin_exact,
        coherence=float(gram.top.max()),
        failures=np.concatenate(failed) if failed else np.zeros(0, dtype=np.int64),
    )


def _resolve_margin(
    model: OneLayerTransformer,
    lower: torch.Tensor,
    exact: torch.Tensor,
    tokens_of: TokensFn,
    w_u: torch.Tensor,
    cap: int | None,
) -> tuple[bool, int]:
    """Run certified facts through the full logits, smallest bound first, until every
    unresolved bound exceeds the smallest exact margin (then that minimum, and its first
    index, are the brute force's). Fills ``exact`` in place.

    Returns:
        (whether the minimum was resolved within ``cap`` facts, facts run).
    """
    limit = len(lower) if cap is None else cap
    pending = (~lower.isnan()).nonzero().squeeze(1)
    order = pending[lower[pending].argsort(stable=True)]
    done = 0
    chunk = 64
    while done < len(order):
        known = exact[~exact.isnan()]
        best = float(known.min()) if len(known) else math.inf
        if float(lower[order[done]]) > best:
            return True, done
        if done >= limit:
            return False, done
        stop = min(len(order), done + chunk, limit)
        if math.isfinite(best):  # everything with a bound at or below best, in one go
            below = int(torch.searchsorted(lower[order], best, right=True))
            stop = max(stop, min(limit, below))
        idx = order[done:stop]
        for start in range(0, len(idx), 512):
            part = idx[start : start + 512]
            tokens, targets = tokens_of(part.numpy())
            margins, _ = _full_margins(final_residual(model, tokens), targets, w_u)
            exact[part] = margins
        done = stop
        chunk *= 2
    return True, done


def _worst_index(
    exact: torch.Tensor, lower: torch.Tensor, margin: float, margin_exact: bool
) -> int | None:
    """First fact (enumeration order) whose resolved margin is ``margin``; with a bound only,
    the first whose bound is."""
    hits = (exact == margin).nonzero()
    if len(hits):
        return int(hits[0, 0])
    if not margin_exact:
        hits = ((lower == margin) & exact.isnan()).nonzero()
        if len(hits):
            return int(hits[0, 0])
    return None
