"""P2, re-embedding through a frozen network (docs/theory.md section 6): zero-shot transfer.

Attention, MLP and unembedding are frozen; only the subject rows ``W_E[s]`` change, to store a
*new* set of bijections. For a subject s and relation r (sequence ``[r, s]``), fix at a point
``e`` the attention pattern ``p_h`` of the last position and the MLP's activation pattern
``sigma`` (units with pre-activation > 0). Inside that region everything is affine in ``e_s``:

    h1 = e_s A_r + b_r,  A_r = I + sum_h p_h[1] W_V[h] W_O[h],
    b_r = W_pos[1] A_r + sum_h p_h[0] (W_E[N+r] + W_pos[0]) W_V[h] W_O[h],
    pre = h1 W_in + b_in = e_s P_r + q_r,  logits = (h1 + (sigma * pre) W_out + b_out) W_U,

so one LP per subject, over ``x = (e_s, t)``: maximise ``t <= margin`` subject to
``logit_{y_r} - logit_j >= t`` (R (N-1) margin rows) and the sign rows of every unit
(R d_mlp rows: ``pre >= 0`` where sigma is on, ``<= 0`` where off), with ``|e_s|_inf <= box``.

Algorithm (rows generated lazily, :class:`_Region`): the LP starts from the strongest rivals of
each relation and the sign rows nearest their boundary; after each solve *every* row is
checked at the solver's point by one forward evaluation of the affine model (a few
matrix-vector products, the coefficient matrix is never formed), and the most violated rows
join. Each subject's LP goes to HiGHS directly (``highspy``), rows are appended to the same
model and the solve warm-starts from the previous basis; Clarabel (through cvxpy) is the
fallback of :class:`~verifier.convex.solver.SolverSettings`. A status other than optimal from
every solver raises :class:`~verifier.errors.SolverError`.

ReLU is continuous, so on the sign rows' boundary both pieces agree. Attention scores that
depend on ``e_s`` make the pattern exact only at the linearisation point: the forward pass is
the judge. Subjects not yet recalled with the margin are re-linearised a bounded number of
times at the LP's point pushed slightly past it (so units on the region's boundary can change
side; units exactly on it take a side drawn at random). Each subject keeps the best rows any
round gave it (its facts depend on its own row only); they are put into a copy of the model
and every new fact goes through :func:`verifier.measure.recall.exact_recall` (float64).
Failure is reported as *not found*, never as impossible; the per-subject ``region_upper`` is a
weak-duality bound valid for the last linear region only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from verifier.convex.solver import LinearProgram, LPSolution, SolverSettings, WarmHighs, solve_lp
from verifier.convex.working_set import WorkingSet, dual_bound, grow
from verifier.facts.bijections import BijectionFacts
from verifier.measure.recall import exact_recall
from verifier.model import OneLayerTransformer

ProgressFn = Callable[[int, int], None]  # (round, max_rounds)
RIVALS = 8  # strongest rivals per relation in a subject's first working set
SIGNS = 64  # sign rows nearest their boundary per relation in the first working set
ADD = 128  # most violated rows added per working-set round
WS_ROUNDS = 60  # working-set solves per subject and linearisation, at most
TOL = 1e-9  # a row counts as violated below -TOL
OVERSHOOT = 0.1  # re-linearise at e + OVERSHOOT (e - e_previous)
TIE = 1e-9  # |pre-activation| below this (relative) counts as on the boundary
BATCH = 4096


@dataclass(frozen=True)
class SubjectStatus:
    """One subject after the last round.

    Attributes:
        subject: s.
        found: all of s's R new facts are recalled by the forward pass.
        forward_margin: min over s's facts of the forward pass's margin.
        region_upper: the checked dual bound of the last LP: no point of that linear region
            reaches a larger margin (says nothing outside it).
        rounds: linearisations used.
    """

    subject: int
    found: bool
    forward_margin: float
    region_upper: float
    rounds: int


@dataclass(frozen=True)
class ReembedResult:
    """Outcome of :func:`reembed`.

    Attributes:
        found: every new fact is recalled by the forward pass of the re-embedded copy.
        embeddings: the new subject rows ``(N, d_model)`` when found, else None.
        subjects: per-subject status.
        rounds: linearisation rounds used (at most ``max_rounds``).
        max_violation: the solvers' worst raw row or box violation before clipping.
        accuracy: fraction of new facts recalled with the best embeddings tried.
        margin: forward-pass margin over every new fact with them.
        model: the re-embedded copy (always returned, for inspection).
        solves: LP solves made.
        rows_used: the largest working set of any subject's LP (of ``R (N - 1 + d_mlp)``).
        solvers: solver names that answered.
    """

    found: bool
    embeddings: np.ndarray | None
    subjects: list[SubjectStatus]
    rounds: int
    max_violation: float
    accuracy: float
    margin: float
    model: OneLayerTransformer
    solves: int
    rows_used: int = 0
    solvers: tuple[str, ...] = ()


class _Frozen:
    """The frozen weights in float64, with the products every region reuses.

    Not :meth:`OneLayerTransformer.forward`: P2 needs the last position's attention *pattern*
    (the coefficients of its affine model, for a subject row against every relation at once)
    and products of frozen weights (``W_V W_O W_in``, ``W_out W_U``) that the model's forward
    neither exposes nor forms; every answer is still judged by the model's own forward pass
    (:func:`_forward_margins`, :func:`~verifier.measure.recall.exact_recall`).

    Per-subject algebra is small (``d x d_mlp`` by a few columns), so it runs in torch on one
    thread (:func:`_one_thread`): a multi-threaded BLAS on a busy machine spends far longer
    synchronising than computing at these sizes.
    """

    def __init__(self, model: OneLayerTransformer, rel_rows: torch.Tensor) -> None:
        def a(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(torch.float64).cpu().clone()

        self.W_pos = a(model.W_pos)
        self.W_Q, self.W_K = a(model.W_Q), a(model.W_K)
        self.VO = torch.einsum("hde,hef->hdf", a(model.W_V), a(model.W_O))  # (H, d, d)
        self.W_in, self.b_in = a(model.W_in), a(model.b_in)  # (d, d_mlp), (d_mlp,)
        self.W_out, self.b_out, self.W_U = a(model.W_out), a(model.b_out), a(model.W_U)
        self.d_head = model.cfg.d_head
        self.d_mlp = model.cfg.d_mlp
        self.VOWin = self.VO @ self.W_in  # (H, d, d_mlp)
        self.VOWU = self.VO @ self.W_U  # (H, d, n_out)
        self.WoU = self.W_out @ self.W_U  # (d_mlp, n_out)
        self.bU = self.b_out @ self.W_U  # (n_out,)
        self.relVO = torch.einsum("rd,hdf->rhf", rel_rows, self.VO)  # (R, H, d)
        self.posVO = self.W_pos[1] @ self.VO  # (H, d)
        self.k_rel = torch.einsum("rd,hde->rhe", rel_rows, self.W_K)  # (R, H, dh)

    def attention(self, E: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last-position attention at subject rows ``E (B, d)``: ``p_sub, p_rel (B, R, H)``."""
        h_sub = E + self.W_pos[1]
        q = torch.einsum("bd,hde->bhe", h_sub, self.W_Q)  # (B, H, dh)
        k_sub = torch.einsum("bd,hde->bhe", h_sub, self.W_K)
        scale = math.sqrt(self.d_head)
        s_sub = (q * k_sub).sum(-1)[:, None, :] / scale  # (B, 1, H)
        s_rel = torch.einsum("bhe,rhe->brh", q, self.k_rel) / scale  # (B, R, H)
        top = torch.maximum(s_rel, s_sub)
        w_rel, w_sub = torch.exp(s_rel - top), torch.exp(s_sub - top)
        return w_sub / (w_rel + w_sub), w_rel / (w_rel + w_sub)


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Region:
    """One subject's LP, linearised at ``e0``: rows ``G x <= h`` over ``x = (e_s, t)``.

    Row ``r (n_out - 1) + i``: margin row of relation r against its i-th rival (answers other
    than ``y_r``, in order); row ``R (n_out - 1) + r d_mlp + u``: sign row of unit u under
    relation r. No row is stored: :meth:`slack` evaluates all of them at once and
    :meth:`rows` builds the requested ones.
    """

    def __init__(
        self,
        frozen: _Frozen,
        e0: torch.Tensor,
        p_sub: torch.Tensor,
        p_rel: torch.Tensor,
        targets: np.ndarray,
        ties: np.random.Generator | None,
    ) -> None:
        f = frozen
        self.f, self.p_sub, self.y = f, p_sub, targets  # p_sub (R, H), targets (R,)
        self.d = int(e0.shape[0])
        self.n_rel = int(targets.shape[0])
        self.n_out = int(f.W_U.shape[1])
        rel = torch.arange(self.n_rel)
        self._y = torch.from_numpy(targets)
        # b_r = W_pos[1] A_r + sum_h p_rel[r, h] relVO[r, h]
        self.b = f.W_pos[1] + p_sub @ f.posVO + torch.einsum("rh,rhf->rf", p_rel, f.relVO)
        self.P = f.W_in[None] + torch.einsum("rh,hdu->rdu", p_sub, f.VOWin)  # (R, d, d_mlp)
        self.q = self.b @ f.W_in + f.b_in  # (R, d_mlp)
        pre = torch.einsum("d,rdu->ru", e0, self.P) + self.q
        sigma = pre > 0
        if ties is not None:  # units on the region's boundary: either side, drawn at random
            h1 = self._h1(e0)
            tied = pre.abs() <= TIE * (1.0 + float(h1.abs().max()))
            coin = torch.from_numpy(ties.random(tuple(sigma.shape)) < 0.5)
            sigma = torch.where(tied, coin, sigma)
        self.sigma = sigma.to(torch.float64)  # (R, d_mlp), 1 on, 0 off
        self.sign = 1.0 - 2.0 * self.sigma  # on: -pre <= 0; off: pre <= 0
        self.l = self.b @ f.W_U + (self.q * self.sigma) @ f.WoU + f.bU  # (R, n_out)
        self.per_rel = self.n_out - 1
        self.n_margin = self.n_rel * self.per_rel
        self.n_rows = self.n_margin + self.n_rel * f.d_mlp
        keep = torch.ones(self.n_rel, self.n_out, dtype=torch.bool)
        keep[rel, self._y] = False
        self._keep = keep  # the rival entries of a (R, n_out) table

    def _h1(self, e: torch.Tensor) -> torch.Tensor:
        """``e A_r + b_r`` for every relation, ``(R, d)``."""
        eVO = e @ self.f.VO  # (H, d)
        return e[None] + self.p_sub @ eVO + self.b

    def _evaluate(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine model at ``e``: ``(gaps (R, n_out - 1), pre (R, d_mlp))``, gaps
        ``logit_y - logit_j`` for each rival j."""
        h1 = self._h1(e)
        pre = torch.einsum("d,rdu->ru", e, self.P) + self.q
        logits = (h1 + (self.sigma * pre) @ self.f.W_out + self.f.b_out) @ self.f.W_U
        gaps = logits.gather(1, self._y[:, None]) - logits
        return gaps[self._keep].reshape(self.n_rel, self.per_rel), pre

    def slack(self, x: np.ndarray) -> np.ndarray:
        """``h - G x`` for every row, ``(n_rows,)``; negative entries are violations."""
        gaps, pre = self._evaluate(torch.from_numpy(x[:-1]))
        return torch.cat([(gaps - float(x[-1])).ravel(), (-self.sign * pre).ravel()]).numpy()

    def margins(self, e: torch.Tensor) -> np.ndarray:
        """``logit_y - logit_j`` of the affine model at ``e`` per rival, ``(R, n_out - 1)``."""
        return self._evaluate(e)[0].numpy()

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G[idx] (k, d + 1), h[idx] (k,))``."""
        f, d = self.f, self.d
        G = np.zeros((idx.shape[0], d + 1))
        h = np.zeros(idx.shape[0])
        margin_rows = idx < self.n_margin
        for r in range(self.n_rel):
            at = np.flatnonzero(margin_rows & (idx // self.per_rel == r))
            if at.size:
                i = idx[at] - r * self.per_rel
                j = i + (i >= self.y[r])  # the i-th rival's answer index
                cols = torch.from_numpy(np.concatenate([[self.y[r]], j]))
                L = f.W_U[:, cols] + torch.einsum("h,hdk->dk", self.p_sub[r], f.VOWU[:, :, cols])
                L += (self.P[r] * self.sigma[r]) @ f.WoU[:, cols]  # (d, 1 + k)
                G[at, :d] = (L[:, 1:] - L[:, :1]).T.numpy()  # t - e dL <= dl
                G[at, d] = 1.0
                lr = self.l[r].numpy()
                h[at] = lr[self.y[r]] - lr[j]
        sign_at = np.flatnonzero(~margin_rows)
        if sign_at.size:
            r_np, u_np = np.divmod(idx[sign_at] - self.n_margin, f.d_mlp)
            r_t, u_t = torch.from_numpy(r_np), torch.from_numpy(u_np)
            s = self.sign[r_t, u_t]
            G[sign_at, :d] = (self.P[r_t, :, u_t] * s[:, None]).numpy()
            h[sign_at] = (-s * self.q[r_t, u_t]).numpy()
        return G, h

    def initial(self, e0: torch.Tensor) -> np.ndarray:
        """The first working set: each relation's weakest margins and nearest sign rows."""
        gaps, pre = self._evaluate(e0)
        k = min(RIVALS, self.per_rel)
        weakest = torch.argsort(gaps, dim=1)[:, :k].numpy()
        parts = [r * self.per_rel + weakest[r] for r in range(self.n_rel)]
        dist = pre.abs() / (torch.linalg.vector_norm(self.P, dim=1) + 1e-300)  # (R, d_mlp)
        k = min(SIGNS, self.f.d_mlp)
        nearest = torch.argsort(dist, dim=1)[:, :k].numpy()
        parts += [self.n_margin + r * self.f.d_mlp + nearest[r] for r in range(self.n_rel)]
        return np.concatenate(parts)


@dataclass(frozen=True)
class _Solved:
    x: np.ndarray  # the solver's point (d + 1,), unrepaired
    upper: float  # weak-duality bound on the region's LP, checked in float64
    violation: float  # worst raw row or box violation of x over every row
    rows: int  # working-set size
    solves: int
    solver: str


class _WorkingSet:
    """``max t`` over a growing working set of one region's rows, HiGHS warm-started.

    The rows are materialised as they join (:meth:`_Region.rows`); the loop is
    :func:`~verifier.convex.working_set.grow`, the solvers those of
    :func:`~verifier.convex.solver.solve_lp` with HiGHS kept warm (:class:`WarmHighs`).

    Args:
        region: the rows.
        lo, hi: the box of ``x = (e_s, t)``.
        settings: solver order and time limit (Clarabel runs through cvxpy).
        what: label for error messages.
    """

    def __init__(
        self, region: _Region, lo: np.ndarray, hi: np.ndarray, settings: SolverSettings, what: str
    ) -> None:
        self.region, self.lo, self.hi = region, lo, hi
        self.settings, self.what = settings, what
        self.n = lo.shape[0]
        self.c = np.zeros(self.n)
        self.c[-1] = 1.0
        self.work = np.zeros(0, dtype=np.int64)
        self.G = np.zeros((0, self.n))
        self.h = np.zeros(0)
        self.highs = WarmHighs()

    def _solve(self, rows: np.ndarray) -> tuple[LPSolution, str]:
        """Materialise the rows that joined since the last solve, then solve the working set."""
        idx = rows[len(self.work) :]
        if idx.size:
            G, h = self.region.rows(idx)
            self.work = rows
            self.G, self.h = np.vstack([self.G, G]), np.concatenate([self.h, h])
        lp = LinearProgram(self.c, self.G, self.h, self.lo, self.hi)
        return solve_lp(lp, self.settings, self.what, highs=self.highs)

    def solve(self, e0: torch.Tensor) -> _Solved:
        """Grow the working set until no row is violated (or ``WS_ROUNDS`` solves).

        Raises:
            SolverError: no solver answered a round ``optimal``.
        """
        ws = WorkingSet.start(self.region.initial(e0), ADD, WS_ROUNDS, TOL)
        sol, solver = grow(
            ws, self._solve, lambda a: self.region.slack(np.clip(a[0].x, self.lo, self.hi))
        )
        x, y = sol.x, sol.y
        raw = self.region.slack(x)
        violation = max(
            float(np.maximum(-raw, 0).max()),
            float(np.maximum(np.maximum(self.lo - x, x - self.hi), 0).max()),
        )
        upper = dual_bound(self.c, self.G, self.h, y, self.lo, self.hi)
        return _Solved(x, upper, violation, len(self.work), ws.rounds, solver)


def _frozen(model: OneLayerTransformer, facts: BijectionFacts) -> _Frozen:
    n = facts.n_entities
    rel_rows = model.W_E.detach()[n : n + facts.n_relations] + model.W_pos.detach()[0]
    return _Frozen(model, rel_rows.to(torch.float64).cpu())


def _solve_at(
    frozen: _Frozen,
    e0: torch.Tensor,
    p_sub: torch.Tensor,
    p_rel: torch.Tensor,
    targets: np.ndarray,
    margin: float,
    bound: float,
    settings: SolverSettings,
    what: str,
    ties: np.random.Generator | None = None,
) -> _Solved:
    region = _Region(frozen, e0, p_sub, p_rel, targets, ties)
    d = region.d
    t_lo = min(float(region.margins(e0).min()), 0.0) - 1.0  # e0 with t = t_lo is feasible
    lo = np.concatenate([np.full(d, -bound), [t_lo]])
    hi = np.concatenate([np.full(d, bound), [margin]])
    return _WorkingSet(region, lo, hi, settings, what).solve(e0)


@dataclass(frozen=True)
class RegionSolution:
    """One subject's LP in the linear region of a point (see :func:`solve_region`).

    Attributes:
        x: the solver's point ``(e_s, t)``, unrepaired, ``(d + 1,)``.
        upper: weak-duality bound on the LP's optimum, checked in float64.
        violation: the point's worst violation over *every* row and the box.
        rows: rows in the final working set, of ``n_rows``.
        n_rows: ``R (n_out - 1) + R d_mlp``.
        solves: working-set solves.
    """

    x: np.ndarray
    upper: float
    violation: float
    rows: int
    n_rows: int
    solves: int


def solve_region(
    model: OneLayerTransformer,
    facts: BijectionFacts,
    subject: int,
    e0: np.ndarray,
    margin: float,
    box: float,
    settings: SolverSettings | None = None,
) -> RegionSolution:
    """``max t <= margin`` over subject's linear region at ``e0`` (attention and ReLU pattern
    fixed there), ``logit_y - logit_j >= t`` for each relation and rival, ``|e_s|_inf <= box``.

    Raises:
        SolverError: no solver answered a solve ``optimal``.
    """
    frozen = _frozen(model, facts)
    e = torch.from_numpy(np.asarray(e0, dtype=np.float64))
    p_sub, p_rel = frozen.attention(e[None])
    targets = np.array([facts.answers(subject, r) for r in range(facts.n_relations)])
    with _one_thread():
        solved = _solve_at(
            frozen,
            e,
            p_sub[0],
            p_rel[0],
            targets,
            margin,
            box,
            settings or SolverSettings(),
            f"P2 subject {subject}",
        )
    n_rows = facts.n_relations * (model.cfg.n_out - 1 + model.cfg.d_mlp)
    return RegionSolution(
        solved.x, solved.upper, solved.violation, solved.rows, n_rows, solved.solves
    )


def reembed(
    model: OneLayerTransformer,
    facts: BijectionFacts,
    start: np.ndarray,
    margin: float,
    max_rounds: int = 4,
    settings: SolverSettings | None = None,
    box: float | None = None,
    progress: ProgressFn | None = None,
) -> ReembedResult:
    """Find subject rows storing ``facts`` in the frozen ``model``; confirm by forward pass.

    Args:
        model: any single-hop :class:`OneLayerTransformer` (sequences ``[r, s]``); not modified.
        facts: the new bijections (entity and relation tokens as in the model).
        start: ``(N, d_model)`` starting subject rows (a probe re-initialisation, say).
        margin: the margin each LP asks for (``> 0``).
        max_rounds: linearisations per subject, at least 1.
        settings: solver order and time limit.
        box: ``|e_s|_inf`` bound; default twice the largest entry of ``start`` and ``W_E``.
        progress: called after each round.

    Returns:
        :class:`ReembedResult`; ``found`` only when the forward pass recalls every new fact.

    Raises:
        ValueError: shapes that do not match the model.
        SolverError: no solver answered a solve ``optimal``.
    """
    n, d = facts.n_entities, model.cfg.d_model
    start = np.asarray(start, dtype=np.float64)
    if start.shape != (n, d):
        raise ValueError(f"start: expected shape ({n}, {d}), got {start.shape}")
    if model.cfg.n_out != facts.n_attributes or model.cfg.n_vocab < facts.n_vocab:
        raise ValueError(
            f"facts: expected {model.cfg.n_out} attributes and at most {model.cfg.n_vocab} "
            f"tokens, got {facts.n_attributes} and {facts.n_vocab}"
        )
    if not margin > 0 or max_rounds < 1:
        raise ValueError(f"expected margin > 0 and max_rounds >= 1, got {margin}, {max_rounds}")
    with _one_thread():
        return _reembed(
            model, facts, start, margin, max_rounds, settings or SolverSettings(), box, progress
        )


def _reembed(
    model: OneLayerTransformer,
    facts: BijectionFacts,
    start: np.ndarray,
    margin: float,
    max_rounds: int,
    settings: SolverSettings,
    box: float | None,
    progress: ProgressFn | None,
) -> ReembedResult:
    n = facts.n_entities
    frozen = _frozen(model, facts)
    bound = box or 2.0 * max(float(np.abs(start).max()), float(model.W_E.detach().abs().max()))
    answers = np.stack([facts.answers(np.arange(n), r) for r in range(facts.n_relations)], 1)
    E, previous = start.copy(), start.copy()
    ties = np.random.default_rng(0)  # deterministic: the same call gives the same answer
    work = copy.deepcopy(model)
    forward = _forward_margins(work, facts, E)
    best, best_forward = E.copy(), forward.copy()  # per subject, the best rows seen so far
    upper = np.full(n, np.inf)
    rounds_of = np.zeros(n, dtype=np.int64)
    violation, used, solves, rows_used = 0.0, 0, 0, 0
    solvers: set[str] = set()
    for round_ in range(1, max_rounds + 1):
        pending = np.flatnonzero(best_forward < margin * (1 - 1e-9))
        if pending.size == 0:
            break
        used = round_
        previous_round = E.copy()
        at_np = E[pending] + (OVERSHOOT * (E[pending] - previous[pending]) if round_ > 1 else 0.0)
        at = torch.from_numpy(np.clip(at_np, -bound, bound))
        p_sub, p_rel = frozen.attention(at)  # (B, R, H) each
        for i, s in enumerate(pending):
            solved = _solve_at(
                frozen,
                at[i],
                p_sub[i],
                p_rel[i],
                answers[s],
                margin,
                bound,
                settings,
                f"P2 subject {s} round {round_}",
                ties if round_ > 1 else None,
            )
            violation = max(violation, solved.violation)
            solves += solved.solves
            rows_used = max(rows_used, solved.rows)
            solvers.add(solved.solver)
            E[s] = np.clip(solved.x[:-1], -bound, bound)
            upper[s] = solved.upper
            rounds_of[s] = round_
        previous = previous_round
        forward = _forward_margins(work, facts, E)
        better = forward > best_forward  # a subject's facts depend on its own row only
        best[better], best_forward[better] = E[better], forward[better]
        if progress is not None:
            progress(round_, max_rounds)
    forward = _forward_margins(work, facts, best)
    E = best
    recall = exact_recall(work, facts.batches(BATCH), facts.n_facts)
    found = recall.correct == recall.total
    subjects = [
        SubjectStatus(
            int(s), bool(forward[s] > 0), float(forward[s]), float(upper[s]), int(rounds_of[s])
        )
        for s in range(n)
    ]
    if found != all(st.found for st in subjects):  # internal invariant: two views of one pass
        raise AssertionError("P2: per-subject margins disagree with exact_recall")
    return ReembedResult(
        found=found,
        embeddings=E.copy() if found else None,
        subjects=subjects,
        rounds=used,
        max_violation=violation,
        accuracy=recall.accuracy,
        margin=recall.margin,
        model=work,
        solves=solves,
        rows_used=rows_used,
        solvers=tuple(sorted(solvers)),
    )


@torch.no_grad()
def _forward_margins(
    model: OneLayerTransformer, facts: BijectionFacts, E: np.ndarray
) -> np.ndarray:
    """Write ``E`` into ``model.W_E[:N]``; per-subject min margin over its R facts, ``(N,)``."""
    n = facts.n_entities
    model.W_E[:n] = torch.from_numpy(E).to(model.W_E.dtype)
    out = np.full(n, np.inf)
    for tokens, targets in facts.batches(BATCH):
        logits = model(tokens)
        answer = logits.gather(1, targets[:, None]).squeeze(1)
        others = logits.scatter(1, targets[:, None], float("-inf")).max(dim=1).values
        subj = tokens[:, -1].numpy()
        np.minimum.at(out, subj, (answer - others).numpy())
    return out
