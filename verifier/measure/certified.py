"""Certified recall: exact accuracy without the N-wide unembedding for most facts.

When the unembedding is a codebook read from a few residual blocks, ``W_U[block_b] = K^T`` for
every block b and zero elsewhere (K: ``(A, m)`` codes ``k_a``), a fact's logits are
``logit_a = z . k_a`` with ``z = sum_b o[block_b]`` (``o``: its final residual h2). Write
``z = beta k_t + r`` (t the answer, ``beta = z . k_t / |k_t|^2``). For every rival a,

    logit_t - logit_a = beta (|k_t|^2 - k_a . k_t) + r . (k_t - k_a)
                      >= beta (|k_t|^2 - g_t) - |r| K - |r . k_t|,

with ``g_t = max_{a != t} k_a . k_t`` when ``beta >= 0`` and ``min_{a != t} k_a . k_t`` when
``beta < 0`` and ``K = max_a |k_a|``. One pass over the codebook's Gram matrix gives g_t; each
fact then costs O(B m) after its forward pass. The forward pass is the model's own up to h1
(attention); the MLP's output is needed on the readout blocks alone and is computed from
sparse copies of ``W_in`` and ``W_out[:, blocks]`` (:class:`ReadoutMlp`), whose distance from
the dense float64 MLP is bounded per fact (it moves the margin by at most ``2 K dist``) and
subtracted. A fact whose bound, less that and a floating-point allowance
(:func:`_allowance`), is positive is recalled by the float64 brute force too; every other
fact goes through the model's forward pass and the full float64 logits, so accuracy and the
set of failures are exactly the brute force's. The minimum margin is resolved exactly by
running the facts of smallest bound through the full logits until no unresolved bound can
undercut the smallest exact margin; past :data:`RESOLVE_CAP` such facts the margin is reported
as a lower bound.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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


SPARSE_DENSITY = 0.125  # W_in or W_out sparser than this is multiplied as sparse CSR
UNDERFLOW = 2.0**-1021  # covers one float64 operation's absolute error under flush-to-zero


def _gamma(n: int) -> float:
    """``gamma_n = n u / (1 - n u)``, float64 unit roundoff u."""
    return n * UNIT / (1 - n * UNIT)


def _as_operand(w: torch.Tensor) -> torch.Tensor:
    """``w`` (float64, 2-D) as a sparse CSR copy when it is sparse enough, else dense."""
    if int(torch.count_nonzero(w)) > SPARSE_DENSITY * w.numel():
        return w.contiguous()
    with warnings.catch_warnings():  # CSR is "beta" in torch; dense @ CSR is what is used
        warnings.simplefilter("ignore")
        return w.to_sparse_csr()


@dataclass(frozen=True)
class ReadoutMlp:
    """The MLP's output on the readout blocks alone, with sparse copies of the model's own
    ``W_in`` and ``W_out[:, blocks]`` (the constructions' selector MLPs have two nonzeros
    per unit), and the coefficients of a bound on its distance from the model's forward pass.

    For one fact with h1 (the common float64 attention output), write ``o*`` for the exact
    real ``h1 + ReLU(h1 W_in + b_in) W_out + b_out`` on the blocks. Both this evaluation
    ``o'`` and the model's dense one are within, componentwise,
    ``u|o| + gamma_{n2} (|a| |W_out| + |b_out|) + gamma_{n1} |W_out|^T (|h1| |W_in| + |b_in|)``
    of ``o*`` (``n1 = d + 1``, ``n2 = d_mlp + 1``: the recursive-summation bound, for any
    order of summation and any subset of the terms; ReLU is 1-Lipschitz). With
    Cauchy-Schwarz, ``|h1| |W_in[:, j]| <= |h1|_2 c_j`` (``c_j = |W_in[:, j]|_2``) and
    ``|a| |W_out[:, i]| <= |a|_2 |W_out[:, i]|_2``, so the distance of the two, summed over
    blocks, is at most :meth:`distance`: O(1) per fact from the norms of h1, a' and o'.

    Attributes:
        w_in: ``(d_model, d_mlp)``, sparse CSR or dense.
        w_out: ``(d_mlp, B m)``, the readout columns of ``W_out``, block after block.
        b_in: ``(d_mlp,)``.
        b_out: ``(B m,)``, ``b_out`` on the readout columns.
        cols: ``(B m,)`` the readout coordinates of the residual stream.
        n_blocks: B.
        coef: ``(S1, S2, S3, S4, |c|_2, |b_in|_2)``: ``S1 = sum_b |(|W_out_b|^T c)|_2``,
            ``S2 = sum_b |(|W_out_b|^T |b_in|)|_2``, ``S3 = sum_b |(col norms of W_out_b)|_2``,
            ``S4 = sum_b |b_out_b|_2``.
        tiny: an absolute term covering underflow.
        n1: ``d_model + 1``.
        n2: ``d_mlp + 1``.
    """

    w_in: torch.Tensor
    w_out: torch.Tensor
    b_in: torch.Tensor
    b_out: torch.Tensor
    cols: torch.Tensor
    n_blocks: int
    coef: tuple[float, float, float, float, float, float]
    tiny: float
    n1: int
    n2: int

    @staticmethod
    def of(model: OneLayerTransformer, blocks: tuple[slice, ...]) -> ReadoutMlp | None:
        """From ``model``'s float64 weights (None when one is not finite)."""
        w_in, b_in = model.W_in.detach(), model.b_in.detach()
        w_out, b_out = model.W_out.detach(), model.b_out.detach()
        if not all(bool(t.isfinite().all()) for t in (w_in, b_in, w_out, b_out)):
            return None
        cols = torch.cat([torch.arange(b.start, b.stop) for b in blocks])
        out_cols = w_out[:, cols]
        c = torch.linalg.vector_norm(w_in, dim=0)  # (d_mlp,)
        m = blocks[0].stop - blocks[0].start
        per_block = out_cols.abs().reshape(w_out.shape[0], len(blocks), m)  # (d_mlp, B, m)

        def block_sum(v: torch.Tensor) -> float:  # sum_b |v_b|_2, v: (B, m)
            return float(torch.linalg.vector_norm(v, dim=1).sum())

        coef = (
            block_sum(torch.einsum("jbi,j->bi", per_block, c)),
            block_sum(torch.einsum("jbi,j->bi", per_block, b_in.abs())),
            block_sum(torch.linalg.vector_norm(per_block, dim=0)),
            block_sum(b_out[cols].abs().reshape(len(blocks), m)),
            float(torch.linalg.vector_norm(c)),
            float(torch.linalg.vector_norm(b_in)),
        )
        n1, n2 = model.cfg.d_model + 1, model.cfg.d_mlp + 1
        a_in = float(w_in.abs().sum(dim=0).max())
        a_out = float(out_cols.abs().sum(dim=0).max())
        tiny = 4 * UNDERFLOW * (n1 + n2 + 4) * (1 + a_in) * (1 + a_out) * math.sqrt(len(cols))
        return ReadoutMlp(
            _as_operand(w_in),
            _as_operand(out_cols),
            b_in,
            b_out[cols].contiguous(),
            cols,
            len(blocks),
            coef,
            tiny,
            n1,
            n2,
        )

    def readout(self, h1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``o'`` on the readout columns ``(b, B m)`` and :meth:`distance` per fact ``(b,)``,
        for h1 ``(b, d_model)``."""
        a = torch.relu(h1 @ self.w_in + self.b_in)  # (b, d_mlp)
        o = h1[:, self.cols] + (a @ self.w_out + self.b_out)
        hn = torch.linalg.vector_norm(h1, dim=1)
        an = torch.linalg.vector_norm(a, dim=1)
        on = torch.linalg.vector_norm(o.view(len(o), self.n_blocks, -1), dim=2).sum(dim=1)
        return o, self.distance(hn, an, on)

    def distance(self, hn: torch.Tensor, an: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        """Bound on ``sum_b |o'_b - o_b|_2`` (o: the model's dense float64 forward), from
        ``|h1|_2``, ``|a'|_2`` and ``sum_b |o'_b|_2`` ``(b,)`` each: twice the bound above
        (the second path's ``|a| <= |a'| + 2 gamma_{n1} (|h1| |c| + |b_in|)``, its
        ``u |o| <= u |o'| + u * distance``), times 1.01 for the rounding of this sum and
        of the norms, plus :attr:`tiny`."""
        s1, s2, s3, s4, cn, bn = self.coef
        g1, g2 = _gamma(self.n1), _gamma(self.n2)
        pre = g1 * (hn * cn + bn)  # |pre' - pre*|_2
        total = 2 * UNIT * on + 2 * g2 * ((an + 2 * pre) * s3 + s4) + 2 * g1 * (hn * s1 + s2)
        return 1.01 * total / (1 - UNIT) + self.tiny


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


@dataclass(frozen=True)
class FullLogits:
    """Rows through the model's dense MLP and the full float64 logits: ``(b,)`` each."""

    margins: torch.Tensor  # answer's logit minus the best other
    rival: torch.Tensor  # the best other
    argmax: torch.Tensor  # the first largest logit (what greedy decoding emits)


def _full_logits(h2: torch.Tensor, targets: torch.Tensor, w_u: torch.Tensor) -> FullLogits:
    """Brute-force margins of rows ``h2`` (float64 logits on ``w_u``'s device)."""
    logits = h2.to(w_u.device) @ w_u
    margins, rival = margins_of(logits, targets.to(w_u.device))
    return FullLogits(margins.cpu(), rival.cpu(), logits.argmax(dim=1).cpu())


class Certifier:
    """The certificate for one model and readout: :meth:`lower` bounds a batch of facts'
    margins, :meth:`full` runs facts through the model's real forward pass and full logits.

    Args:
        model: float64 model whose ``W_U`` is ``readout`` (the caller checks it).
        readout: the codebook and residual blocks ``W_U`` reads.
        gram: the codebook's Gram extremes.
        device: where the full logits run.
    """

    def __init__(
        self,
        model: OneLayerTransformer,
        readout: Readout,
        gram: GramExtremes,
        device: torch.device,
    ) -> None:
        codes = readout.codes
        self.model, self.gram = model, gram
        self.m, self.n_blocks = codes.shape[1], len(readout.blocks)
        self.k_all = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float64))
        self.top, self.bottom = torch.from_numpy(gram.top), torch.from_numpy(gram.bottom)
        self.norm2 = torch.from_numpy(gram.norm2)
        self.w_u = model.W_U.detach().to(device)
        self.mlp = ReadoutMlp.of(model, readout.blocks)
        self.cols = torch.cat([torch.arange(b.start, b.stop) for b in readout.blocks])

    def lower(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``(b,)`` a certified lower bound on each fact's float64 margin, nan where the bound
        does not decide it (``tokens (b, L)``, ``targets (b,)``).

        h1 comes from the model's own attention; the readout blocks of h2 from
        :class:`ReadoutMlp` (its distance from the dense MLP's h2 is subtracted from the
        bound) or, when ``W_in``/``W_out`` are not finite, from the dense MLP.
        """
        model, gram, m = self.model, self.gram, self.m
        h1 = model.residual(tokens, last_only=True)  # (b, 1, d)
        if self.mlp is not None:
            o, dist = self.mlp.readout(h1[:, -1])  # (b, B m), (b,)
        else:
            o = (h1 + model.mlp(h1))[:, -1, self.cols]
            dist = torch.zeros(len(targets), dtype=torch.float64)
        z = o[:, :m]
        w = z  # only its norm is used: |sum_b |o_b|| (= |z| for one block)
        if self.n_blocks > 1:
            z, w = z.clone(), z.abs()
            for b in range(1, self.n_blocks):
                z += o[:, b * m : (b + 1) * m]
                w += o[:, b * m : (b + 1) * m].abs()
        kt = self.k_all[targets]  # (b, m)
        norm2 = self.norm2[targets]
        p = (z * kt).sum(dim=1)
        beta = p / norm2
        r = z - beta[:, None] * kt
        g = torch.where(beta >= 0, self.top[targets], self.bottom[targets])
        bound = beta * (norm2 - g) - (p - beta * norm2).abs()
        bound = bound - torch.linalg.vector_norm(r, dim=1) * gram.kmax
        wn = torch.linalg.vector_norm(w, dim=1)
        allow = _allowance(wn, beta, p, gram, m, model.cfg.d_model, self.n_blocks)
        lo = bound - (allow + 2.01 * gram.kmax * dist)
        # nan (a non-finite residual) is never sure
        return torch.where(lo > 0, lo, torch.tensor(math.nan, dtype=torch.float64))

    def full(self, tokens: torch.Tensor, targets: torch.Tensor) -> FullLogits:
        """Facts through the model's forward pass (dense MLP) and the full logits."""
        return _full_logits(final_residual(self.model, tokens), targets, self.w_u)


def certifier(
    model: OneLayerTransformer,
    readout: Readout,
    device: torch.device | None = None,
    gram: GramExtremes | None = None,
) -> Certifier | None:
    """A :class:`Certifier`, or None when the certificate does not apply (``W_U`` is not the
    readout, fewer than two attributes, or a non-float64 model).

    Args:
        device: where the Gram pass and the full logits run (default ``VERIFIER_DEVICE``).
        gram: the codebook's Gram extremes when already known, else one pass computes them.
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
    return Certifier(model, readout, gram, dev)


@contextmanager
def _one_thread_each() -> Iterator[int]:
    """torch on one intra-op thread inside the block (restored after); yields the count it
    had, the number of batches to run side by side. The certificate's tensors are small: on
    a busy machine a multi-threaded op spends longer synchronising than computing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


def _lower_bounds(
    cert: Certifier,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    total: int,
    progress: ProgressFn | None,
) -> torch.Tensor:
    """``(total,)`` :meth:`Certifier.lower` of every batch, in order, batches side by side on
    one thread each."""
    lower = torch.empty(total, dtype=torch.float64)
    seen = 0

    @torch.inference_mode()
    def run(tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return cert.lower(tokens, targets)

    def store(result: torch.Tensor) -> None:
        nonlocal seen
        if seen + len(result) > total:
            raise ValueError(f"certified recall: expected {total} facts, got more")
        lower[seen : seen + len(result)] = result
        seen += len(result)
        if progress is not None:
            progress(seen, total)

    with _one_thread_each() as workers, ThreadPoolExecutor(max(1, workers)) as pool:
        pending: deque[Future[torch.Tensor]] = deque()
        for tokens, targets in batches:
            pending.append(pool.submit(run, tokens, targets))
            if len(pending) > 2 * workers:
                store(pending.popleft().result())
        while pending:
            store(pending.popleft().result())
    if seen != total:
        raise ValueError(f"certified recall: expected {total} facts, got {seen}")
    return lower


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

    The bounds run batch by batch (side by side, one thread each); the facts they leave, and
    those resolving the margin, then go through the real forward pass in chunks of 512.

    Args:
        model: float64 model whose ``W_U`` is ``readout`` (checked bitwise).
        readout: the codebook and residual blocks ``W_U`` reads.
        batches: ``(tokens, targets)`` in enumeration order.
        tokens_of: fact indices -> ``(tokens, targets)``, to revisit facts.
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
    cert = certifier(model, readout, device, gram)
    if cert is None:
        return None
    lower = _lower_bounds(cert, batches, total, progress)
    exact = torch.full((total,), math.nan, dtype=torch.float64)  # full-logit margins
    undecided = lower.isnan().nonzero().squeeze(1).numpy()
    first_fail: int | None = None
    first_fail_pred: int | None = None
    failed: list[np.ndarray] = []
    for start in range(0, len(undecided), 512):
        part = undecided[start : start + 512]
        full = cert.full(*tokens_of(part))
        exact[part] = full.margins
        bad = (~(full.margins > 0)).nonzero().squeeze(1).numpy()  # nan fails, as brute force
        failed.append(part[bad])
        if first_fail is None and len(bad):
            first_fail, first_fail_pred = int(part[bad[0]]), int(full.rival[bad[0]])
    failures = np.concatenate(failed) if failed else np.zeros(0, dtype=np.int64)

    def resolve(idx: np.ndarray) -> torch.Tensor:
        return cert.full(*tokens_of(idx)).margins

    margin_exact, extra = resolve_margin(lower, exact, resolve, resolve_cap)
    margin = lowest_margin(lower, exact, margin_exact)
    return CertifiedRecall(
        result=RecallResult(
            total=total,
            correct=total - len(failures),
            margin=margin,
            worst_index=_worst_index(exact, lower, margin, margin_exact),
            first_failure=first_fail,
            first_failure_prediction=first_fail_pred,
        ),
        certified=total - len(undecided),
        full_logits=len(undecided) + extra,
        margin_exact=margin_exact,
        coherence=float(cert.gram.top.max()),
        failures=failures.astype(np.int64),
    )


def lowest_margin(lower: torch.Tensor, exact: torch.Tensor, margin_exact: bool) -> float:
    """The smallest resolved margin, or the smallest bound where that is lower and the margin
    is not exact (inf when there is neither)."""
    known = exact[~exact.isnan()]
    unresolved = lower[~lower.isnan() & exact.isnan()]
    return min(
        float(known.min()) if len(known) else math.inf,
        float(unresolved.min()) if len(unresolved) and not margin_exact else math.inf,
    )


def resolve_margin(
    lower: torch.Tensor,
    exact: torch.Tensor,
    margins_of_facts: Callable[[np.ndarray], torch.Tensor],
    cap: int | None,
) -> tuple[bool, int]:
    """Run certified facts through the full logits, smallest bound first, until every
    unresolved bound exceeds the smallest exact margin (then that minimum, and its first
    index, are the brute force's). Fills ``exact`` in place.

    Args:
        lower: ``(n,)`` certified bounds (nan: resolved already).
        exact: ``(n,)`` full-logit margins (nan: not run).
        margins_of_facts: fact indices -> their full-logit margins.
        cap: most facts to run (None: no cap).

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
            exact[part] = margins_of_facts(part.numpy())
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
