"""Mechanism measures on a model and its facts (docs/theory.md section 7), as pure functions.

Each measure takes ``(model, facts)`` and returns a :class:`MeasureResult`: a number, or
``underdetermined`` with the reason when there are too few subjects for its fit. Fits are
ordinary least squares in float64; held-out measures fit on half the subjects (a seeded split,
``Stream.SPLIT``) and score on the other half. Notation: ``e_s = W_E[s]`` (subject rows),
``u_j = W_U[:, j]`` (unembedding columns), ``pi_r`` the bijections.

- ``superposition_r2``: held-out R^2 of ``e_s ~ b + sum_r M_r u_{pi_r(s)}``; needs
  ``N/2 > R d + 1``.
- ``probe_accuracy``: per relation, an affine map ``e_s -> u_{pi_r(s)}`` fit on half the
  subjects; on the other half it decodes the nearest ``u_j`` (Euclidean); needs ``N/2 > d + 1``.
- ``selector_linearity``: per relation, held-out R^2 of an affine fit of the MLP output at
  query ``[r, s]`` on ``e_s``, averaged over relations; needs ``N/2 > d + 1``.
- ``gated_fraction``: share of MLP units off (active for at most 1% of subjects) for some
  relation and on (active for more) for another; needs ``N >= 100`` and ``R >= 2``.
- ``intervention_success``: with ``M_r`` fit on half the subjects, each held-out subject and
  relation gets ``e_s + M_r (u_j - u_{pi_r(s)})`` for a seeded ``j != pi_r(s)``; success when
  relation r now answers j and every other relation keeps its answer (real forward pass).
- ``transfer_accuracy``: new bijections, everything but the subject table frozen; subject rows
  re-initialised as ``b + sum_r M_r u_{pi'_r(s)}`` (``probe``, fit on every subject of the old
  facts), by P2 (``lp``: :mod:`verifier.convex.reembed`, started at the probe rows), or at
  random with the trained table's mean and spread (``random``, the control, about 1/N); exact
  recall of every new fact, no training.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from verifier.instances import BijectionFacts
from verifier.model import OneLayerTransformer
from verifier.recall import exact_recall, margins_of
from verifier.seeds import Stream, rng

if TYPE_CHECKING:
    from verifier.convex.solver import SolverSettings

GATE_THRESHOLD = 0.01  # a unit is off for a relation when active for at most this share
MIN_GATE_SUBJECTS = 100  # below this, "at most 1% of subjects" means "never"
BATCH = 4096
TransferMethod = Literal["probe", "lp", "random"]
LP_MARGIN = 1.0  # logit margin each P2 program asks for
LP_ROUNDS = 2  # P2 re-linearisations per subject (gd_geometric: 0.131 at 2, 0.134 at 4, 2x time)


@dataclass(frozen=True)
class MeasureResult:
    """One measure: ``value``, or ``underdetermined`` (the reason) and no value."""

    value: float | None
    underdetermined: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def too_few(reason: str) -> MeasureResult:
        """A measure that cannot be fit with this many subjects."""
        return MeasureResult(value=None, underdetermined=reason)


# --- requirements: the same rules preflight uses -------------------------------------------------


def fit_requirement(measure: str, n: int, n_rel: int, d: int) -> str | None:
    """Why ``measure`` is underdetermined at N = n, R = n_rel, or None if it is not.

    ``d`` is the number of free directions per attribute vector: ``d_model`` before training
    (THEORY.md's rule ``N/2 > R d + 1``), the rank of ``W_U`` on a given model (equal to
    ``d_model`` for a trained model; the answer-slot width m for G1, whose ``u_j`` span m dims).
    """
    half = n // 2
    if measure in ("superposition_r2", "intervention_success"):
        if half <= n_rel * d + 1:
            return (
                f"{measure} fits e_s ~ b + sum_r M_r u_(pi_r(s)) on N/2 subjects: expected "
                f"N/2 > R*d + 1 = {n_rel * d + 1} (d = {d}), got N/2 = {half}"
            )
    elif measure in ("probe_accuracy", "selector_linearity"):
        if half <= d + 1:
            return (
                f"{measure} fits an affine map of e_s on N/2 subjects: expected "
                f"N/2 > d + 1 = {d + 1}, got N/2 = {half}"
            )
    elif measure == "transfer_probe":
        if n <= n_rel * d + 1:
            return (
                f"probe transfer fits e_s ~ b + sum_r M_r u_(pi_r(s)) on all N subjects: "
                f"expected N > R*d + 1 = {n_rel * d + 1} (d = {d}), got N = {n}"
            )
    elif measure == "gated_fraction":
        if n < MIN_GATE_SUBJECTS:
            return (
                f"gated_fraction needs N >= {MIN_GATE_SUBJECTS} subjects for its 1% rule, "
                f"got N = {n}"
            )
        if n_rel < 2:
            return f"gated_fraction compares relations: expected R >= 2, got R = {n_rel}"
    return None


def unembedding_rank(model: OneLayerTransformer) -> int:
    """Numerical rank of ``W_U`` (float64 SVD, numpy's default tolerance)."""
    return int(np.linalg.matrix_rank(model.W_U.detach().double().numpy()))


# --- helpers -------------------------------------------------------------------------------------


def as_float64(model: OneLayerTransformer) -> OneLayerTransformer:
    """A float64 copy of ``model`` (the model itself when it is float64 already)."""
    if model.W_E.dtype == torch.float64:
        return model
    return copy.deepcopy(model).double()


def subject_table(model: OneLayerTransformer, facts: BijectionFacts) -> np.ndarray:
    """``(N, d)`` float64 subject rows ``e_s``."""
    return model.W_E.detach()[: facts.n_entities].double().numpy().copy()


def unembedding(model: OneLayerTransformer) -> np.ndarray:
    """``(n_out, d)`` float64 rows ``u_j`` (columns of ``W_U``)."""
    return model.W_U.detach().double().numpy().T.copy()


def split(facts: BijectionFacts) -> tuple[np.ndarray, np.ndarray]:
    """Seeded halves of the subjects: (fit, held out)."""
    order = rng(facts.seed, Stream.SPLIT, 0).permutation(facts.n_entities)
    half = facts.n_entities // 2
    return np.sort(order[:half]), np.sort(order[half:])


def _affine(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((x.shape[0], 1)), x], axis=1)


def lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares ``W`` minimising ``|x W - y|`` (minimum norm when rank-deficient)."""
    solution: np.ndarray = np.linalg.lstsq(x, y, rcond=None)[0]
    return solution


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Pooled ``1 - sum|y - pred|^2 / sum|y - mean(y)|^2`` over rows and columns."""
    total = float(((y - y.mean(axis=0)) ** 2).sum())
    if total == 0.0:
        return 1.0 if float(((y - pred) ** 2).sum()) == 0.0 else -np.inf
    return 1.0 - float(((y - pred) ** 2).sum()) / total


def superposition_design(
    model: OneLayerTransformer, facts: BijectionFacts, perms: np.ndarray | None = None
) -> np.ndarray:
    """``(N, 1 + R d)`` rows ``[1, u_{pi_0(s)}, .., u_{pi_{R-1}(s)}]`` (``perms`` overrides pi)."""
    u = unembedding(model)
    target_facts = facts if perms is None else facts.with_perms(perms)
    subjects = np.arange(facts.n_entities)
    blocks = [u[target_facts.answers(subjects, r)] for r in range(facts.n_relations)]
    return _affine(np.concatenate(blocks, axis=1))


def superposition_fit(
    model: OneLayerTransformer, facts: BijectionFacts, subjects: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(b (d,), M (R, d, d))`` of ``e_s ~ b + sum_r M_r u_{pi_r(s)}`` fit on ``subjects``."""
    x = superposition_design(model, facts)[subjects]
    w = lstsq(x, subject_table(model, facts)[subjects])  # (1 + R d, d)
    d = w.shape[1]
    m = np.stack([w[1 + r * d : 1 + (r + 1) * d].T for r in range(facts.n_relations)])
    return w[0], m


@torch.inference_mode()
def logits_with_subjects(
    model: OneLayerTransformer, embeddings: np.ndarray, relations: np.ndarray, n_entities: int
) -> torch.Tensor:
    """Logits of ``[r, s]`` with the subject row replaced by ``embeddings`` (float64).

    The model's own embed, attention, MLP and unembedding, with h0 at the subject's position
    set to ``embeddings + W_pos[1]``; with ``embeddings = W_E[s]`` it is ``model([r, s])``.
    """
    m64 = as_float64(model)
    out = []
    for start in range(0, len(relations), BATCH):
        rel = relations[start : start + BATCH]
        tokens = torch.from_numpy(np.stack([n_entities + rel, np.zeros_like(rel)], axis=1))
        h0 = m64.embed(tokens)
        h0[:, 1] = torch.from_numpy(embeddings[start : start + BATCH]) + m64.W_pos[1]
        h1 = h0[:, -1:] + m64.attention(h0, last_only=True)
        out.append(((h1 + m64.mlp(h1)) @ m64.W_U)[:, -1])
    return torch.cat(out)


@torch.inference_mode()
def mlp_at_queries(
    model: OneLayerTransformer, facts: BijectionFacts, relation: int
) -> tuple[np.ndarray, np.ndarray]:
    """MLP pre-activations ``(N, d_mlp)`` and outputs ``(N, d)`` at ``[relation, s]``, float64."""
    m64 = as_float64(model)
    subjects = np.arange(facts.n_entities)
    tokens = facts.tokens(subjects, np.full_like(subjects, relation))
    h1 = m64.residual(tokens)[:, -1]  # (N, d)
    return m64.mlp_pre(h1).numpy(), m64.mlp(h1).numpy()


# --- the measures --------------------------------------------------------------------------------


def superposition_r2(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Held-out R^2 of ``e_s ~ b + sum_r M_r u_{pi_r(s)}`` (fit on half, scored on the rest)."""
    d = unembedding_rank(model)
    if why := fit_requirement("superposition_r2", facts.n_entities, facts.n_relations, d):
        return MeasureResult.too_few(why)
    fit, held = split(facts)
    x = superposition_design(model, facts)
    e = subject_table(model, facts)
    w = lstsq(x[fit], e[fit])
    return MeasureResult(
        value=r2(e[held], x[held] @ w),
        detail={"train_r2": r2(e[fit], x[fit] @ w), "fit_subjects": len(fit)},
    )


def probe_accuracy(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Per relation, an affine probe ``e_s -> u_{pi_r(s)}`` decodes held-out subjects."""
    d = model.cfg.d_model
    if why := fit_requirement("probe_accuracy", facts.n_entities, facts.n_relations, d):
        return MeasureResult.too_few(why)
    fit, held = split(facts)
    e, u = _affine(subject_table(model, facts)), unembedding(model)
    per_relation = []
    for r in range(facts.n_relations):
        targets = facts.answers(np.arange(facts.n_entities), r)
        w = lstsq(e[fit], u[targets[fit]])
        pred = e[held] @ w  # (held, d)
        dist = (pred**2).sum(1)[:, None] - 2 * pred @ u.T + (u**2).sum(1)[None, :]
        per_relation.append(float((dist.argmin(axis=1) == targets[held]).mean()))
    return MeasureResult(value=float(np.mean(per_relation)), detail={"per_relation": per_relation})


def selector_linearity(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Per relation, held-out R^2 of an affine fit of the MLP output on ``e_s``; the mean."""
    d = model.cfg.d_model
    if why := fit_requirement("selector_linearity", facts.n_entities, facts.n_relations, d):
        return MeasureResult.too_few(why)
    fit, held = split(facts)
    e = _affine(subject_table(model, facts))
    per_relation = []
    for r in range(facts.n_relations):
        out = mlp_at_queries(model, facts, r)[1]
        w = lstsq(e[fit], out[fit])
        per_relation.append(r2(out[held], e[held] @ w))
    return MeasureResult(value=float(np.mean(per_relation)), detail={"per_relation": per_relation})


def gated_fraction(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Share of MLP units off (active for <= 1% of subjects) for one relation, on for another."""
    if why := fit_requirement("gated_fraction", facts.n_entities, facts.n_relations, 0):
        return MeasureResult.too_few(why)
    active = np.stack(
        [(mlp_at_queries(model, facts, r)[0] > 0).mean(axis=0) for r in range(facts.n_relations)]
    )  # (R, d_mlp): share of subjects for which each unit fires
    off = active <= GATE_THRESHOLD
    gated = off.any(axis=0) & (~off).any(axis=0)
    return MeasureResult(
        value=float(gated.mean()),
        detail={
            "units": int(active.shape[1]),
            "gated": int(gated.sum()),
            "dead": int(off.all(axis=0).sum()),
            "always_on": int((~off).all(axis=0).sum()),
        },
    )


def intervention_success(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Held-out subjects: swap relation r's component for a seeded new answer j; all R hold?"""
    d, n, n_rel = unembedding_rank(model), facts.n_entities, facts.n_relations
    if why := fit_requirement("intervention_success", n, n_rel, d):
        return MeasureResult.too_few(why)
    fit, held = split(facts)
    _, m = superposition_fit(model, facts, fit)
    e, u = subject_table(model, facts), unembedding(model)
    g = rng(facts.seed, Stream.SPLIT, 1)
    rows, expected = [], []
    for s in held:
        answers = np.array([facts.answers(s, r) for r in range(n_rel)])
        for r in range(n_rel):
            shift = 1 + int(g.integers(0, n - 1))  # j != pi_r(s), uniform over the others
            j = int(answers[r] - facts.perms[r, s] + (facts.perms[r, s] + shift) % n)
            rows.append(e[s] + m[r] @ (u[j] - u[answers[r]]))
            new = answers.copy()
            new[r] = j
            expected.append(new)
    emb = np.repeat(np.stack(rows), n_rel, axis=0)  # each intervened row, asked every relation
    rel = np.tile(np.arange(n_rel), len(rows))
    targets = torch.from_numpy(np.concatenate(expected))
    ok = (margins_of(logits_with_subjects(model, emb, rel, n), targets)[0] > 0).numpy()
    ok = ok.reshape(len(rows), n_rel)  # (intervention, asked relation)
    changed = np.tile(np.arange(n_rel), len(held))  # the relation each intervention changed
    hit = ok[np.arange(len(rows)), changed]
    kept = np.delete(ok, changed + n_rel * np.arange(len(rows))).reshape(len(rows), n_rel - 1)
    base = logits_with_subjects(
        model, np.repeat(e[held], n_rel, axis=0), np.tile(np.arange(n_rel), len(held)), n
    )
    base_targets = torch.from_numpy(
        np.concatenate([[facts.answers(s, r) for r in range(n_rel)] for s in held])
    )
    return MeasureResult(
        value=float(ok.all(axis=1).mean()),
        detail={
            "interventions": len(rows),
            "target_hit": float(hit.mean()),
            "others_kept": float(kept.mean()) if kept.size else 1.0,
            "held_out_accuracy_before": float(
                (margins_of(base, base_targets)[0] > 0).float().mean()
            ),
        },
    )


def new_bijections(facts: BijectionFacts, transfer_seed: int) -> BijectionFacts:
    """Fresh bijections ``pi'_r`` from ``Stream.TRANSFER`` (instance seed, transfer seed)."""
    perms = np.stack(
        [
            rng(facts.seed, Stream.TRANSFER, transfer_seed, r).permutation(facts.n_entities)
            for r in range(facts.n_relations)
        ]
    )
    return facts.with_perms(perms)


def transfer_accuracy(
    model: OneLayerTransformer,
    facts: BijectionFacts,
    new_facts: BijectionFacts,
    method: TransferMethod,
    seed: int = 0,
    settings: SolverSettings | None = None,
) -> MeasureResult:
    """Exact recall of ``new_facts`` with only the subject rows re-initialised, no training.

    Args:
        model: the trained model (attention, MLP, unembedding are kept as they are).
        facts: the facts it was trained on (the probe is fit on these).
        new_facts: the same sizes with new bijections.
        method: ``probe``, ``lp`` (P2) or ``random`` (the control).
        seed: seed of the random control's draw.
        settings: ``lp``: P2's solver order and time limit (default :class:`SolverSettings`).

    Raises:
        SolverError: ``lp``: no solver answered a P2 solve ``optimal``.
    """
    n, n_rel, d = facts.n_entities, facts.n_relations, unembedding_rank(model)
    e = subject_table(model, facts)
    detail: dict[str, Any] = {"method": method}
    if method == "probe":
        if why := fit_requirement("transfer_probe", n, n_rel, d):
            return MeasureResult.too_few(why)
        x = superposition_design(model, facts)
        w = lstsq(x, e)
        detail["fit_r2"] = r2(e, x @ w)
        rows = superposition_design(model, facts, new_facts.perms) @ w
    elif method == "random":
        g = rng(seed, Stream.TRANSFER, 1_000_000)  # apart from the bijection sub-streams
        rows = e.mean(axis=0) + g.standard_normal(e.shape) * e.std(axis=0)
    else:
        from verifier.convex.reembed import reembed

        start = e
        if fit_requirement("transfer_probe", n, n_rel, d) is None:  # probe start when determined
            x = superposition_design(model, facts)
            start = superposition_design(model, facts, new_facts.perms) @ lstsq(x, e)
        found = reembed(
            as_float64(model),
            new_facts,
            start,
            margin=LP_MARGIN,
            max_rounds=LP_ROUNDS,
            settings=settings,
        )
        not_found = [st.subject for st in found.subjects if not st.found]
        detail.update(
            {
                "lp_found": found.found,
                "lp_rounds": found.rounds,
                "lp_solves": found.solves,
                "lp_margin_asked": LP_MARGIN,
                "lp_rows_used": found.rows_used,
                "lp_max_violation": found.max_violation,
                "lp_solvers": list(found.solvers),
                "lp_subjects_not_found": len(not_found),
            }
        )
        rows = found.model.W_E.detach()[:n].double().numpy()
    m64 = copy.deepcopy(as_float64(model))
    with torch.no_grad():
        m64.W_E[:n] = torch.from_numpy(rows)
    result = exact_recall(m64, new_facts.batches(BATCH), new_facts.n_facts)
    detail.update({"margin": result.margin, "correct": result.correct, "facts": result.total})
    return MeasureResult(value=result.accuracy, detail=detail)
