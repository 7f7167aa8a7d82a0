"""P2, re-embedding through a frozen network (THEORY.md section 6): zero-shot transfer.

Attention, MLP and unembedding are frozen; only the subject rows ``W_E[s]`` change, to store a
*new* set of bijections. For a subject s and relation r (sequence ``[r, s]``), fix at a point
``e`` the attention pattern ``p_h`` of the last position and the MLP's activation pattern
``sigma`` (units with pre-activation > 0). Inside that region everything is affine in ``e_s``:

    h1 = e_s A_r + b_r,  A_r = I + sum_h p_h[1] W_V[h] W_O[h],
    b_r = W_pos[1] A_r + sum_h p_h[0] (W_E[N+r] + W_pos[0]) W_V[h] W_O[h],
    pre = h1 W_in + b_in,  logits = (h1 + (sigma * pre) W_out + b_out) W_U,

so one LP per subject, over ``(e_s, t)``: maximise ``t <= margin`` subject to
``logit_{y_r} - logit_j >= t`` (R (N-1) margin rows, generated lazily from the strongest
rivals) and the sign rows of every unit (R d_mlp rows: ``pre >= 0`` where sigma is on,
``<= 0`` where off), with ``|e_s|_inf <= box``. ReLU is continuous, so on the sign rows'
boundary both pieces agree. Attention scores that depend on ``e_s`` make the pattern exact
only at the linearisation point: the forward pass is the judge. Subjects not yet recalled
with the margin are re-linearised a bounded number of times at the LP's point pushed slightly
past it (so units on the region's boundary can change side; units exactly on it take a side
drawn at random). Whatever is found is put into a
copy of the model and every new fact goes through :func:`verifier.recall.exact_recall`.
Failure is reported as *not found*, never as impossible.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from verifier.convex.solver import SolverSettings
from verifier.convex.working_set import DenseRows, Program, WorkingSetLP
from verifier.instances import BijectionFacts
from verifier.model import OneLayerTransformer
from verifier.recall import exact_recall

ProgressFn = Callable[[int, int], None]  # (round, max_rounds)
RIVALS = 16  # strongest rivals per relation in a subject's first working set
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


class _Frozen:
    """The frozen weights as float64 numpy arrays."""

    def __init__(self, model: OneLayerTransformer) -> None:
        def a(t: torch.Tensor) -> np.ndarray:
            return np.asarray(t.detach().to(torch.float64).cpu().numpy())

        self.W_E, self.W_pos = a(model.W_E), a(model.W_pos)
        self.W_Q, self.W_K = a(model.W_Q), a(model.W_K)
        self.VO = np.einsum("hde,hef->hdf", a(model.W_V), a(model.W_O))  # (H, d, d)
        self.W_in, self.b_in = a(model.W_in), a(model.b_in)
        self.W_out, self.b_out, self.W_U = a(model.W_out), a(model.b_out), a(model.W_U)
        self.d_head = model.cfg.d_head
        self.d_mlp = model.cfg.d_mlp

    def linearise(
        self, e: np.ndarray, rel_rows: np.ndarray, ties: np.random.Generator | None = None
    ) -> tuple[np.ndarray, ...]:
        """Affine maps at ``e`` for each relation: ``(A (R,d,d), b (R,d), sigma (R,d_mlp))``.

        Args:
            e: ``(d,)`` the subject's embedding.
            rel_rows: ``(R, d)`` ``W_E[N + r] + W_pos[0]``.
            ties: draws the side of units whose pre-activation is 0 (re-linearisation).
        """
        h_sub = e + self.W_pos[1]  # (d,)
        q = np.einsum("d,hde->he", h_sub, self.W_Q)  # (H, dh)
        k_sub = np.einsum("d,hde->he", h_sub, self.W_K)  # (H, dh)
        k_rel = np.einsum("rd,hde->rhe", rel_rows, self.W_K)  # (R, H, dh)
        s_sub = (q * k_sub).sum(-1) / math.sqrt(self.d_head)  # (H,)
        s_rel = (q[None] * k_rel).sum(-1) / math.sqrt(self.d_head)  # (R, H)
        top = np.maximum(s_rel, s_sub[None])
        w_rel, w_sub = np.exp(s_rel - top), np.exp(s_sub[None] - top)
        p_rel, p_sub = w_rel / (w_rel + w_sub), w_sub / (w_rel + w_sub)  # (R, H)
        eye = np.eye(e.shape[0])
        A = eye[None] + np.einsum("rh,hdf->rdf", p_sub, self.VO)  # (R, d, d)
        rel_vo = np.einsum("rd,hdf->rhf", rel_rows, self.VO, optimize=True)  # (R, H, d)
        b = self.W_pos[1] @ A + np.einsum("rh,rhf->rf", p_rel, rel_vo)
        h1 = np.einsum("d,rdf->rf", e, A) + b
        pre = h1 @ self.W_in + self.b_in  # (R, d_mlp)
        sigma = pre > 0
        if ties is not None:  # units on the region's boundary: either side, drawn at random
            tied = np.abs(pre) <= TIE * (1.0 + np.abs(h1).max())
            sigma = np.where(tied, ties.random(sigma.shape) < 0.5, sigma)
        return A, b, sigma


def _subject_program(
    frozen: _Frozen, e: np.ndarray, targets: np.ndarray, rel_rows: np.ndarray,
    margin: float, box: float, ties: np.random.Generator | None = None,
) -> tuple[Program, np.ndarray]:
    """The LP of one subject linearised at e, over ``x = (e_s, t)``; also its current margins."""
    A, b, sigma = frozen.linearise(e, rel_rows, ties)
    n_rel, d = b.shape
    n_out = frozen.W_U.shape[1]
    WoU = frozen.W_out @ frozen.W_U  # (d_mlp, n_out)
    G_rows, h_rows, current = [], [], []
    for r in range(n_rel):
        P = A[r] @ frozen.W_in  # (d, d_mlp): pre = e P + q
        q = b[r] @ frozen.W_in + frozen.b_in
        L = A[r] @ frozen.W_U + (P * sigma[r]) @ WoU  # (d, n_out): logits = e L + l
        l_vec = b[r] @ frozen.W_U + (q * sigma[r]) @ WoU + frozen.b_out @ frozen.W_U
        y = int(targets[r])
        rivals = np.delete(np.arange(n_out), y)
        dL = L[:, [y]] - L[:, rivals]  # (d, n_out - 1)
        dl = l_vec[y] - l_vec[rivals]
        # margin rows: t - e dL <= dl
        G_rows.append(np.hstack([-dL.T, np.ones((len(rivals), 1))]))
        h_rows.append(dl)
        current.append(e @ dL + dl)
    for r in range(n_rel):
        P = A[r] @ frozen.W_in
        q = b[r] @ frozen.W_in + frozen.b_in
        sign = np.where(sigma[r], -1.0, 1.0)  # on: -(e P + q) <= 0; off: e P + q <= 0
        G_rows.append(np.hstack([(P * sign).T, np.zeros((frozen.d_mlp, 1))]))
        h_rows.append(-sign * q)
    G, h = np.vstack(G_rows), np.concatenate(h_rows)
    per_rel = n_out - 1
    margins = np.concatenate(current)
    n_margin = n_rel * per_rel
    k = min(RIVALS, per_rel)
    initial = [r * per_rel + np.argsort(margins[r * per_rel:(r + 1) * per_rel])[:k]
               for r in range(n_rel)]
    initial.append(np.arange(n_margin, G.shape[0]))  # every sign row
    t_lo = min(float(margins.min()), 0.0) - 1.0
    lo = np.concatenate([np.full(d, -box), [t_lo]])
    hi = np.concatenate([np.full(d, box), [margin]])
    return Program(DenseRows(G, h), lo, hi, np.concatenate(initial)), margins


def reembed(
    model: OneLayerTransformer,
    facts: BijectionFacts,
    start: np.ndarray,
    margin: float,
    max_rounds: int = 4,
    settings: SolverSettings | None = None,
    box: float | None = None,
    batch: int = 4,
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
        batch: subjects per cvxpy solve.
        progress: called after each round.

    Returns:
        :class:`ReembedResult`; ``found`` only when the forward pass recalls every new fact.

    Raises:
        ValueError: shapes that do not match the model.
        SolverError: a solve did not end ``optimal``.
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
    frozen = _Frozen(model)
    bound = box or 2.0 * max(float(np.abs(start).max()), float(np.abs(frozen.W_E).max()))
    rel_rows = frozen.W_E[n + np.arange(facts.n_relations)] + frozen.W_pos[0]  # (R, d)
    objective = np.zeros(d + 1)
    objective[-1] = 1.0
    lp = WorkingSetLP(objective, settings or SolverSettings(), "P2 re-embedding", batch=batch)
    E, previous = start.copy(), start.copy()
    ties = np.random.default_rng(0)  # deterministic: the same call gives the same answer
    work = copy.deepcopy(model)
    forward = _forward_margins(work, facts, E)
    upper = np.full(n, np.inf)
    rounds_of = np.zeros(n, dtype=np.int64)
    violation = 0.0
    used = 0
    for round_ in range(1, max_rounds + 1):
        pending = np.flatnonzero(forward < margin * (1 - 1e-9))
        if pending.size == 0:
            break
        used = round_
        previous_round = E.copy()
        for chunk in np.array_split(pending, math.ceil(len(pending) / batch)):
            # programs are built per chunk: each holds R (N - 1 + d_mlp) dense rows
            programs = []
            for s in chunk:
                at = E[s] + (OVERSHOOT * (E[s] - previous[s]) if round_ > 1 else 0.0)
                targets = facts.answers(np.full(facts.n_relations, s),
                                        np.arange(facts.n_relations))
                program, _ = _subject_program(
                    frozen, np.clip(at, -bound, bound), targets, rel_rows, margin, bound,
                    ties if round_ > 1 else None,
                )
                programs.append(program)
            results = lp.solve_many(programs, add=facts.n_relations * RIVALS, max_rounds=30)
            for s, program, res in zip(chunk, programs, results, strict=True):
                raw = res.x
                assert isinstance(program.oracle, DenseRows)
                violation = max(
                    violation,
                    float(np.maximum(np.abs(raw[:-1]) - bound, 0).max()),
                    float(np.maximum(-program.oracle.slack(raw), 0).max()),
                )
                E[s] = np.clip(raw[:-1], -bound, bound)
                upper[s] = res.upper
                rounds_of[s] = round_
        previous = previous_round
        forward = _forward_margins(work, facts, E)
        if progress is not None:
            progress(round_, max_rounds)
    recall = exact_recall(work, facts.batches(BATCH), facts.n_facts)
    found = recall.correct == recall.total
    subjects = [
        SubjectStatus(int(s), bool(forward[s] > 0), float(forward[s]), float(upper[s]),
                      int(rounds_of[s]))
        for s in range(n)
    ]
    if found != all(st.found for st in subjects):  # internal invariant: two views of one pass
        raise AssertionError("P2: per-subject margins disagree with exact_recall")
    return ReembedResult(
        found=found, embeddings=E.copy() if found else None, subjects=subjects, rounds=used,
        max_violation=violation, accuracy=recall.accuracy, margin=recall.margin, model=work,
        solves=lp.solves,
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
