"""Exact recall of multi-hop queries: every query through the real forward pass, in float64.

Without chain-of-thought one pass on ``[r_1..r_k, x]`` is judged against ``pi_c(x)``
(:func:`verifier.measure.recall.exact_recall`). With it ``y_1..y_k`` are decoded greedily
(:func:`verifier.constructions.cot.greedy_decode`) and each step is judged against the *true*
``y_i``: a query is right only when every step is. Batches are bounded (:data:`QUERY_FLOATS`), so
the ``N * |C|`` queries never sit in memory at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from verifier.constructions.cot import Decoded, first_failure, greedy_decode
from verifier.facts.chains import ChainFacts
from verifier.measure.certified import (
    Certifier,
    Readout,
    certified_recall,
    certifier,
    lowest_margin,
    resolve_margin,
)
from verifier.measure.recall import ProgressFn, RecallResult, exact_recall
from verifier.model import OneLayerTransformer

QUERY_FLOATS = 4_000_000  # floats per forward batch: bounds memory at ~32 MB of activations


def batch_size(d_model: int, d_mlp: int, n_out: int, n_ctx: int) -> int:
    """Queries per forward batch, so one batch holds about ``QUERY_FLOATS`` activations."""
    return max(16, min(8192, QUERY_FLOATS // (n_ctx * d_model + d_mlp + n_out)))


@dataclass(frozen=True)
class QueryRecall:
    """Every multi-hop query through one model, float64.

    Attributes:
        total: queries checked (``N*|C|``).
        correct: queries with every decoding step right.
        step_correct: (query, step) pairs right.
        decode_steps: k with chain-of-thought, else 1.
        margin: min over queries and steps of (true token's logit - best other logit), each
            step given the model's own earlier emissions.
        final_correct: queries whose last emitted token is the answer, however it got there.
        counterexample: the first failing query, or None.
        certified: queries decided by the certificate alone (None: every query through the
            full logits).
    """

    total: int
    correct: int
    step_correct: int
    decode_steps: int
    margin: float
    final_correct: int
    counterexample: dict[str, Any] | None
    certified: int | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def step_accuracy(self) -> float:
        steps = self.total * self.decode_steps
        return self.step_correct / steps if steps else 0.0


def query_tokens(facts: ChainFacts, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """No-CoT tokens and answers of the queries at enumeration ``index`` (subject
    ``index mod N``, chain ``index div N``, as :meth:`ChainFacts.query_arrays` orders them)."""
    subjects, chains = index % facts.n_entities, facts.chains(index // facts.n_entities)
    answers = np.asarray(facts.answers(subjects, chains), dtype=np.int64)
    return facts.tokens(subjects, chains), torch.from_numpy(answers)


def evaluate_queries(
    model: OneLayerTransformer,
    facts: ChainFacts,
    cot: bool,
    progress: ProgressFn | None = None,
    readout: Readout | None = None,
) -> QueryRecall:
    """Every query of ``facts`` through ``model``'s forward pass, exactly, in bounded batches.

    Without chain-of-thought: one pass on ``[r_1..r_k, x]``, judged against ``pi_c(x)``. With
    chain-of-thought: greedy decoding of ``y_1..y_k``, each step judged against the *true*
    ``y_i`` (a query is right only when every step is). With ``readout`` (``W_U`` as a
    codebook readout, checked bitwise) queries, or decoding steps, are certified
    (:mod:`verifier.measure.certified`, :func:`certified_decode`; the margin always resolved
    exactly). ``progress``: optional ``(done, total)`` callback.
    """
    cfg = model.cfg
    size = batch_size(cfg.d_model, cfg.d_mlp, cfg.n_out, cfg.n_ctx)
    if not cot:
        cert = None
        if readout is not None:
            cert = certified_recall(
                model,
                readout,
                facts.batches(size),
                lambda idx: query_tokens(facts, idx),
                facts.n_queries,
                progress,
                resolve_cap=None,
            )
        res: RecallResult = (
            exact_recall(model, facts.batches(size), facts.n_queries, progress)
            if cert is None
            else cert.result
        )
        cex = None
        if res.first_failure is not None:
            subjects, chains = facts.query_arrays(res.first_failure, res.first_failure + 1)
            cex = {
                "subject": int(subjects[0]),
                "chain": [int(r) for r in chains[0]],
                "expected": int(facts.answers(subjects, chains)[0]),
                "got": res.first_failure_prediction,
            }
        return QueryRecall(
            res.total,
            res.correct,
            res.correct,
            1,
            res.margin,
            res.correct,
            cex,
            None if cert is None else cert.certified,
        )
    if readout is not None:
        cot_cert = certifier(model, readout)
        if cot_cert is not None:
            return certified_decode(cot_cert, facts, size, progress)
    correct = step_correct = final_correct = seen = 0
    margin = math.inf
    cex = None
    for subjects, chains in facts.query_batches(size):
        dec = greedy_decode(model, facts, subjects, chains)
        ok = dec.margins > 0  # (b, k): step i right given the model's own y_1..y_{i-1}
        all_ok = ok.all(dim=1)
        step_correct += int(ok.sum())
        correct += int(all_ok.sum())
        answers = facts.answers(subjects, chains)
        final_correct += int((dec.predictions[:, -1].numpy() == answers).sum())
        margin = min(margin, float(dec.margins.min()))
        if cex is None:
            cex = first_failure(facts, subjects, chains, dec)
        seen += len(subjects)
        if progress is not None:
            progress(seen, facts.n_queries)
    k = facts.hops
    return QueryRecall(seen, correct, step_correct, k, margin, final_correct, cex)


@torch.inference_mode()
def certified_decode(
    cert: Certifier, facts: ChainFacts, size: int, progress: ProgressFn | None = None
) -> QueryRecall:
    """Greedy chain-of-thought decoding of every query, each step certified where the bound
    decides it (:class:`verifier.measure.certified.Certifier`): a certified step's margin is
    positive, so its argmax, the token fed back, is the true ``y_i``; the other rows go
    through the model's forward pass and full logits, and emit their argmax as
    :func:`verifier.constructions.cot.greedy_decode` does. The minimum margin over queries
    and steps is then resolved exactly (smallest bounds first), replaying each step's prefix.
    """
    k, total = facts.hops, facts.n_queries
    lower = torch.empty(total * k, dtype=torch.float64)  # (query, step) flattened
    exact = torch.full((total * k,), math.nan, dtype=torch.float64)
    preds = torch.empty(total, k, dtype=torch.int64)
    correct = step_correct = final_correct = certified = seen = 0
    cex = None
    for subjects, chains in facts.query_batches(size):
        b = len(subjects)
        tokens = facts.tokens(subjects, chains)  # (b, k + 1)
        truth = torch.from_numpy(facts.path(subjects, chains))  # (b, k)
        margins = torch.empty(b, k, dtype=torch.float64)
        rivals = torch.full((b, k), -1, dtype=torch.int64)  # -1: certified, none computed
        for i in range(k):
            lo = cert.lower(tokens, truth[:, i])
            pred = truth[:, i].clone()
            margins[:, i] = lo
            undecided = lo.isnan().nonzero().squeeze(1)
            if len(undecided):
                full = cert.full(tokens[undecided], truth[undecided, i])
                pred[undecided] = full.argmax
                margins[undecided, i] = full.margins
                rivals[undecided, i] = full.rival
            flat = torch.arange(seen, seen + b) * k + i
            lower[flat] = lo
            exact[flat[undecided]] = margins[undecided, i]
            if i + 1 < k:
                tokens = torch.cat([tokens, pred[:, None]], dim=1)
            preds[seen : seen + b, i] = pred
        ok = margins > 0  # certified steps hold their positive bound
        step_correct += int(ok.sum())
        correct += int(ok.all(dim=1).sum())
        certified += int((~lower[seen * k : (seen + b) * k].isnan()).view(b, k).all(dim=1).sum())
        answers = facts.answers(subjects, chains)
        final_correct += int((preds[seen : seen + b, -1].numpy() == answers).sum())
        if cex is None:
            dec = Decoded(preds[seen : seen + b], margins, rivals)
            cex = first_failure(facts, subjects, chains, dec)
        seen += b
        if progress is not None:
            progress(seen, total)

    def margins_of_steps(idx: np.ndarray) -> torch.Tensor:
        out = torch.empty(len(idx), dtype=torch.float64)
        queries, steps = idx // k, idx % k
        for i in np.unique(steps):
            at = np.flatnonzero(steps == i)
            q = queries[at]
            subjects, chains = q % facts.n_entities, facts.chains(q // facts.n_entities)
            tokens = torch.cat([facts.tokens(subjects, chains), preds[q, :i]], dim=1)
            truth = torch.from_numpy(facts.path(subjects, chains)[:, i])
            out[at] = cert.full(tokens, truth).margins
        return out

    resolve_margin(lower, exact, margins_of_steps, None)
    margin = lowest_margin(lower, exact, True)
    return QueryRecall(seen, correct, step_correct, k, margin, final_correct, cex, certified)
