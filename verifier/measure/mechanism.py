"""Mechanism measures on a model and its facts (docs/theory.md section 7), as pure functions.

Each measure takes ``(model, facts)`` and returns a :class:`MeasureResult`: a number, or
``underdetermined`` with the reason when there are too few subjects for its fit. Fits are
ordinary least squares in float64. Held-out measures use K-fold cross-validation over subjects
(K = :data:`FOLDS` = 8, a seeded partition from ``Stream.SPLIT``): every subject is scored once,
by the fit on the other folds. A half split fits ``R d + 1`` regressors on only ``N/2`` subjects
and is biased low (population R^2 0.90 scores 0.80; 8 folds 0.86); it stays in the evidence.
Notation: ``e_s = W_E[s]`` (subject rows), ``u_j = W_U[:, j]`` (unembedding columns), ``pi_r`` the
bijections, ``b + sum_r M_r u_{pi_r(s)}`` the superposition fit (``M_r`` d x d).

- ``superposition_r2``: cross-validated R^2 of ``e_s ~ b + sum_r M_r u_{pi_r(s)}``, pooled over
  rows and columns; needs ``(1 - 1/K) N > R d + 1`` (d: the rank of ``W_U``).
- ``probe_accuracy`` (component decoding): with the fit from the other folds, relation r's answer
  for subject s is ``argmin_j |e_s - b - M_r u_j|``; the share of (s, r) decoded right.
- ``functional_superposition``: each subject row replaced by its superposition fitted on the
  other folds, ``b + sum_r M_r u_{pi_r(s)}``; the share of that subject's own facts recalled
  exactly through the real forward pass.
- ``selector_linearity``: per relation, cross-validated R^2 of an affine fit of the MLP output
  at query ``[r, s]`` on ``e_s``, averaged over relations; needs ``(1 - 1/K) N > d + 1``.
- ``gated_fraction`` (hard gating): share of MLP units off (active for at most 1% of subjects)
  for some relation and on (active for more) for another; needs ``N >= 100`` and ``R >= 2``. The
  evidence holds every unit's activation rate per relation.
- ``relation_gating`` (graded gating): with ``p_ir`` the share of subjects for which unit i
  fires under relation r, ``G = sum_i (max_r p_ir - min_r p_ir) / sum_i max_r p_ir``, corrected
  for chance as ``(G - G0) / (1 - G0)``, ``G0`` the mean G over seeded per-subject shuffles of
  the relation labels; 1 for a hard selector, 0 for an MLP blind to the relation. A training
  claim also reports it on the untrained model of the same seed (``relation_gating_init``).
- ``relu_necessity``: the MLP replaced by an affine map of its input ``h1``, fit (least
  squares on its output) on the other folds; with ``a`` the exact recall of the held-out facts
  with one map per relation and ``b`` that with one map for all relations (the evidence holds
  both), ``(a - b) / (1 - b)``.
- ``intervention_success``: with ``M_r`` from the other folds, each subject and relation gets
  ``e_s + M_r (u_j - u_{pi_r(s)})`` for a seeded ``j != pi_r(s)``; success when relation r now
  answers j and every other relation keeps its answer (real forward pass).
- ``transfer_accuracy``: new bijections, everything but the subject table frozen; subject rows
  re-initialised as ``b + sum_r M_r u_{pi'_r(s)}`` (``probe``, fit on every subject of the old
  facts), by P2 (``lp``: :mod:`verifier.convex.reembed`, started at the probe rows), or at
  random with the trained table's mean and spread (``random``, the control, about 1/N); exact
  recall of every new fact, no training. (``relearn`` trains the subject table:
  :mod:`verifier.train.relearn`.)
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, ParamSpec, Protocol, TypeVar

import numpy as np
import torch
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from verifier.errors import SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.measure.recall import exact_recall, margins_of
from verifier.measure.registry import INIT_MEASURES, MECHANISM_MEASURES
from verifier.model import OneLayerTransformer
from verifier.seeds import Stream, rng

if TYPE_CHECKING:
    from verifier.convex.solver import SolverSettings

GATE_SHUFFLES = 8  # per-subject relation-label shuffles averaged for relation_gating's chance
GATE_THRESHOLD = 0.01  # a unit is off for a relation when active for at most this share
MIN_GATE_SUBJECTS = 100  # below this, "at most 1% of subjects" means "never"
FOLDS = 8  # K of the K-fold cross-validation over subjects (docs/theory.md section 7)
BATCH = 4096
TransferMethod = Literal["probe", "lp", "random"]
LP_MARGIN = 1.0  # logit margin each P2 program asks for
LP_ROUNDS = 2  # P2 re-linearisations per subject (gd_geometric: 0.131 at 2, 0.134 at 4, 2x time)


class Embedded(Protocol):
    """What the embedding-level measures read: ``W_E`` ``(n_vocab, d)``, subject rows first, and
    ``W_U`` ``(d, n_out)`` (a one-layer model, or another architecture read from a file)."""

    @property
    def W_E(self) -> torch.Tensor: ...

    @property
    def W_U(self) -> torch.Tensor: ...


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


P = ParamSpec("P")
T = TypeVar("T")


def one_blas_thread(fn: Callable[P, T]) -> Callable[P, T]:
    """Run ``fn`` with numpy's BLAS on one thread: the fits here are small (N x (1 + R d)),
    and OpenBLAS's threads cost more than they give (40x slower on a busy 2-core machine)."""

    @functools.wraps(fn)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapped


