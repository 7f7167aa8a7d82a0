"""Replicated verdicts (verifier/engine/replicates.py): how ``require`` meets ``expect``."""

from __future__ import annotations

from typing import Any

import pytest

from verifier.engine.replicates import aggregate, judge_all, median_value
from verifier.spec.expectations import parse_expectation

SYMBOLS = {"N": 512.0, "R": 2.0, "k": 1.0}


def _judge(
    expect: dict[str, Any], replicates: list[dict[str, Any]], require: str
) -> tuple[str, list[Any]]:
    exps = [parse_expectation(m, raw) for m, raw in expect.items()]
    outcomes, status = judge_all(
        exps,
        aggregate(replicates),
        SYMBOLS,
        replicates,
        require,  # type: ignore[arg-type]
    )
    return status, outcomes


def test_all_needs_every_replicate() -> None:
    reps = [{"x": 0.95}, {"x": 0.91}, {"x": 0.89}]
    assert _judge({"x": ">= 0.9"}, reps, "all")[0] == "failed"
    assert _judge({"x": ">= 0.85"}, reps, "all")[0] == "passed"
    _, outcomes = _judge({"x": ">= 0.9"}, reps, "all")
    assert outcomes[0].replicates == [0.95, 0.91, 0.89]
    assert "2/3 replicates hold (need 3)" in outcomes[0].detail
    assert outcomes[0].measured == 0.91  # the median, shown beside every replicate's value


def test_majority_judges_each_replicate_whole() -> None:
    """Two expectations holding on different replicates are not a majority of replicates."""
    reps = [{"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 1.0}, {"x": 0.0, "y": 0.0}]
    assert _judge({"x": ">= 0.5", "y": ">= 0.5"}, reps, "majority")[0] == "failed"
    reps = [{"x": 1.0, "y": 1.0}, {"x": 1.0, "y": 1.0}, {"x": 0.0, "y": 0.0}]
    assert _judge({"x": ">= 0.5", "y": ">= 0.5"}, reps, "majority")[0] == "passed"
    reps = [{"x": 1.0}, {"x": 0.0}, {"x": 0.0}, {"x": 1.0}]  # 2 of 4 is not more than half
    assert _judge({"x": ">= 0.5"}, reps, "majority")[0] == "failed"


def test_median_judges_the_median() -> None:
    reps = [{"x": 0.2}, {"x": 0.95}, {"x": 0.97}]
    status, outcomes = _judge({"x": ">= 0.9"}, reps, "median")
    assert status == "passed" and outcomes[0].measured == 0.95
    assert _judge({"x": ">= 0.96"}, reps, "median")[0] == "failed"


@pytest.mark.parametrize("require", ["all", "majority", "median"])
def test_an_unmeasured_replicate_leaves_the_claim_undecided(require: str) -> None:
    reps: list[dict[str, Any]] = [{"x": 1.0}, {"x": None}, {"x": 1.0}]
    expected = "passed" if require == "majority" else "undecided"  # 2 of 3 hold regardless
    assert _judge({"x": ">= 0.5"}, reps, require)[0] == expected


def test_a_definite_failure_decides_all_despite_an_unmeasured_replicate() -> None:
    reps: list[dict[str, Any]] = [{"x": 0.0}, {"x": None}, {"x": 1.0}]
    status, outcomes = _judge({"x": ">= 0.5"}, reps, "all")
    assert outcomes[0].ok is False and status == "failed"


def test_unreplicated_measurements_are_judged_as_before() -> None:
    exps = [parse_expectation("x", ">= 0.5")]
    assert judge_all(exps, {"x": 0.7}, SYMBOLS)[1] == "passed"
    assert judge_all(exps, {"x": 0.2}, SYMBOLS)[1] == "failed"
    assert judge_all(exps, {"x": None}, SYMBOLS)[1] == "undecided"


def test_medians() -> None:
    assert median_value([3, 1, 2]) == 2 and isinstance(median_value([3, 1, 2]), int)
    assert median_value([1, 2]) == 1.5
    assert median_value([1.0, None]) is None
    assert median_value(["feasible", "feasible"]) == "feasible"
    assert median_value(["feasible", "infeasible"]) is None


# Every combination of one expectation that fails, holds or is unmeasured beside another: any
# failure fails the claim; undecided only where nothing failed and something is unmeasured.
_COMBOS = [
    ("fail", "fail", "failed"),
    ("fail", "hold", "failed"),
    ("fail", "none", "failed"),
    ("hold", "fail", "failed"),
    ("hold", "hold", "passed"),
    ("hold", "none", "undecided"),
    ("none", "fail", "failed"),
    ("none", "hold", "undecided"),
    ("none", "none", "undecided"),
]
_VALUE = {"fail": 0.1, "hold": 0.9, "none": None}


@pytest.mark.parametrize(("x", "y", "status"), _COMBOS)
def test_status_of_each_combination_unreplicated(x: str, y: str, status: str) -> None:
    exps = [parse_expectation("x", ">= 0.5"), parse_expectation("y", ">= 0.5")]
    assert judge_all(exps, {"x": _VALUE[x], "y": _VALUE[y]}, SYMBOLS)[1] == status


@pytest.mark.parametrize("require", ["all", "majority", "median"])
@pytest.mark.parametrize(("x", "y", "status"), _COMBOS)
def test_status_of_each_combination_replicated(x: str, y: str, status: str, require: str) -> None:
    """The same combination on each of three replicates, under each rule."""
    reps = [{"x": _VALUE[x], "y": _VALUE[y]} for _ in range(3)]
    assert _judge({"x": ">= 0.5", "y": ">= 0.5"}, reps, require)[0] == status


@pytest.mark.parametrize("require", ["all", "majority", "median"])
def test_failed_accuracy_with_unreached_steps_to_perfect_is_failed(require: str) -> None:
    """Recall never exact: accuracy fails, steps_to_perfect is never measured; the claim fails."""
    reps: list[dict[str, Any]] = [
        {"accuracy": 381 / 384, "steps_to_perfect": None},
        {"accuracy": 383 / 384, "steps_to_perfect": None},
    ]
    status, outcomes = _judge({"accuracy": 1.0, "steps_to_perfect": "<= 5000"}, reps, require)
    assert status == "failed"
    assert [o.ok for o in outcomes] == [False, None]


def test_majority_mixed_replicates() -> None:
    """Replicates judged whole under majority (2 of 3 needed): failed, unmeasured, passed is
    undecided (the unmeasured one decides); two failed replicates fail the claim."""
    reps: list[dict[str, Any]] = [{"x": 0.1}, {"x": None}, {"x": 0.9}]
    assert _judge({"x": ">= 0.5"}, reps, "majority")[0] == "undecided"
    reps = [{"x": 0.1}, {"x": 0.1}, {"x": None}]
    assert _judge({"x": ">= 0.5"}, reps, "majority")[0] == "failed"
    reps = [{"x": 0.9, "y": None}, {"x": 0.1, "y": 0.9}, {"x": 0.1, "y": 0.9}]
    assert _judge({"x": ">= 0.5", "y": ">= 0.5"}, reps, "majority")[0] == "failed"
