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

from verifier.constructions.cot import first_failure, greedy_decode
from verifier.facts.chains import ChainFacts
from verifier.measure.certified import Readout, certified_recall
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

    Without chain-of-thought: one pass on ``[r_1..r_k, x]``, judged against ``pi_c(x)``; with
    ``readout`` (``W_U`` as a codebook readout, checked bitwise) the queries are certified
    (:mod:`verifier.measure.certified`, the margin always resolved exactly). With
    chain-of-thought: greedy
    decoding of ``y_1..y_k``, each step judged against the *true* ``y_i`` (a query is right
    only when every step is). ``progress``: optional ``(done, total)`` callback.
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