# --- requirements: the same rules preflight uses -------------------------------------------------


def fit_subjects(n: int, folds: int = FOLDS) -> int:
    """Subjects in the smallest training set of a ``folds``-fold split of ``n``: n - ceil(n/K)."""
    return n - -(-n // folds)


def refuse_underdetermined(
    claim_id: str, measures: Iterable[str], n: int, n_rel: int, d: int, advice: str
) -> None:
    """Refuse, naming ``<claim_id>.expect.<measure>``, the first mechanism measure an
    expectation names that :func:`fit_requirement` finds underdetermined at (n, n_rel, d).

    Raises:
        SpecError: ``underdetermined: <why>; <advice>``.
    """
    for measure in measures:
        if measure in MEASURES and (why := fit_requirement(measure, n, n_rel, d)) is not None:
            raise SpecError(f"underdetermined: {why}; {advice}", key=f"{claim_id}.expect.{measure}")


def fit_requirement(measure: str, n: int, n_rel: int, d: int) -> str | None:
    """Why ``measure`` is underdetermined at N = n, R = n_rel, or None if it is not.

    ``d`` is the number of free directions per attribute vector: ``d_model`` before training,
    the rank of ``W_U`` on a given model (equal to ``d_model`` for a trained model; the code
    width m for G1 and the compact construction, whose ``u_j`` span m dims). Cross-validated
    fits train on ``n - ceil(n/K)`` subjects (K = 8): docs/theory.md's rule
    ``(1 - 1/K) N > R d + 1``.
    """
    train = fit_subjects(n)
    if measure in (
        "superposition_r2",
        "probe_accuracy",
        "functional_superposition",
        "intervention_success",
    ):
        if train <= n_rel * d + 1:
            return (
                f"{measure} fits e_s ~ b + sum_r M_r u_(pi_r(s)) on the other {FOLDS - 1} of "
                f"{FOLDS} folds: expected N - ceil(N/{FOLDS}) > R*d + 1 = {n_rel * d + 1} "
                f"(d = {d}), got {train} subjects (N = {n})"
            )
    elif measure in ("relation_gating", "relation_gating_init"):
        if n_rel < 2:
            return f"{measure} compares relations: expected R >= 2, got R = {n_rel}"
    elif measure == "relu_necessity":
        if n_rel < 2:
            return f"{measure} compares relations: expected R >= 2, got R = {n_rel}"
        if train <= d + 1:
            return (
                f"{measure} fits an affine map of the MLP input on the other {FOLDS - 1} of "
                f"{FOLDS} folds: expected N - ceil(N/{FOLDS}) > d + 1 = {d + 1}, got {train} "
                f"subjects (N = {n})"
            )
    elif measure == "selector_linearity":
        if train <= d + 1:
            return (
                f"{measure} fits an affine map of e_s on the other {FOLDS - 1} of {FOLDS} folds: "
                f"expected N - ceil(N/{FOLDS}) > d + 1 = {d + 1}, got {train} subjects (N = {n})"
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


def unembedding_rank(model: Embedded) -> int:
    """Numerical rank of ``W_U`` (float64 SVD, numpy's default tolerance)."""
    return int(np.linalg.matrix_rank(model.W_U.detach().double().numpy()))


# --- helpers -------------------------------------------------------------------------------------


def as_float64(model: OneLayerTransformer) -> OneLayerTransformer:
    """A float64 copy of ``model`` (the model itself when it is float64 already)."""
    if model.W_E.dtype == torch.float64:
        return model
    return copy.deepcopy(model).double()


def subject_table(model: Embedded, facts: BijectionFacts) -> np.ndarray:
    """``(N, d)`` float64 subject rows ``e_s``."""
    return model.W_E.detach()[: facts.n_entities].double().numpy().copy()


def unembedding(model: Embedded) -> np.ndarray:
    """``(n_out, d)`` float64 rows ``u_j`` (columns of ``W_U``)."""
    return model.W_U.detach().double().numpy().T.copy()


def split(facts: BijectionFacts) -> tuple[np.ndarray, np.ndarray]:
    """Seeded halves of the subjects: (fit, held out). Kept for the half-split evidence."""
    order = rng(facts.seed, Stream.SPLIT, 0).permutation(facts.n_entities)
    half = facts.n_entities // 2
    return np.sort(order[:half]), np.sort(order[half:])


def folds(facts: BijectionFacts, k: int = FOLDS) -> list[np.ndarray]:
    """A seeded partition of the subjects into ``k`` folds of near-equal size (sorted)."""
    order = rng(facts.seed, Stream.SPLIT, 0).permutation(facts.n_entities)
    return [np.sort(part) for part in np.array_split(order, k)]


def _affine(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((x.shape[0], 1)), x], axis=1)


def lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares ``W`` minimising ``|x W - y|`` (minimum norm when rank-deficient)."""
    solution: np.ndarray = np.linalg.lstsq(x, y, rcond=None)[0]
    return solution


def cross_validated(x: np.ndarray, y: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """Out-of-fold predictions: row i of the result is ``x[i] W``, W fit without i's fold."""
    pred = np.empty_like(y)
    everyone = np.ones(len(x), dtype=bool)
    for held in parts:
        train = everyone.copy()
        train[held] = False
        pred[held] = x[held] @ lstsq(x[train], y[train])
    return pred


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Pooled ``1 - sum|y - pred|^2 / sum|y - mean(y)|^2`` over rows and columns."""
    total = float(((y - y.mean(axis=0)) ** 2).sum())
    if total == 0.0:
        return 1.0 if float(((y - pred) ** 2).sum()) == 0.0 else -np.inf
    return 1.0 - float(((y - pred) ** 2).sum()) / total


def adjusted_r2(value: float, n: int, regressors: int) -> float:
    """``1 - (1 - R^2) (n - 1) / (n - p - 1)``: in-sample R^2 corrected for p regressors."""
    if n - regressors - 1 <= 0:
        return float("nan")
    return 1.0 - (1.0 - value) * (n - 1) / (n - regressors - 1)


def superposition_design(
    model: Embedded, facts: BijectionFacts, perms: np.ndarray | None = None
) -> np.ndarray:
    """``(N, 1 + R d)`` rows ``[1, u_{pi_0(s)}, .., u_{pi_{R-1}(s)}]`` (``perms`` overrides pi)."""
    u = unembedding(model)
    target_facts = facts if perms is None else facts.with_perms(perms)
    subjects = np.arange(facts.n_entities)
    blocks = [u[target_facts.answers(subjects, r)] for r in range(facts.n_relations)]
    return _affine(np.concatenate(blocks, axis=1))


def split_fit(w: np.ndarray, n_rel: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b (d,), M (R, d, d))`` from the stacked least-squares solution ``(1 + R d, d)``."""
    d = w.shape[1]
    maps = np.stack([w[1 + r * d : 1 + (r + 1) * d].T for r in range(n_rel)])
    return w[0], maps


def superposition_fit(
    model: OneLayerTransformer, facts: BijectionFacts, subjects: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(b (d,), M (R, d, d))`` of ``e_s ~ b + sum_r M_r u_{pi_r(s)}`` fit on ``subjects``."""
    x = superposition_design(model, facts)[subjects]
    w = lstsq(x, subject_table(model, facts)[subjects])  # (1 + R d, d)
    return split_fit(w, facts.n_relations)


def fold_fits(
    model: Embedded, facts: BijectionFacts
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per fold: (held-out subjects, b, M) with ``(b, M)`` fit on the other folds."""
    x, e = superposition_design(model, facts), subject_table(model, facts)
    everyone = np.ones(facts.n_entities, dtype=bool)
    out = []
    for held in folds(facts):
        train = everyone.copy()
        train[held] = False
        b, maps = split_fit(lstsq(x[train], e[train]), facts.n_relations)
        out.append((held, b, maps))
    return out


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


def recalled_with_subjects(
    model: OneLayerTransformer, facts: BijectionFacts, rows: np.ndarray, subjects: np.ndarray
) -> np.ndarray:
    """``(len(subjects), R)`` bools: fact ``(s, r)`` recalled with ``e_s`` replaced by its row."""
    n_rel = facts.n_relations
    emb = np.repeat(rows, n_rel, axis=0)
    rel = np.tile(np.arange(n_rel), len(subjects))
    targets = torch.from_numpy(facts.answers(np.repeat(subjects, n_rel), rel))
    logits = logits_with_subjects(model, emb, rel, facts.n_entities)
    ok: np.ndarray = (margins_of(logits, targets)[0] > 0).numpy()
    return ok.reshape(len(subjects), n_rel)


class MlpAtQueries(NamedTuple):
    """The MLP at the queries ``[relation, s]`` of every subject, float64: its input ``h1``
    ``(N, d)``, pre-activations ``pre`` ``(N, d_mlp)`` and output ``out`` ``(N, d)``."""

    h1: np.ndarray
    pre: np.ndarray
    out: np.ndarray


@torch.inference_mode()
def mlp_at_queries(
    model: OneLayerTransformer, facts: BijectionFacts, relation: int
) -> MlpAtQueries:
    """The MLP's input, pre-activations and output at ``[relation, s]`` for every subject s."""
    m64 = as_float64(model)
    subjects = np.arange(facts.n_entities)
    tokens = facts.tokens(subjects, np.full_like(subjects, relation))
    h1 = m64.residual(tokens)[:, -1]  # (N, d)
    return MlpAtQueries(h1.numpy(), m64.mlp_pre(h1).numpy(), m64.mlp(h1).numpy())


# --- the measures --------------------------------------------------------------------------------


def _requirement(measure: str, model: Embedded, facts: BijectionFacts) -> str | None:
    d = unembedding_rank(model)
    return fit_requirement(measure, facts.n_entities, facts.n_relations, d)


@one_blas_thread
def superposition_r2(model: Embedded, facts: BijectionFacts) -> MeasureResult:
    """Cross-validated R^2 of ``e_s ~ b + sum_r M_r u_{pi_r(s)}`` (K = 8 folds over subjects).

    The evidence adds the half-split figure (fit on half, scored on the rest), the in-sample
    R^2 and its adjusted value, and each fold's R^2.
    """
    if why := _requirement("superposition_r2", model, facts):
        return MeasureResult.too_few(why)
    x, e = superposition_design(model, facts), subject_table(model, facts)
    parts = folds(facts)
    pred = cross_validated(x, e, parts)
    fit, held = split(facts)
    half = r2(e[held], x[held] @ lstsq(x[fit], e[fit]))
    if len(fit) <= facts.n_relations * unembedding_rank(model) + 1:
        half_split: float | None = None  # the half split alone would be underdetermined
    else:
        half_split = half
    in_sample = r2(e, x @ lstsq(x, e))
    regressors = facts.n_relations * unembedding_rank(model)
    return MeasureResult(
        value=r2(e, pred),
        detail={
            "folds": FOLDS,
            "fold_r2": [r2(e[p], pred[p]) for p in parts],
            "half_split_r2": half_split,
            "in_sample_r2": in_sample,
            "adjusted_r2": adjusted_r2(in_sample, facts.n_entities, regressors),
        },
    )


@one_blas_thread
def probe_accuracy(model: Embedded, facts: BijectionFacts) -> MeasureResult:
    """Component decoding: relation r's answer is ``argmin_j |e_s - b - M_r u_j|`` (held out)."""
    if why := _requirement("probe_accuracy", model, facts):
        return MeasureResult.too_few(why)
    e, u = subject_table(model, facts), unembedding(model)
    n_rel = facts.n_relations
    right = np.zeros((facts.n_entities, n_rel), dtype=bool)
    for held, b, maps in fold_fits(model, facts):
        c = e[held] - b  # (held, d)
        for r in range(n_rel):
            v = u @ maps[r].T  # (n_out, d): M_r u_j for every attribute j
            dist = -2 * c @ v.T + (v**2).sum(1)[None, :]  # |c - M_r u_j|^2 - |c|^2
            right[held, r] = dist.argmin(axis=1) == facts.answers(held, r)
    per_relation = right.mean(axis=0)
    return MeasureResult(
        value=float(right.mean()),
        detail={"per_relation": [float(a) for a in per_relation], "folds": FOLDS},
    )


@one_blas_thread
def functional_superposition(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Share of facts recalled with each subject row replaced by its fitted superposition.

    Row ``e_s`` becomes ``b + sum_r M_r u_{pi_r(s)}`` with ``(b, M)`` fit on the other folds; the
    subject's own R facts then go through the real forward pass (float64, strict argmax).
    """
    if why := _requirement("functional_superposition", model, facts):
        return MeasureResult.too_few(why)
    x = superposition_design(model, facts)
    e = subject_table(model, facts)
    pred = cross_validated(x, e, folds(facts))
    subjects = np.arange(facts.n_entities)
    ok = recalled_with_subjects(model, facts, pred, subjects)  # (N, R)
    own = recalled_with_subjects(model, facts, e, subjects)
    return MeasureResult(
        value=float(ok.mean()),
        detail={
            "per_relation": [float(a) for a in ok.mean(axis=0)],
            "own_rows_accuracy": float(own.mean()),
            "folds": FOLDS,
        },
    )


@one_blas_thread
def selector_linearity(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Per relation, cross-validated R^2 of an affine fit of the MLP output on ``e_s``; the mean."""
    d = model.cfg.d_model
    if why := fit_requirement("selector_linearity", facts.n_entities, facts.n_relations, d):
        return MeasureResult.too_few(why)
    parts = folds(facts)
    e = _affine(subject_table(model, facts))
    per_relation = []
    for r in range(facts.n_relations):
        out = mlp_at_queries(model, facts, r).out
        per_relation.append(r2(out, cross_validated(e, out, parts)))
    return MeasureResult(value=float(np.mean(per_relation)), detail={"per_relation": per_relation})


@one_blas_thread
def gated_fraction(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Share of MLP units off (active for <= 1% of subjects) for one relation, on for another.

    ``detail["activation_rate"]`` is the ``(R, d_mlp)`` share of subjects for which each unit
    fires under each relation (the report draws it as a heatmap).
    """
    if why := fit_requirement("gated_fraction", facts.n_entities, facts.n_relations, 0):
        return MeasureResult.too_few(why)
    active = np.stack(
        [(mlp_at_queries(model, facts, r).pre > 0).mean(axis=0) for r in range(facts.n_relations)]
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
            "activation_rate": [[round(float(a), 4) for a in row] for row in active],
        },
    )


@torch.inference_mode()
def unit_firing(model: OneLayerTransformer, facts: BijectionFacts) -> np.ndarray:
    """``(R, N, d_mlp)`` bools: MLP unit i fires (pre-activation > 0) at query ``[r, s]``."""
    return np.stack([mlp_at_queries(model, facts, r).pre > 0 for r in range(facts.n_relations)])


def graded_gate(rates: np.ndarray) -> float | None:
    """``sum_i (max_r p_ir - min_r p_ir) / sum_i max_r p_ir`` of ``(R, d_mlp)`` rates ``p``;
    None when no unit ever fires."""
    top = float(rates.max(axis=0).sum())
    if top == 0.0:
        return None
    return float((rates.max(axis=0) - rates.min(axis=0)).sum()) / top


@one_blas_thread
def relation_gating(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Graded, chance-corrected relation gating of the MLP units: at most 1, about 0 by chance.

    ``p_ir`` (``(R, d_mlp)``): the share of subjects for which unit i fires under relation r.
    ``G = sum_i (max_r p_ir - min_r p_ir) / sum_i max_r p_ir`` is 1 when every unit that fires
    for some relation never fires for another, and 0 when every unit fires equally often under
    every relation. The chance level ``G0`` is the mean G of :data:`GATE_SHUFFLES` seeded
    shuffles (``Stream.SPLIT``) that permute the relation labels of each subject's R firing
    patterns independently, which keeps each subject's patterns and removes their relation; the
    value is ``(G - G0) / (1 - G0)``. Subjects sampling a relation-blind unit unevenly give
    ``G > 0`` at finite N; the shuffle gives them the same ``G0``. Undefined when ``G0 = 1``,
    as when every unit fires for one subject only (a key-value memory): no shuffle can then
    tell a relation's unit from chance.
    """
    if why := fit_requirement("relation_gating", facts.n_entities, facts.n_relations, 0):
        return MeasureResult.too_few(why)
    fires = unit_firing(model, facts)  # (R, N, d_mlp)
    gate = corrected_gate(fires, facts.seed)
    if isinstance(gate, str):
        return MeasureResult.too_few(f"relation_gating: {gate}")
    value, detail = gate
    detail["dead"] = int((~fires.any(axis=(0, 1))).sum())
    return MeasureResult(value=value, detail=detail)


def corrected_gate(fires: np.ndarray, seed: int) -> tuple[float, dict[str, Any]] | str:
    """``(G - G0) / (1 - G0)`` of ``(R, N, units)`` firing bools and its evidence, or why it is
    undefined. ``G0``: the mean G over :data:`GATE_SHUFFLES` shuffles from
    ``(seed, Stream.SPLIT, 2, k)``, each permuting every subject's R relation labels."""
    n_rel, n = fires.shape[:2]
    raw = graded_gate(fires.mean(axis=1))
    if raw is None:
        return "no MLP unit fires for any query"
    chance = []
    for k in range(GATE_SHUFFLES):
        order = rng(seed, Stream.SPLIT, 2, k).permuted(np.tile(np.arange(n_rel), (n, 1)), axis=1)
        shuffled = fires[order.T, np.arange(n)[None, :]]  # label r of s: relation order[s, r]
        chance.append(graded_gate(shuffled.mean(axis=1)) or 0.0)
    g0 = float(np.mean(chance))
    if g0 >= 1.0:
        return "the shuffled chance level is 1"
    detail: dict[str, Any] = {
        "raw": raw,
        "chance": g0,
        "chance_shuffles": chance,
        "units": int(fires.shape[2]),
    }
    return (raw - g0) / (1.0 - g0), detail


@one_blas_thread
def relu_necessity(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """How much of held-out recall needs the MLP to switch affine maps by relation.

    The MLP's output at ``[r, s]`` is replaced by ``c + A h1`` (``h1`` its input, ``(A, c)``
    the least-squares fit of its output on the other folds' subjects) and the logits are
    ``(h1 + c + A h1) W_U``. ``a`` (``per_relation_recall``): exact recall of the held-out facts
    with one map per relation, each fit on that relation's queries; ``b`` (``shared_recall``):
    with one map fit on every relation's queries. The value is ``(a - b) / (1 - b)``: the share
    of the facts one affine map misses that a relation switch of affine maps recalls (``a - b``
    when ``b = 1``). G1 and the compact construction score 1 (``a = 1``, ``b`` about 0.03); an
    affine MLP scores 0.
    """
    n_rel, n = facts.n_relations, facts.n_entities
    if why := fit_requirement("relu_necessity", n, n_rel, model.cfg.d_model):
        return MeasureResult.too_few(why)
    io = [(q.h1, q.out) for q in (mlp_at_queries(model, facts, r) for r in range(n_rel))]
    x = np.stack([_affine(h1) for h1, _ in io])  # (R, N, 1 + d)
    y = np.stack([out for _, out in io])  # (R, N, d)
    h1 = np.stack([h for h, _ in io])
    u = model.W_U.detach().double().numpy()  # (d, n_out)
    subjects = np.arange(n)
    targets = np.stack([facts.answers(subjects, r) for r in range(n_rel)])  # (R, N)
    own = np.empty((n_rel, n), dtype=bool)
    shared = np.empty((n_rel, n), dtype=bool)
    everyone = np.ones(n, dtype=bool)

    def right(out: np.ndarray, r: int, held: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy((h1[r, held] + out) @ u)
        ok: np.ndarray = (margins_of(logits, torch.from_numpy(targets[r, held]))[0] > 0).numpy()
        return ok

    for held in folds(facts):
        train = everyone.copy()
        train[held] = False
        w_all = lstsq(x[:, train].reshape(-1, x.shape[2]), y[:, train].reshape(-1, y.shape[2]))
        for r in range(n_rel):
            own[r, held] = right(x[r, held] @ lstsq(x[r, train], y[r, train]), r, held)
            shared[r, held] = right(x[r, held] @ w_all, r, held)
    per_relation, one_map = float(own.mean()), float(shared.mean())
    gain = per_relation - one_map
    return MeasureResult(
        value=gain / (1.0 - one_map) if one_map < 1.0 else gain,
        detail={
            "per_relation_recall": per_relation,
            "shared_recall": one_map,
            "per_relation_recall_by_relation": [float(a) for a in own.mean(axis=1)],
            "shared_recall_by_relation": [float(a) for a in shared.mean(axis=1)],
            "folds": FOLDS,
        },
    )


@one_blas_thread
def intervention_success(model: OneLayerTransformer, facts: BijectionFacts) -> MeasureResult:
    """Every subject (held out by fold): swap relation r's component for a seeded new answer j;
    success when relation r answers j and every other relation keeps its answer."""
    n, n_rel = facts.n_entities, facts.n_relations
    if why := _requirement("intervention_success", model, facts):
        return MeasureResult.too_few(why)
    e, u = subject_table(model, facts), unembedding(model)
    g = rng(facts.seed, Stream.SPLIT, 1)
    shifts = 1 + g.integers(0, n - 1, size=(n, n_rel))  # j != pi_r(s), uniform over the others
    rows, expected, subjects = [], [], []
    for held, _, maps in fold_fits(model, facts):
        for s in held:
            answers = facts.answers(np.full(n_rel, s), np.arange(n_rel))
            for r in range(n_rel):
                j = int(answers[r] - facts.perms[r, s] + (facts.perms[r, s] + shifts[s, r]) % n)
                rows.append(e[s] + maps[r] @ (u[j] - u[answers[r]]))
                new = answers.copy()
                new[r] = j
                expected.append(new)
                subjects.append(s)
    emb = np.repeat(np.stack(rows), n_rel, axis=0)  # each intervened row, asked every relation
    rel = np.tile(np.arange(n_rel), len(rows))
    targets = torch.from_numpy(np.concatenate(expected))
    ok = (margins_of(logits_with_subjects(model, emb, rel, n), targets)[0] > 0).numpy()
    ok = ok.reshape(len(rows), n_rel)  # (intervention, asked relation)
    changed = np.tile(np.arange(n_rel), n)  # the relation each intervention changed
    hit = ok[np.arange(len(rows)), changed]
    kept = np.delete(ok, changed + n_rel * np.arange(len(rows))).reshape(len(rows), n_rel - 1)
    before = recalled_with_subjects(model, facts, e, np.arange(n))
    return MeasureResult(
        value=float(ok.all(axis=1).mean()),
        detail={
            "interventions": len(rows),
            "target_hit": float(hit.mean()),
            "others_kept": float(kept.mean()) if kept.size else 1.0,
            "accuracy_before": float(before.mean()),
        },
    )


MeasureFn = Callable[[OneLayerTransformer, BijectionFacts], MeasureResult]
# The mechanism measures by name, in report order: a training claim with ``mechanism: true``
# runs each on the trained model. The names live in one list,
# :data:`verifier.measure.registry.MECHANISM_MEASURES` (no torch, so the spec language reads it);
# each is the function of that name in this module, and a name without one fails on import.
MEASURES: dict[str, MeasureFn] = {
    name: globals()[name] for name in MECHANISM_MEASURES if name not in INIT_MEASURES
}


def new_bijections(facts: BijectionFacts, transfer_seed: int) -> BijectionFacts:
    """Fresh bijections ``pi'_r`` from ``Stream.TRANSFER`` (instance seed, transfer seed)."""
    perms = np.stack(
        [
            rng(facts.seed, Stream.TRANSFER, transfer_seed, r).permutation(facts.n_entities)
            for r in range(facts.n_relations)
        ]
    )
    return facts.with_perms(perms)


@one_blas_thread
def start_rows(
    model: OneLayerTransformer,
    facts: BijectionFacts,
    new_facts: BijectionFacts,
    method: Literal["probe", "random"],
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]] | str:
    """``(N, d)`` subject rows for ``new_facts`` and their evidence, or why they are undefined.

    ``probe``: ``b + sum_r M_r u_{pi'_r(s)}`` with ``(b, M)`` fit on every subject of the old
    facts (needs ``N > R d + 1``). ``random``: Gaussian rows with the trained table's per-
    coordinate mean and spread, from ``Stream.TRANSFER`` (the control, about 1/N).
    """
    n, n_rel, d = facts.n_entities, facts.n_relations, unembedding_rank(model)
    e = subject_table(model, facts)
    if method == "probe":
        if why := fit_requirement("transfer_probe", n, n_rel, d):
            return why
        x = superposition_design(model, facts)
        w = lstsq(x, e)
        return superposition_design(model, facts, new_facts.perms) @ w, {"fit_r2": r2(e, x @ w)}
    g = rng(seed, Stream.TRANSFER, 1_000_000)  # apart from the bijection sub-streams
    return e.mean(axis=0) + g.standard_normal(e.shape) * e.std(axis=0), {}


@one_blas_thread
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
    if method in ("probe", "random"):
        reinit = start_rows(model, facts, new_facts, method, seed)
        if isinstance(reinit, str):
            return MeasureResult.too_few(reinit)
        rows, more = reinit
        detail.update(more)
    else:
        from verifier.convex.reembed import reembed

        begin = e
        if fit_requirement("transfer_probe", n, n_rel, d) is None:  # probe start when determined
            x = superposition_design(model, facts)
            begin = superposition_design(model, facts, new_facts.perms) @ lstsq(x, e)
        found = reembed(
            as_float64(model),
            new_facts,
            begin,
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
