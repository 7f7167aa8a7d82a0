"""Searches that can be trusted (verifier/engine/search.py): capacity, lr ladder, divergence,
non-monotone measures. Checked on stand-in measurements (no training) and on one real,
diverging run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from verifier.bisection import find_maximum
from verifier.checks.base import Measurement
from verifier.engine.runner import run_spec
from verifier.engine.search import inversions, run_minimize
from verifier.spec import TrainingClaim, load_spec_text


@pytest.mark.parametrize("threshold", [1, 2, 3, 7, 8, 9, 100, 1000])
@pytest.mark.parametrize("start", [1, 3])
def test_find_maximum_on_a_monotone_predicate(threshold: int, start: int) -> None:
    calls: list[int] = []

    def holds(v: int) -> bool:
        calls.append(v)
        return v <= threshold

    result = find_maximum(holds, start, 1000)
    if threshold < start:
        assert result.minimum is None and calls == [start]
        return
    assert result.minimum == threshold
    assert result.below == (None if threshold == 1000 else threshold + 1)
    assert len(calls) == len(set(calls)) <= 2 * 10 + 2  # each value once, O(log max) values


def test_inversions_follow_the_search_direction() -> None:
    accuracy = {14: (0.952, 0.99), 15: (0.813, 0.99), 16: (1.0, 0.99)}
    assert inversions(accuracy, "larger", largest=False) == [(14, 15)]  # wider, yet worse
    assert inversions(accuracy, "larger", largest=True) == [(15, 16)]  # 14 -> 16: +0.048
    noisy = {40: (0.975, 0.99), 44: (0.977, 0.99)}  # within the slack: not an inversion
    assert inversions(noisy, "larger", largest=True) == []


INSTANCE = "name: t\ninstance: {kind: bijection, entities: 32, relations: 1, seed: 0}\nclaims:\n"
CLAIM = """  - id: width
    check: training
    seeds: [0, 1, 2]
    model: {d_model: 8, d_mlp: 4}
    optim: {optimizer: adam, lr: 0.03, steps: 100}
    minimize: {SEARCH}
"""

Table = Callable[[int, float], list[tuple[float, bool]]]  # (d_mlp, lr) -> (accuracy, diverged)


def _search(search: str, table: Table) -> tuple[Measurement, list[tuple[int, float]]]:
    spec = load_spec_text(INSTANCE + CLAIM.replace("{SEARCH}", search))
    claim = spec.claims[0]
    calls: list[tuple[int, float]] = []

    def evaluate(inst: Any, cl: Any) -> Measurement:
        assert isinstance(cl, TrainingClaim)
        calls.append((cl.model.d_mlp, cl.optim.lr))
        reps = [
            {"accuracy": acc, "diverged": div} for acc, div in table(cl.model.d_mlp, cl.optim.lr)
        ]
        median = sorted(r["accuracy"] for r in reps)[1]
        return Measurement("empirical", {"accuracy": median}, replicates=reps)

    return run_minimize(spec.instance, claim, evaluate), calls


def test_a_width_search_reports_its_boundary_when_the_runs_agree() -> None:
    m, _ = _search(
        "{field: d_mlp, until: {accuracy: '>= 0.99'}, start: 1, max: 64}",
        lambda w, lr: [(1.0 if w >= 11 else 0.05 * w, False)] * 3,
    )
    assert m.status is None and m.values["minimum"] == 11
    assert m.evidence["search"]["fails_at"] == 10


def test_a_diverging_lr_gives_divergent_points_not_a_boundary() -> None:
    # a trained d_mlp search at lr 3e-2: 0.036 at width 16, 0.578 at 20, 0.024 at 21, 1.0 at 22
    blown = {16: 0.036, 20: 0.578, 21: 0.024}
    m, _ = _search(
        "{field: d_mlp, until: {accuracy: '>= 0.99'}, start: 16, max: 32}",
        lambda w, lr: [(blown.get(w, 1.0 if w >= 22 else 0.3), w in blown)] * 3,
    )
    search = m.evidence["search"]
    assert m.status == "undecided" and m.values["minimum"] is None
    assert search["diverged"] == [16, 20, 21]
    assert "no boundary reported from a diverged run" in m.message


def test_a_non_monotone_measure_is_reported_with_its_points() -> None:
    # a trained d_mlp search at lr 1e-2: 0.952 at width 14, 0.813 at 15, 1.0 at 16 (no run diverged)
    acc = {14: 0.952, 15: 0.813}
    m, _ = _search(
        "{field: d_mlp, until: {accuracy: '>= 0.99'}, start: 4, max: 16}",
        lambda w, lr: [(acc.get(w, 1.0 if w >= 16 else 0.5), False)] * 3,
    )
    search = m.evidence["search"]
    assert m.status == "undecided" and m.values["minimum"] is None
    assert {"measure": "accuracy", "values": [14, 15], "measured": [0.952, 0.813]} in search[
        "non_monotone"
    ]
    assert "not monotone in d_mlp" in m.message and "0.952 at 14 but 0.813 at 15" in m.message


def test_the_lr_ladder_keeps_each_replicates_first_holding_rung() -> None:
    # replicate 2 diverges at the first rung everywhere and holds at the second from width 8
    def table(w: int, lr: float) -> list[tuple[float, bool]]:
        good = (1.0 if w >= 8 else 0.5, False)
        return [good, good, (0.01, True) if lr > 0.01 else good]

    m, calls = _search(
        "{field: d_mlp, until: {accuracy: '>= 0.99'}, start: 2, max: 64, lr_ladder: [0.1, 0.003]}",
        table,
    )
    assert m.status is None and m.values["minimum"] == 8
    assert [r["lr"] for r in m.replicates or []] == [0.1, 0.1, 0.003]
    assert (8, 0.1) in calls and (8, 0.003) in calls  # the second rung only where needed
    rungs = next(e for e in m.evidence["search"]["evaluated"] if e["value"] == 8)["rungs"]
    assert [r["diverged"] for r in rungs[0]["replicates"]] == [False, False, True]


def test_a_real_diverging_lr_makes_the_search_report_divergent_points() -> None:
    """Adam at lr 10 on a tiny associative memory: every width diverges, no boundary; the same
    search with a ladder [10, 3e-2] finds its boundary on the second rung."""
    claim = """  - id: width
    check: training
    seeds: [0, 1]
    model: {d_model: 8, d_mlp: 4, attention: none, unit_norm: [W_E, W_U], init: {W_pos: 0}}
    optim: {optimizer: adam, lr: 10, steps: 200, stop_accuracy: 0.99, stop_loss: 1e9}
    freeze: [W_E, W_U, W_pos, b_out]
    mechanism: false
    minimize: {field: d_mlp, until: {accuracy: '>= 0.99'}, start: 5, max: 8LADDER}
"""
    text = INSTANCE.replace("entities: 32", "entities: 12") + claim
    [plain] = run_spec(load_spec_text(text.replace("LADDER", ""))).results
    assert plain.status == "undecided" and plain.measured["minimum"] is None
    assert plain.evidence["search"]["diverged"] == [5, 8]
    assert "diverged at 5, 8" in plain.message
    [ladder] = run_spec(load_spec_text(text.replace("LADDER", ", lr_ladder: [10, 3e-2]"))).results
    assert ladder.status == "passed", ladder.message
    assert ladder.measured["minimum"] == 6
    evaluated = ladder.evidence["search"]["evaluated"]
    assert all(r["diverged"] for e in evaluated for r in e["rungs"][0]["replicates"])
