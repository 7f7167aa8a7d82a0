"""Exact recall: every fact through the real forward pass, in float64, in bounded batches.

A fact counts as recalled when its answer's logit beats every other logit strictly
(``margin > 0``), so ties are failures, not coin flips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

ProgressFn = Callable[[int, int], None]  # (done, total)
# A model as recall reads it: (batch, pos) tokens -> (batch, n_out) logits at the last position
# (verifier.model.OneLayerTransformer, or a model read from a file, verifier.models).
Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RecallResult:
    """Accuracy and margin over every query.

    Attributes:
        total: number of queries checked.
        correct: queries whose answer wins strictly.
        margin: min over queries of (answer logit - best other logit).
        worst_index: index (in enumeration order) of the query with the smallest margin; None
            when no query was checked.
        first_failure: index of the first failing query, if any.
        first_failure_prediction: its strongest wrong answer (the rival that ties or wins).
    """

    total: int
    correct: int
    margin: float
    worst_index: int | None
    first_failure: int | None
    first_failure_prediction: int | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def margins_of(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``logit[target] - max_{j != target} logit[j]`` and the argmax of the rest."""
    answer = logits.gather(1, targets[:, None]).squeeze(1)
    others = logits.scatter(1, targets[:, None], float("-inf"))
    best_other, best_idx = others.max(dim=1)
    return answer - best_other, best_idx


@torch.inference_mode()
def exact_recall(
    model: Logits,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    total: int,
    progress: ProgressFn | None = None,
) -> RecallResult:
    """Run every ``(tokens, targets)`` batch through ``model`` and aggregate exactly."""
    correct, seen = 0, 0
    margin = float("inf")
    worst_index: int | None = None
    first_fail: int | None = None
    first_fail_pred: int | None = None
    for tokens, targets in batches:
        logits = model(tokens)  # (batch, n_out)
        margins, rival = margins_of(logits, targets)
        ok = margins > 0
        correct += int(ok.sum())
        low = int(margins.argmin())
        if float(margins[low]) < margin:
            margin, worst_index = float(margins[low]), seen + low
        if first_fail is None and not bool(ok.all()):
            idx = int((~ok).nonzero()[0, 0])
            first_fail, first_fail_pred = seen + idx, int(rival[idx])
        seen += len(targets)
        if progress is not None:
            progress(seen, total)
    return RecallResult(
        total=seen,
        correct=correct,
        margin=margin,
        worst_index=worst_index,
        first_failure=first_fail,
        first_failure_prediction=first_fail_pred,
    )
