"""Combination augmentation (verifier/train/augment.py): the fit, the draws, both engines in
float64, and the spec field with replicates and a sweep over its weight."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits
from verifier.spec import load_spec_text
from verifier.train import AugmentConfig, Augmenter, TrainConfig, TrainResult, fact_task
from verifier.train.loop import _train_stacked

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py

TASKS = [fact_task(BijectionFacts(40, 3, seed=s)) for s in (0, 1)]  # N = 40 > R d + 1 = 25
CFG = TrainConfig(
    d_model=8, d_mlp=24, optimizer="adamw", lr=2e-2, weight_decay=0.1, steps=9, stop_loss=-1.0,
    attention="uniform",
)  # fmt: skip
AUG = AugmentConfig(subjects=30, refit_every=3, weight=0.7, start=2)


def _gap(a: list[TrainResult], b: list[TrainResult]) -> float:
    """Largest weight difference relative to the weight's scale, over replicates and weights."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for p, q in zip(x.model.parameters(), y.model.parameters(), strict=True):
            a_w, b_w = p.detach(), q.detach()
            scale = max(float(a_w.abs().max()), 1e-30)
            worst = max(worst, float((a_w - b_w).abs().max()) / scale)
    return worst


def test_the_fit_of_an_exact_superposition_has_r2_one_and_draws_its_combinations() -> None:
    """Rows set to b + sum_r M_r u_(pi_r(s)): the float64 refit recovers them (R^2 = 1), and
    each synthetic row is b + sum_r M_r u_(a_r) at the drawn attributes a_r (its targets)."""
    aug = Augmenter(TASKS[:1], AugmentConfig(subjects=7, start=0), [0], None, torch.float64)
    gen = np.random.default_rng(5)
    d, n_rel = 8, 3
    u = gen.normal(size=(1, d, TASKS[0].n_out))
    b, maps = gen.normal(size=d), gen.normal(size=(n_rel, d, d))
    rows = b + sum(u[0][:, aug.answers[0, r]].T @ maps[r].T for r in range(n_rel))
    aug.refit(0, torch.from_numpy(rows[None]), torch.from_numpy(u))
    assert aug.r2[0][0] == pytest.approx(1.0, abs=1e-12)
    new, tokens, targets = aug.draw(0)
    assert new.shape == (1, 7, d) and tokens.shape == (1, 21, 2) and targets.shape == (1, 21)
    picked = targets[0].numpy().reshape(n_rel, 7)  # relation-major
    expected = b + sum(u[0][:, picked[r]].T @ maps[r].T for r in range(n_rel))
    np.testing.assert_allclose(new[0].numpy(), expected, rtol=0, atol=1e-10)
    for r in range(n_rel):  # a_r is one of relation r's attributes; tokens [7 + r, k]
        assert set(picked[r]) <= set(aug.answers[0, r])
        assert torch.equal(tokens[0, 7 * r : 7 * (r + 1), 0], torch.full((7,), 7 + r))
    again = aug.draw(0)[2]
    assert torch.equal(again, targets) and not torch.equal(aug.draw(1)[2], targets)


@pytest.mark.parametrize("batch", [None, 50], ids=["full", "minibatch"])
def test_augmented_steps_agree_between_the_fused_and_the_reference_engine(
    batch: int | None,
) -> None:
    """float64, two replicates: every step from 2 on adds 30 synthetic subjects, refitted
    every 3 steps; the weights after 9 steps agree to rounding, and differ from plain GD."""
    cfg = replace(CFG, augment=AUG, batch_size=batch, eval_every=3)
    fused = _train_stacked(TASKS, cfg, [0, 1], None, None, dtype=torch.float64)
    ref = _train_stacked(TASKS, cfg, [0, 1], None, None, engine="reference", dtype=torch.float64)
    assert _gap(fused, ref) <= 1e-9
    assert [s for s, _ in fused[0].fit_history] == [2, 5, 8]
    for f, r in zip(fused, ref, strict=True):
        np.testing.assert_allclose(
            [v for _, v in f.fit_history], [v for _, v in r.fit_history], rtol=1e-10
        )
        assert all(0.0 < v <= 1.0 for _, v in f.fit_history)
    plain = _train_stacked(
        TASKS, replace(cfg, augment=None), [0, 1], None, None, dtype=torch.float64
    )
    assert _gap(fused, plain) > 1e-4  # the synthetic facts moved the network


