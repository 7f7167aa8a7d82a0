"""The stacked trainer (verifier/train/): replicates, groups, per_subject, uniform attention."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from verifier.constructions.codebooks import codebook
from verifier.constructions.geometric import build_geometric
from verifier.errors import VerifierError
from verifier.facts.bijections import BijectionFacts
from verifier.measure.recall import margins_of
from verifier.train import (
    RELATION_ROWS,
    OptimGroup,
    StackedForward,
    TrainConfig,
    TrainTask,
    build_model,
    fact_task,
    from_model,
    initial_weights,
    train,
    train_replicates,
    training_threads,
)
from verifier.train.loop import _loss_and_correct
from verifier.train.relearn import relearn

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


FACTS = [BijectionFacts(48, 2, seed=s) for s in (0, 1, 2)]
TASKS = [fact_task(f) for f in FACTS]
CFG = TrainConfig(d_model=12, d_mlp=32, n_heads=2, optimizer="adamw", lr=1e-2, steps=60)
REGIME = replace(
    CFG,
    attention="uniform",
    init=(("W_E", 0.01),),
    groups=(("W_E", OptimGroup("sgd", 0.1, 0.9, 3e-3, True)),),
)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> bool:
    return all(
        torch.allclose(p, q, rtol=0, atol=atol)
        for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


PEER = TrainConfig(  # the capacity protocol's model: the frozen-front step
    d_model=8,
    d_mlp=8,
    lr=3e-2,
    steps=150,
    attention="none",
    unit_norm=("W_E", "W_U"),
    freeze=("W_E", "W_U", "W_pos", "b_out"),
    init=(("W_pos", 0.0),),
)
ODD = [fact_task(BijectionFacts(37, 1, seed=s)) for s in (0, 1, 2)]  # 37 x 37: no whole vectors


@pytest.mark.parametrize(
    ("cfg", "tasks"),
    [
        (CFG, TASKS),
        (REGIME, TASKS),
        (replace(CFG, batch_size=16, eval_every=10), TASKS),
        (PEER, ODD),
        (replace(CFG, steps=40), [fact_task(BijectionFacts(29, 3, seed=s)) for s in (0, 1, 2)]),
    ],
    ids=["learned", "regime", "minibatch", "peer-odd", "learned-odd"],
)
@pytest.mark.usefixtures("batches_round_alone")
def test_stacked_replicates_match_serial_runs(cfg: TrainConfig, tasks: list[TrainTask]) -> None:
    """Each replicate of a stack ends bitwise where its serial run ends: its weights, its
    curve and its loss (docs/verdicts.md), also where a replicate's block of a buffer is no
    whole number of vectors (odd sizes: the element-wise kernels' scalar tails)."""
    stacked = train_replicates(tasks, cfg, [0, 1, 2])
    for task, seed, run in zip(tasks, (0, 1, 2), stacked, strict=True):
        alone = train(task, replace(cfg, seed=seed))
        assert run.seed == seed
        assert (run.steps, run.steps_to_perfect) == (alone.steps, alone.steps_to_perfect)
        assert _same_weights(run.model, alone.model)  # bitwise (docs/verdicts.md)
        assert (run.history, run.final_loss) == (alone.history, alone.final_loss)


def test_a_replicate_that_stops_early_keeps_its_own_weights() -> None:
    """Replicates stop at different steps; each keeps the weights of its own stop (the stack
    trains on until the last one stops), as its serial run does."""
    cfg = replace(CFG, steps=400)
    runs = train_replicates(TASKS, cfg, [0, 1, 2])
    assert all(r.stopped_early for r in runs)
    assert len({r.steps for r in runs}) == 3  # three different stopping steps
    for task, seed, run in zip(TASKS, (0, 1, 2), runs, strict=True):
        alone = train(task, replace(cfg, seed=seed))
        assert run.steps == alone.steps and _same_weights(run.model, alone.model, atol=1e-5)
        assert run.final_accuracy == 1.0 and run.final_loss <= cfg.stop_loss


def test_per_subject_steps_equal_the_hand_scaled_gradient() -> None:
    """One SGD step (no momentum, no decay): subject rows move by lr * N * grad of the mean
    loss, the relation rows and every other weight by lr * grad."""
    lr = 0.05
    cfg = replace(
        CFG,
        optimizer="sgd",
        lr=lr,
        momentum=0.0,
        steps=1,
        stop_loss=-1.0,
        groups=(("W_E", OptimGroup(momentum=0.0, per_subject=True)),),
    )
    task, n = TASKS[0], FACTS[0].n_entities
    model = build_model(task, cfg)
    loss = torch.nn.functional.cross_entropy(model(task.tokens), task.targets)
    loss.backward()  # type: ignore[no-untyped-call]
    after = train(task, cfg).model
    grad = model.W_E.grad
    assert grad is not None
    expected = model.W_E.detach().clone()
    expected[:n] -= lr * n * grad[:n]
    expected[n:] -= lr * grad[n:]
    assert torch.allclose(after.W_E, expected, atol=1e-6)
    w_in_grad = model.W_in.grad
    assert w_in_grad is not None
    assert torch.allclose(after.W_in, model.W_in.detach() - lr * w_in_grad, atol=1e-6)


def test_uniform_attention_keeps_w_q_and_w_k_at_zero_and_matches_the_model() -> None:
    run = train(TASKS[0], replace(REGIME, steps=20, stop_loss=-1.0))
    assert not run.model.W_Q.any() and not run.model.W_K.any()
    assert not run.model.W_Q.requires_grad and not run.model.W_K.requires_grad
    weights = from_model(run.model, FACTS[0].n_entities)
    forward = StackedForward(TASKS[0], REGIME)
    stacked = forward({k: v[None] for k, v in weights.items()}, TASKS[0].tokens[None])
    assert torch.allclose(stacked[0, :, 0], run.model(TASKS[0].tokens), atol=1e-5)


def test_init_multipliers_scale_the_seeded_draws() -> None:
    base = initial_weights(TASKS[0], CFG, 0)
    scaled = initial_weights(
        TASKS[0], replace(CFG, init=(("W_E", 0.01), (RELATION_ROWS, 3.0), ("W_U", 2.0))), 0
    )
    assert torch.allclose(scaled["W_E"], base["W_E"] * 0.01)
    assert torch.allclose(scaled[RELATION_ROWS], base[RELATION_ROWS] * 3.0)
    assert torch.allclose(scaled["W_U"], base["W_U"] * 2.0)
    assert torch.equal(scaled["W_in"], base["W_in"])


def test_min_steps_keeps_training_after_exact_recall() -> None:
    run = train(TASKS[0], replace(CFG, steps=400, min_steps=300))
    assert run.steps_to_perfect is not None and run.steps_to_perfect < 300
    assert run.steps == 300 and run.stopped_early


def test_training_accuracy_is_strict_on_ties_and_nans() -> None:
    g = torch.Generator().manual_seed(0)
    for trial in range(50):
        logits = torch.randint(-2, 2, (64, 5), generator=g).float()
        if trial % 2:
            logits[torch.randint(0, 64, (6,)), torch.randint(0, 5, (6,))] = float("nan")
        targets = torch.randint(0, 5, (64,), generator=g)
        _, ok = _loss_and_correct(logits.view(1, 64, 1, 5), targets.view(1, 64, 1))
        assert torch.equal(ok.view(-1), margins_of(logits, targets)[0] > 0)


def test_relearn_from_exact_probe_rows_needs_no_step_and_moves_only_subject_rows() -> None:
    facts = BijectionFacts(160, 2, seed=0)
    model, _ = build_geometric(facts, codebook("rademacher", 160, 16, seed=0))
    model32 = model.float()
    new = facts.with_perms(np.stack([np.roll(facts.perms[r], 1) for r in range(2)]))
    cfg = TrainConfig(
        d_model=model.cfg.d_model, d_mlp=model.cfg.d_mlp, d_head=2, attention="uniform"
    )
    group = OptimGroup("sgd", 0.1, 0.9, 0.0, True)
    (result,) = relearn([model32], [facts], [new], cfg, group, 50, "probe", 0)  # type: ignore[misc]
    assert result.start_accuracy == 1.0 and result.steps_to_perfect == 0
    assert result.accuracy == 1.0


def test_another_example_order_changes_the_float32_trajectory_not_the_math(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """VERIFIER_TRAIN_ORDER permutes the examples: the same sums in another float32 order."""
    cfg = replace(CFG, steps=5, stop_loss=-1.0)
    canonical = train(TASKS[0], cfg)
    monkeypatch.setenv("VERIFIER_TRAIN_ORDER", "1")
    permuted = train(TASKS[0], cfg)
    assert _same_weights(canonical.model, permuted.model, atol=1e-5)
    assert not _same_weights(canonical.model, permuted.model)  # not bitwise: another order
    monkeypatch.setenv("VERIFIER_TRAIN_ORDER", "-1")
    with pytest.raises(VerifierError, match="VERIFIER_TRAIN_ORDER: expected a non-negative"):
        train(TASKS[0], cfg)


@pytest.mark.parametrize(
    "cfg, relations",
    [
        (TrainConfig(d_model=32, d_mlp=256, optimizer="adamw", lr=1e-2, weight_decay=0.1), 4),
        (replace(REGIME, d_model=64, d_mlp=64, n_heads=1, lr=3e-3, weight_decay=0.1), 2),
    ],
    ids=["default-regime", "gd-geometric"],
)
def test_two_threads_train_the_same_bits_as_one(
    cfg: TrainConfig, relations: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the bundled training specs' largest shapes (N = 512, 3 stacked replicates) the run
    takes VERIFIER_TRAIN_THREADS threads, and 2 threads give the very bits of 1: the stacked
    matmuls split work between threads, not the terms of one sum. So the suite's second fresh
    run of specs/ (tests/verifier/bundled_runs.py) varies the example order, which does move
    the float32 trajectory, and keeps one thread per xdist worker."""
    tasks = [fact_task(BijectionFacts(512, relations, seed=s)) for s in (0, 1, 2)]
    cfg = replace(cfg, steps=4, stop_loss=-1.0)
    runs = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("VERIFIER_TRAIN_THREADS", threads)
        assert training_threads(tasks[0], cfg, replicates=3) == int(threads)
        runs[threads] = train_replicates(tasks, cfg, [0, 1, 2])
    for one, two in zip(runs["1"], runs["2"], strict=True):
        assert _same_weights(one.model, two.model)  # bitwise
