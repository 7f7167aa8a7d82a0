"""Multi-hop training (docs/theory.md 5, 7): query layouts, teacher forcing, greedy evaluation,
determinism, and refusals before any training."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pytest
import torch

import verifier.checks.training as training
from verifier.constructions.cot import build_cot
from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import LimitExceeded, SpecError
from verifier.facts.chains import ChainFacts
from verifier.limits import Limits
from verifier.measure.queries import evaluate_queries
from verifier.model import OneLayerTransformer
from verifier.spec import load_spec_text
from verifier.train import (
    StackedForward,
    TrainConfig,
    TrainResult,
    build_model,
    from_model,
    query_task,
    train,
)
from verifier.train.loop import _loss_and_correct

COT = """
name: tiny-multi-hop
instance: {kind: multi_hop, entities: 32, relations: 2, hops: 2, cot: true, seed: 3}
claims:
  - id: gd
    check: training
    model: {d_model: 16, d_mlp: 128, heads: 1}
    optim: {optimizer: adamw, lr: 2e-2, weight_decay: 0.1, steps: 600}
    expect: {accuracy: 1.0, step_accuracy: 1.0, n_queries: "== N*R**k"}
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


def _results(text: str, **kwargs: Any) -> list[dict[str, Any]]:
    report = run_spec(load_spec_text(text, file="tiny.spec.yaml"), **kwargs)
    return [r.model_dump(exclude={"duration_s"}) for r in report.results]


# --- the training examples ------------------------------------------------------------------------


def _walk(perms: np.ndarray, x: int, chain: np.ndarray) -> list[int]:
    """y_1..y_k by applying pi_{r_1}, then pi_{r_2}, ... one at a time."""
    path, y = [], x
    for r in chain:
        y = int(perms[r, y])
        path.append(y)
    return path


