"""Training curves in the report: each replicate's ``(step, loss, accuracy)`` history reaches
``ClaimResult.history``, from a fresh run, a reused checkpoint and a reused verdict alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import verifier
from verifier.engine.report import ClaimResult

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py

SPEC = """name: curves
instance: {kind: bijection, entities: 24, relations: 2, seed: 0}
claims:
  - id: replicated
    check: training
    seeds: [3, 5]
    model: {d_model: 8, d_mlp: 32, attention: uniform}
    optim: {optimizer: adamw, lr: 1e-2, steps: 300, eval_every: 1}
    expect: {accuracy: ">= 0.0"}
  - id: single
    check: training
    train_seed: 7
    model: {d_model: 8, d_mlp: 32, attention: uniform}
    optim: {optimizer: adamw, lr: 1e-2, steps: 60}
    expect: {accuracy: ">= 0.0"}
"""


def _check_curves(result: ClaimResult, seeds: list[int]) -> None:
    assert [h.seed for h in result.history] == seeds
    for h in result.history:
        assert 2 <= len(h.step) <= 200
        assert len(h.step) == len(h.loss) == len(h.accuracy)
        assert h.step == sorted(set(h.step)) and h.step[0] == 0
        assert all(0.0 <= a <= 1.0 for a in h.accuracy)
        assert all(loss > 0 for loss in h.loss)
        assert h.loss[-1] < h.loss[0]  # the run learned something


def test_history_is_in_fresh_reused_and_checkpointed_reports(tmp_path: Path) -> None:
    spec = tmp_path / "curves.spec.yaml"
    spec.write_text(SPEC)
    cache = tmp_path / "cache"
    [fresh] = verifier.check(spec, cache_dir=cache)
    replicated, single = fresh.results
    assert not replicated.reused
    _check_curves(replicated, [3, 5])
    _check_curves(single, [7])
    # the thinning to at most 200 rows keeps the last evaluated step
    assert (
        replicated.history[0].step[-1]
        == replicated.evidence["replicates"]["evidence"][0]["history"][-1][0]
    )
    assert single.history[0].step[-1] == single.measured["steps"]

    [reused] = verifier.check(spec, cache_dir=cache)  # stored verdicts
    assert all(r.reused for r in reused.results)
    assert [r.history for r in reused.results] == [r.history for r in fresh.results]

    [again] = verifier.check(spec, cache_dir=cache, reuse=False)  # checkpoints, verified again
    assert not any(r.reused for r in again.results)
    assert [r.history for r in again.results] == [r.history for r in fresh.results]

    dumped = json.loads(fresh.model_dump_json())
    curve = dumped["results"][0]["history"][1]
    assert set(curve) == {"seed", "step", "loss", "accuracy"} and curve["seed"] == 5


def test_non_training_claims_have_no_history() -> None:
    text = (
        "name: c\ninstance: {kind: bijection, entities: 16, relations: 2, seed: 0}\nclaims:\n"
        "  - id: c\n    check: construction\n    construction: {name: geometric}\n"
        "    expect: {accuracy: 1.0}\n"
    )
    [report] = verifier.check(text, cache=False)
    assert report.results[0].status == "passed" and report.results[0].history == []


def test_history_records_one_row_per_step_and_seed() -> None:
    from verifier.engine.report import ReplicateHistory, Report

    result = ClaimResult(
        key="gd",
        claim_id="gd",
        check="training",
        status="passed",
        history=[
            ReplicateHistory(seed=0, step=[0, 10], loss=[2.0, 1.0], accuracy=[0.1, 0.5]),
            ReplicateHistory(seed=1, step=[0], loss=[2.5], accuracy=[0.0]),
        ],
    )
    report = Report(spec="s", spec_hash="h", verifier_version="0", results=[result])
    rows = report.history_records()
    assert [(r["seed"], r["step"], r["loss"]) for r in rows] == [
        (0, 0, 2.0),
        (0, 10, 1.0),
        (1, 0, 2.5),
    ]
    assert rows[1]["accuracy"] == 0.5 and rows[0]["key"] == "gd"
