"""The runner (verifier/engine/runner.py): limits before work, dependencies, sweeps, errors.

Every kind's ``run`` is watched through the registry, so each test can say which claims ran and
in what order. Tiny constructions; nothing trains.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import verifier.checks.training as training
from tests.verifier.test_reembed import LP_TRANSFER
from verifier.checks.base import REGISTRY, CheckContext, Measurement
from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import Cancelled, LimitExceeded, SpecError, VerifierError
from verifier.limits import Limits
from verifier.spec import load_spec_text

SPEC = """\
name: runner
instance: {kind: bijection, entities: 16, relations: 2, seed: 3}
claims:
  - id: built
    check: construction
    construction: {name: geometric, code_dim: 8}
    expect: {accuracy: 1.0}
  - id: counted
    check: bound
    theorem: LB1
    given: {precision_bits: 16}
    against: built
    expect: {min_embedding_dim: "<= measured_embedding_dim"}
  - id: again
    check: bound
    theorem: LB1
    given: {precision_bits: 16}
    against: built
    expect: {min_embedding_dim: ">= 0"}
"""
WIDE = """\
  - id: wide
    check: construction
    construction: {name: geometric, code_dim: 64}
    expect: {accuracy: 1.0}
"""


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The ids of the claims whose check ran, in order (construction and bound kinds)."""
    order: list[str] = []
    for tag in ("construction", "bound"):
        cls = type(REGISTRY[tag])
        original = cls.run

        def watched(
            self: object, ctx: CheckContext[object, object], original: object = original
        ) -> Measurement:
            order.append(getattr(ctx.claim, "id", "?"))
            return original(self, ctx)  # type: ignore[operator]

        monkeypatch.setattr(cls, "run", watched)
    yield order


def _spec(text: str = SPEC) -> SpecRunner:
    return SpecRunner(load_spec_text(text, "runner.spec.yaml"))


def test_dependencies_run_once_and_first(ran: list[str]) -> None:
    report = run_spec(load_spec_text(SPEC))
    assert ran == ["built", "counted", "again"]  # built once, though two claims read it
    assert [r.status for r in report.results] == ["passed"] * 3
    counted = report.results[1]
    assert counted.measured["measured_embedding_dim"] == report.results[0].measured["embedding_dim"]


def test_a_selected_claim_runs_with_its_dependencies_only(ran: list[str]) -> None:
    report = _spec().run(select=lambda key: key == "again")
    assert ran == ["built", "again"] and [r.key for r in report.results] == ["again"]


def test_preflight_refuses_an_over_limit_claim_before_any_claim_runs(ran: list[str]) -> None:
    runner = _spec(SPEC + WIDE)
    with pytest.raises(LimitExceeded, match=r"claim 'wide': code_dim is 64, over the limit"):
        SpecRunner(runner.spec, Limits(max_code_dim=32)).preflight()
    assert ran == []


def test_preflight_refuses_the_lp_transfer_before_its_training_trains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One subject's P2 program over gd's model: R (N - 1 + d_mlp) x (d + 1) = 2 * 111 * 13."""

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(training, "train_replicates_cached", no_training)
    runner = SpecRunner(load_spec_text(LP_TRANSFER), Limits(max_lp_entries=2 * 111 * 13 - 1))
    with pytest.raises(
        LimitExceeded,
        match=r"claim 'moved': each P2 program \(rows x columns\) is 2,886, over the limit "
        r"max_lp_entries = 2,885",
    ):
        runner.preflight()
    SpecRunner(load_spec_text(LP_TRANSFER), Limits(max_lp_entries=2 * 111 * 13)).preflight()


def test_an_instance_kind_a_check_does_not_accept_is_a_spec_error() -> None:
    text = (
        "name: p1\ninstance: {kind: multi_hop, entities: 8, relations: 2, hops: 2, seed: 1}\n"
        "claims:\n  - id: c\n    check: feasibility\n    program: codebook_margin\n"
        "    construction: {name: geometric, code_dim: 4}\n    expect: {status: feasible}\n"
    )
    with pytest.raises(SpecError, match="feasibility claims: expected a bijection instance") as err:
        _spec(text).preflight()
    assert err.value.key == "instance.kind" and err.value.file == "runner.spec.yaml"


def test_a_sweep_expands_to_its_points_in_grid_order(ran: list[str]) -> None:
    built = SPEC.split("  - id: counted")[0]
    runner = _spec(
        built.replace("code_dim: 8}\n", "code_dim: 8}\n    sweep: {N: [8, 16], seed: [1, 2]}\n")
    )
    assert [p.key for p in runner.points["built"]] == [
        "built[N=8,seed=1]",
        "built[N=8,seed=2]",
        "built[N=16,seed=1]",
        "built[N=16,seed=2]",
    ]
    results = runner.claim_results("built")
    assert [r.measured["n_facts"] for r in results] == [16, 16, 32, 32]
    assert results[1].point == {"N": 8, "seed": 2}
    assert ran == [p.key.split("[")[0] for p in runner.points["built"]]
    with pytest.raises(LimitExceeded, match="max_sweep_points"):
        SpecRunner(runner.spec, Limits(max_sweep_points=3))


def test_a_claim_that_raises_is_an_error_result_and_its_dependents_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: object, ctx: object) -> Measurement:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(type(REGISTRY["construction"]), "run", broken)
    built, counted, again = run_spec(load_spec_text(SPEC)).results
    assert built.status == "error" and built.message == "internal error: ZeroDivisionError: a bug"
    assert counted.status == again.status == "error"
    assert "which this claim needs, did not complete" in counted.message


def test_a_verifier_error_is_reported_by_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: object, ctx: object) -> Measurement:
        raise VerifierError("no certificate")

    monkeypatch.setattr(type(REGISTRY["bound"]), "run", refused)
    built, counted, _ = run_spec(load_spec_text(SPEC)).results
    assert built.status == "passed"
    assert counted.status == "error" and counted.message == "VerifierError: no certificate"


def test_without_preflight_an_over_limit_point_is_an_error_when_it_comes(ran: list[str]) -> None:
    runner = SpecRunner(load_spec_text(SPEC + WIDE), Limits(max_code_dim=32))
    results = runner.run().results
    assert [r.status for r in results] == ["passed", "passed", "passed", "error"]
    assert results[-1].message.startswith("LimitExceeded: code_dim is 64")
    assert ran == ["built", "counted", "again"]


def test_cancelling_stops_the_run_instead_of_reporting_an_error() -> None:
    runner = SpecRunner(load_spec_text(SPEC), is_cancelled=lambda: True)
    with pytest.raises(Cancelled):
        runner.run()


def test_a_claim_expecting_nothing_that_nothing_reads_is_refused() -> None:
    text = SPEC.replace('    expect: {min_embedding_dim: ">= 0"}\n', "")
    with pytest.raises(SpecError, match="claim 'again' expects nothing") as err:
        _spec(text).preflight()
    assert err.value.key == "claims.2.expect"


def test_an_xfail_claim_that_fails_is_xfailed() -> None:
    text = SPEC.replace("expect: {accuracy: 1.0}", "xfail: known\n    expect: {accuracy: 0.5}")
    built = run_spec(load_spec_text(text)).results[0]
    assert built.status == "xfailed" and built.xfail == "known"
