"""Relearning new facts through a frozen trained network (docs/theory.md section 7, ``relearn``).

The transfer question asked with training: everything but the subject table is frozen, and only
the subject rows are trained on new bijections ``pi'_r``, from the probe rows
``b + sum_r M_r u_{pi'_r(s)}`` (``start: probe``) or from random rows (``start: random``).
A network that is a relation-conditioned selector over superposed attribute codes needs only
the new codes written into the rows, so it relearns in few steps; an associative memory over
frozen random keys has no such code to write. The measure is the number of steps to exact
recall of every new fact (float32, strict argmax) and the float64 exact recall after them.

Replicates relearn together as one stacked run (:func:`verifier.train.train_replicates`), each
from its own trained model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from verifier.facts.bijections import BijectionFacts
from verifier.measure.mechanism import BATCH, as_float64, start_rows
from verifier.measure.recall import exact_recall
from verifier.model import OneLayerTransformer
from verifier.train import (
    PARAM_NAMES,
    OptimGroup,
    TrainConfig,
    fact_task,
    from_model,
    train_replicates,
)


@dataclass(frozen=True)
class RelearnResult:
    """One replicate's relearning.

    Attributes:
        accuracy: float64 exact recall of every new fact after relearning.
        margin: the smallest answer margin over the new facts, float64.
        steps_to_perfect: first step at which every new fact was right (float32), or None.
        steps: relearning steps taken.
        start_accuracy: float64 exact recall from the starting rows, before any step.
    """

    accuracy: float
    margin: float
    steps_to_perfect: int | None
    steps: int
    start_accuracy: float


def relearn_config(trained: TrainConfig, group: OptimGroup, steps: int) -> TrainConfig:
    """The trained run's shapes with only the subject rows trainable, by ``group``'s settings.

    Training stops at the first step with every new fact right.
    """
    frozen = tuple(n for n in PARAM_NAMES if n != "W_E")
    return replace(
        trained,
        steps=steps,
        freeze=frozen,
        groups=(("W_E", group),),
        min_steps=0,
        stop_loss=float("inf"),
        schedule="constant",
        warmup=0,
        batch_size=None,
        init=(),
    )


def relearn(
    models: Sequence[OneLayerTransformer],
    facts: Sequence[BijectionFacts],
    new_facts: Sequence[BijectionFacts],
    trained: TrainConfig,
    group: OptimGroup,
    steps: int,
    start: Literal["probe", "random"],
    seed: int,
) -> list[RelearnResult] | str:
    """Relearn each replicate's subject table on its new facts; the results, or why the
    starting rows are undefined (an underdetermined probe fit).

    Args:
        models: the trained models (float32), one per replicate.
        facts: the facts each was trained on (the probe is fit on these).
        new_facts: each replicate's new bijections.
        trained: the training run's settings (shapes, attention).
        group: the subject rows' optimiser settings.
        steps: the most relearning steps.
        start: the starting rows, ``probe`` or ``random``.
        seed: the random start's seed.
    """
    weights, begin = [], []
    for model, old, new in zip(models, facts, new_facts, strict=True):
        rows = start_rows(model, old, new, start, seed)
        if isinstance(rows, str):
            return rows
        w = from_model(model, old.n_entities)
        w["W_E"] = torch.from_numpy(rows[0].astype(np.float32))
        weights.append(w)
        begin.append(_recall(model, new, rows[0]))
    cfg = relearn_config(trained, group, steps)
    tasks = [fact_task(f) for f in new_facts]
    runs = train_replicates(tasks, cfg, [seed] * len(tasks), start=weights)
    out = []
    for run, new, before in zip(runs, new_facts, begin, strict=True):
        recall = exact_recall(as_float64(run.model), new.batches(BATCH), new.n_facts)
        out.append(
            RelearnResult(
                accuracy=recall.accuracy,
                margin=recall.margin,
                steps_to_perfect=run.steps_to_perfect,
                steps=run.steps,
                start_accuracy=before,
            )
        )
    return out


def _recall(model: OneLayerTransformer, facts: BijectionFacts, rows: np.ndarray) -> float:
    """float64 exact recall of ``facts`` with the subject rows replaced by ``rows``."""
    m64 = as_float64(model)
    if m64 is model:
        m64 = OneLayerTransformer(model.cfg, dtype=torch.float64)
        m64.load_state_dict(model.state_dict())
    with torch.no_grad():
        m64.W_E[: facts.n_entities] = torch.from_numpy(rows)
    return exact_recall(m64, facts.batches(BATCH), facts.n_facts).accuracy