def test_no_cot_task_is_every_query_answered_at_the_last_position() -> None:
    facts = ChainFacts(8, 2, 3, seed=1)
    task = query_task(facts, cot=False)
    assert task.tokens.shape == (8 * 2**3, 4) and task.positions is None
    for q in range(task.n_examples):
        x, chain = q % 8, facts.chains(np.array([q // 8]))[0]
        assert task.tokens[q].tolist() == [8 + int(r) for r in chain] + [x]
        assert int(task.targets[q]) == _walk(facts.perms, x, chain)[-1]


def test_teacher_forcing_targets_are_the_true_intermediates() -> None:
    facts = ChainFacts(8, 3, 2, seed=2)
    task = query_task(facts, cot=True)
    k = 2
    assert task.tokens.shape == (8 * 3**2, 2 * k) and task.positions == (2, 3)
    for q in range(task.n_examples):
        x, chain = q % 8, facts.chains(np.array([q // 8]))[0]
        path = _walk(facts.perms, x, chain)
        assert task.targets[q].tolist() == path  # y_1 at x's position, y_2 at y_1's
        # the input holds the true intermediate y_1 (never a prediction)
        assert task.tokens[q].tolist() == [8 + int(r) for r in chain] + [x] + path[:-1]


def test_teacher_forced_logits_are_the_causal_prefix_predictions() -> None:
    """Step i's logits in the trainer's forward pass see only [r_1..r_k, x, y_1..y_(i-1)]:
    the same as the model decoding that prefix."""
    facts = ChainFacts(8, 2, 3, seed=0)
    task = query_task(facts, cot=True)
    cfg = TrainConfig(d_model=8, d_mlp=16, n_heads=2, steps=0)
    model = build_model(task, cfg)
    weights = {k: v[None] for k, v in from_model(model, facts.n_entities).items()}
    forced = StackedForward(task, cfg)(weights, task.tokens[None])[0]  # (n, k, N)
    for i, pos in enumerate(task.positions or ()):
        prefix = model(task.tokens[:, : pos + 1])
        torch.testing.assert_close(forced[:, i], prefix, rtol=0, atol=1e-5)
    loss, ok = _loss_and_correct(forced[None], task.targets[None])
    flat = torch.nn.functional.cross_entropy(forced.reshape(-1, 8), task.targets.reshape(-1))
    assert float(loss[0].detach()) == pytest.approx(float(flat.detach()))
    assert ok.shape == (1, task.n_examples)


# --- greedy evaluation judges every intermediate -------------------------------------------------


@dataclass(frozen=True)
class DetourFacts(ChainFacts):
    """The same chain answers through other intermediates: ``pi'_0 = sigma o pi_0``,
    ``pi'_1 = pi_1 o sigma`` with ``sigma`` swapping entities 0 and 1, so
    ``pi'_1 o pi'_0 = pi_1 o pi_0`` while y_1 differs for the two subjects sent to 0 and 1."""

    @cached_property
    def detour_perms(self) -> np.ndarray:
        true = ChainFacts(self.n_entities, self.n_relations, self.hops, self.seed).perms
        sigma = np.arange(self.n_entities)
        sigma[[0, 1]] = [1, 0]
        out = true.copy()
        out[0] = sigma[true[0]]
        out[1] = true[1][sigma]
        return out

    @property
    def perms(self) -> np.ndarray:
        return self.detour_perms


def _detour_model(n: int) -> tuple[ChainFacts, OneLayerTransformer]:
    facts = ChainFacts(n, 2, 2, seed=3, chain_list=((0, 1),))  # the seed of COT
    detour = DetourFacts(n, 2, 2, seed=3, chain_list=((0, 1),))
    model, _ = build_cot(detour, np.eye(n))  # Ck, exact for the detour's bijections
    return facts, model


def test_a_right_answer_through_a_wrong_intermediate_fails() -> None:
    n = 16
    facts, model = _detour_model(n)
    res = evaluate_queries(model, facts, cot=True)
    assert res.total == n and res.decode_steps == 2
    assert res.final_correct == n  # every final answer is right ...
    assert res.correct == n - 2  # ... but two queries went through the wrong y_1
    assert res.step_correct == 2 * n - 2 and res.margin <= 0
    cex = res.counterexample
    assert cex is not None and cex["step"] == 1
    assert cex["got"] != cex["expected"] and cex["decoded"][-1] == cex["path"][-1]


def test_the_training_claim_counts_the_detour_as_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 16
    _, model = _detour_model(n)

    def trained(*args: object, **kwargs: object) -> list[TrainResult]:
        return [TrainResult(model, 1, 1, 0.0, 1.0, True)]

    monkeypatch.setattr(training, "train_replicates_cached", trained)
    text = COT.replace("entities: 32", f"entities: {n}").replace(
        "cot: true,", "cot: true, chains: [[0, 1]],"
    )
    [result] = _results(text.replace('n_queries: "== N*R**k"', "n_queries: 16"))
    assert result["status"] == "failed"
    assert result["measured"]["accuracy"] == (n - 2) / n
    assert result["measured"]["step_accuracy"] == (2 * n - 2) / (2 * n)
    assert result["evidence"]["final_answer_accuracy"] == 1.0
    assert result["evidence"]["counterexample"]["step"] == 1


# --- training runs -------------------------------------------------------------------------------


def test_cot_training_recalls_every_query_deterministically() -> None:
    """(Without CoT: specs/training/multi_hop.spec.yaml.)"""
    first, second = _results(COT), _results(COT)
    assert first == second
    measured = first[0]["measured"]
    assert first[0]["status"] == "passed", first[0]["message"]
    assert measured["decode_steps"] == 2 and measured["n_queries"] == 32 * 4
    assert first[0]["evidence"]["training"] == "teacher forcing"
    reseeded = _results(COT.replace("heads: 1}", "heads: 1}\n    train_seed: 9"))
    assert reseeded[0]["measured"] != measured


def test_minibatch_teacher_forcing_is_deterministic() -> None:
    task = query_task(ChainFacts(16, 2, 2, seed=0), cot=True)
    cfg = TrainConfig(d_model=8, d_mlp=32, lr=1e-2, steps=30, batch_size=16, eval_every=10)
    a, b = train(task, cfg), train(task, cfg)
    assert a.history == b.history and len(a.history) == 4
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )


# --- refused before any training -----------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained despite a refusal")

    monkeypatch.setattr(training, "train_replicates_cached", refuse)


def _preflight(text: str, limits: Limits | None = None) -> None:
    SpecRunner(load_spec_text(text, file="bad.spec.yaml"), limits or Limits()).preflight()


@pytest.mark.usefixtures("no_training")
@pytest.mark.parametrize(
    ("edit", "limits", "limit_name"),
    [
        (("steps: 600", "steps: 5000"), Limits(max_steps=1000), "max_steps"),
        (("entities: 32", "entities: 32"), Limits(max_entities=16), "max_entities"),
        (("hops: 2", "hops: 3"), Limits(max_queries=200), "max_queries"),
        (("d_mlp: 128", "d_mlp: 4096"), Limits(max_width=1024), "max_width"),
        (("d_model: 16", "d_model: 2048"), Limits(max_width=1024), "max_width"),
        (("d_model: 16", "d_model: 16"), Limits(max_weights=1000), "max_weights"),
    ],
)
def test_oversized_multi_hop_training_is_refused(
    edit: tuple[str, str], limits: Limits, limit_name: str
) -> None:
    with pytest.raises(LimitExceeded, match=limit_name):
        _preflight(COT.replace(*edit), limits)


@pytest.mark.usefixtures("no_training")
def test_queries_are_counted_per_chain_in_the_refusal() -> None:
    with pytest.raises(LimitExceeded, match=r"N\*\|C\| .* is 256, over the limit max_queries"):
        _preflight(COT.replace("hops: 2", "hops: 3"), Limits(max_queries=200))


@pytest.mark.usefixtures("no_training")
def test_mechanism_measures_are_refused_on_multi_hop() -> None:
    text = COT.replace("step_accuracy: 1.0", "superposition_r2: '>= 0.9'")
    with pytest.raises(SpecError, match="superposition_r2 is undefined on a multi_hop") as err:
        _preflight(text)
    assert err.value.line == 5 and err.value.key == "gd.expect.superposition_r2"


@pytest.mark.usefixtures("no_training")
def test_transfer_from_multi_hop_training_is_refused() -> None:
    text = COT.replace("d_model: 16", "d_model: 4") + (
        "  - id: moved\n    check: transfer\n    from: gd\n    method: probe\n"
    )
    with pytest.raises(SpecError, match="transfer claims: expected a bijection instance"):
        _preflight(text)