def test_augmentation_is_off_by_default_and_weight_zero_is_plain_training_bitwise() -> None:
    assert TrainConfig(d_model=8, d_mlp=8).augment is None
    plain = _train_stacked(TASKS, CFG, [0, 1], None, None)
    zero = _train_stacked(TASKS, replace(CFG, augment=replace(AUG, weight=0.0)), [0, 1], None, None)
    assert _gap(plain, zero) == 0.0 and not any(r.fit_history for r in zero)


def test_a_stacked_augmented_run_is_each_replicates_own_run() -> None:
    """Each replicate draws from its own seed's stream: stacked equals serial (float64)."""
    cfg = replace(CFG, augment=AUG)
    stacked = _train_stacked(TASKS, cfg, [0, 1], None, None, dtype=torch.float64)
    for i, seed in enumerate((0, 1)):
        alone = _train_stacked(TASKS[i : i + 1], cfg, [seed], None, None, dtype=torch.float64)
        assert _gap(stacked[i : i + 1], alone) <= 1e-9
        steps, r2 = zip(*stacked[i].fit_history, strict=True)
        alone_steps, alone_r2 = zip(*alone[0].fit_history, strict=True)
        assert steps == alone_steps and r2 == pytest.approx(alone_r2, rel=1e-10)


def test_a_windowed_run_replays_augmented_steps_exactly() -> None:
    """The GPU cadence (accuracy read every few steps, replay to a stop) redraws the same
    synthetic subjects from the same fit: bitwise the every-step run's weights."""
    cfg = replace(
        CFG, steps=60, stop_loss=10.0, stop_accuracy=0.3, lr=3e-2, augment=replace(AUG, start=1)
    )
    every = _train_stacked(TASKS, cfg, [0, 1], None, None, window=1)
    sparse = _train_stacked(TASKS, cfg, [0, 1], None, None, window=7)
    assert any(r.stopped_early and r.steps % 7 for r in every)  # a stop inside a window
    assert [r.steps for r in every] == [r.steps for r in sparse]
    assert _gap(every, sparse) == 0.0
    assert [r.fit_history for r in every] == [r.fit_history for r in sparse]


HEAD = "name: t\ninstance: {kind: bijection, entities: 48, relations: 2, seed: 0}\nclaims:\n"
CLAIM = """  - id: gd
    check: training
    seeds: [0, 1]
    mechanism: false
    model: {d_model: 8, d_mlp: 32, attention: uniform, init: {W_E: 0.01}}
    optim:
      optimizer: adamw
      lr: 1e-2
      steps: 60
      stop_loss: 0.0
      groups: {W_E: {optimizer: sgd, lr: 0.1, momentum: 0.9, per_subject: true}}
    expect: {n_facts: 96}
"""


def test_a_sweep_over_the_augment_weight_runs_each_point_and_records_the_fit() -> None:
    text = HEAD + CLAIM.replace(
        "    expect:", "    sweep: {optim.augment.weight: [0, 1]}\n    expect:"
    )
    report = run_spec(load_spec_text(text))
    off, on = report.results
    assert off.status == on.status == "passed"
    off_runs = off.evidence["replicates"]["evidence"]
    on_runs = on.evidence["replicates"]["evidence"]
    assert all("augment_fit_r2" not in e for e in off_runs)
    fits = [e["augment_fit_r2"] for e in on_runs]
    assert [[s for s, _ in f] for f in fits] == [[50], [50]]  # start 50, refit every 25
    assert all(0.0 < v <= 1.0 for f in fits for _, v in f)


def test_augment_fields_are_refused_naming_the_key() -> None:
    bad = HEAD + CLAIM.replace("      steps: 60", "      steps: 60\n      augment: {weight: -1}")
    with pytest.raises(SpecError, match="greater than or equal to 0") as err:
        load_spec_text(bad, file="bad.spec.yaml")
    assert err.value.line is not None
    wide = HEAD + CLAIM.replace("d_model: 8", "d_model: 24").replace(
        "      steps: 60", "      steps: 60\n      augment: {}"
    )
    runner = SpecRunner(load_spec_text(wide), Limits())
    with pytest.raises(SpecError, match=r"N > R\*d_model \+ 1 = 49") as refused:
        runner.preflight()
    assert refused.value.key == "gd.optim.augment"
