"""The two forward passes compute one function: :class:`OneLayerTransformer` (float64, what the
measures read) and the trainer's :class:`StackedForward` (replicates stacked), in every
attention mode, at every target position, replicate by replicate."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.model import causal_mask
from verifier.train import (
    StackedForward,
    TrainConfig,
    build_model,
    fact_task,
    from_model,
    query_task,
)
from verifier.train.config import ATTENTION_WEIGHTS, Attention

TASKS = {
    "facts": fact_task(BijectionFacts(8, 2, seed=0)),
    "chain of thought": query_task(ChainFacts(8, 2, 3, seed=1), cot=True),
}


def test_the_causal_mask_hides_the_keys_after_each_query() -> None:
    mask = causal_mask(4, [1, 3])
    assert mask.tolist() == [[False, False, True, True], [False, False, False, False]]


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("attention", ["learned", "uniform", "none"])
def test_stacked_replicates_compute_the_models_logits(task_name: str, attention: Attention) -> None:
    task = TASKS[task_name]
    cfg = TrainConfig(d_model=8, d_mlp=16, n_heads=2, attention=attention)
    models = []
    for seed in (0, 1):
        model = build_model(task, dataclasses.replace(cfg, seed=seed))  # float32 values
        with torch.no_grad():
            model.b_in.normal_(generator=torch.Generator().manual_seed(seed))  # nonzero biases
            model.b_out.normal_(generator=torch.Generator().manual_seed(seed + 2))
            if attention == "learned":
                model.W_Q.mul_(3.0)  # a peaked pattern, not near-uniform
        model = model.double()  # float64, exactly the float32 values the trainer holds
        if attention != "learned":
            for name in ATTENTION_WEIGHTS:
                if cfg.frozen(name):
                    assert not getattr(model, name).any()
        models.append(model)
    weights = [from_model(m, 8) for m in models]
    stacked = {k: torch.stack([w[k].double() for w in weights]) for k in weights[0]}
    tokens = torch.stack([task.tokens, task.tokens])
    logits = StackedForward(task, cfg)(stacked, tokens)  # (S, n, Q, n_out)
    positions = list(task.positions) if task.positions is not None else [task.n_ctx - 1]
    for s, model in enumerate(models):
        every = model(task.tokens, last_only=False)  # (n, L, n_out)
        for i, pos in enumerate(positions):
            torch.testing.assert_close(logits[s, :, i], every[:, pos], rtol=0, atol=1e-12)
