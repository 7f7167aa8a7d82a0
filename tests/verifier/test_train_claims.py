"""Training and transfer claims with the issue-12 fields: replicates, groups, relearn, maps."""

from __future__ import annotations

import pytest

from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import SpecError
from verifier.limits import Limits
from verifier.spec import load_spec_text

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


HEAD = "name: t\ninstance: {kind: bijection, entities: 48, relations: 2, seed: 0}\nclaims:\n"
REGIME = """  - id: gd
    check: training
    seeds: [0, 1, 2]
    model: {d_model: 8, d_mlp: 32, attention: uniform, init: {W_E: 0.01}}
    optim:
      optimizer: adamw
      lr: 1e-2
      steps: 400
      groups: {W_E: {optimizer: sgd, lr: 0.1, momentum: 0.9, per_subject: true}}
    expect: {accuracy: 1.0, steps_to_perfect: "<= 400"}
"""


def _load(claims: str) -> None:
    load_spec_text(HEAD + claims, file="bad.spec.yaml")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            ("seeds: [0, 1, 2]", "seeds: [0, 1, 2]\n    train_seed: 3"),
            "expected seeds or train_seed",
        ),
        (("seeds: [0, 1, 2]", "seeds: [0, 0]"), "expected distinct seeds"),
        (("seeds: [0, 1, 2]", "require: majority"), "require: majority needs replicates"),
        (("per_subject: true", "per_subject: true}, W_U: {per_subject: true"), "W_E only"),
        (("steps: 400", "steps: 400\n      min_steps: 500"), "expected at most steps = 400"),
        (("init: {W_E: 0.01}", "init: {W_X: 0.01}"), "W_X"),
        (("init: {W_E: 0.01}", "init: {W_E: -1}"), "greater than or equal to 0"),
        (("init: {W_E: 0.01}", "init: {W_E: .inf}"), "finite"),
        (("attention: uniform", "attention: hard"), "learned"),
        (("lr: 0.1", "lr: .nan"), "finite"),
    ],
)
def test_bad_training_fields_are_refused_naming_the_key(edit: tuple[str, str], match: str) -> None:
    with pytest.raises(SpecError, match=match) as err:
        _load(REGIME.replace(*edit))
    assert err.value.file == "bad.spec.yaml" and err.value.line is not None


def test_relearn_fields_need_method_relearn() -> None:
    transfer = "  - id: t\n    check: transfer\n    from: gd\n    control_from: gd\n"
    with pytest.raises(SpecError, match="only method relearn takes it"):
        _load(REGIME + transfer)


def test_replicated_claims_show_every_replicate_and_transfer_inherits_them() -> None:
    text = (
        HEAD
        + REGIME
        + (
            "  - id: probe\n    check: transfer\n    from: gd\n    method: probe\n"
            "    expect: {control_accuracy: '<= 0.2'}\n"
            "  - id: relearn\n    check: transfer\n    from: gd\n    method: relearn\n"
            "    relearn: {steps: 30}\n    expect: {n_facts: 96}\n"
        )
    )
    report = run_spec(load_spec_text(text))
    gd, probe, relearn = report.results
    assert gd.status == "passed", gd.message
    assert gd.evidence["replicates"]["seeds"] == [0, 1, 2]
    values = gd.evidence["replicates"]["values"]
    assert len(values) == 3 and all(v["accuracy"] == 1.0 for v in values)
    assert gd.expectations[0].replicates == [1.0, 1.0, 1.0]
    steps = sorted(v["steps_to_perfect"] for v in values)
    assert gd.measured["steps_to_perfect"] == steps[1]  # the median
    assert probe.status == "passed" and len(probe.evidence["replicates"]["values"]) == 3
    assert relearn.status == "passed", relearn.message
    replicated = relearn.evidence["replicates"]
    for v, ev in zip(replicated["values"], replicated["evidence"], strict=True):
        assert 0 <= v["start_accuracy"] <= 1 and v["control_accuracy"] is None
        assert ev["steps"] == (30 if v["steps_to_perfect"] is None else v["steps_to_perfect"])


def test_claims_sharing_a_run_train_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import verifier.train as train_module

    calls: list[int] = []
    real = train_module.train_replicates

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "train_replicates", counting)
    again = REGIME.replace("id: gd", "id: gd-again").replace("accuracy: 1.0, ", "")
    report = run_spec(load_spec_text(HEAD + REGIME + again))
    assert [r.status for r in report.results] == ["passed", "passed"]
    assert len(calls) == 1  # the second claim reuses the first claim's models in this run


def test_a_regime_map_sweeps_dotted_fields_and_transfer_follows_its_points() -> None:
    text = (
        HEAD
        + REGIME.replace(
            "    expect:",
            "    sweep: {optim.groups.W_E.lr: [0.05, 0.1], model.init.W_E: [0.01, 1]}\n    expect:",
        )
        + "  - id: probe\n    check: transfer\n    from: gd\n"
        + "    expect: {control_accuracy: '<= 0.2'}\n"
    )
    runner = SpecRunner(load_spec_text(text), Limits())
    keys = runner.keys()
    assert "gd[optim.groups.W_E.lr=0.05,model.init.W_E=1]" in keys
    assert "probe[optim.groups.W_E.lr=0.1,model.init.W_E=0.01]" in keys
    point = runner.points["gd"][1]
    assert point.claim.optim.groups["W_E"].lr == 0.05 and point.claim.model.init == {"W_E": 1}


def test_a_dotted_sweep_into_an_unknown_key_names_it() -> None:
    text = HEAD + REGIME.replace("    expect:", "    sweep: {model.inti.W_E: [1]}\n    expect:")
    with pytest.raises(SpecError, match="inti"):
        SpecRunner(load_spec_text(text), Limits())


def test_too_many_replicates_are_refused_before_training() -> None:
    runner = SpecRunner(load_spec_text(HEAD + REGIME), Limits(max_replicates=2))
    with pytest.raises(Exception, match="max_replicates"):
        runner.preflight()


def test_relation_gating_is_reported_beside_its_value_at_initialisation() -> None:
    """relation_gating_init is relation_gating of the trainer's own initial model (same seed)."""
    from verifier.checks.construction import bijection_facts
    from verifier.measure import mechanism as mech
    from verifier.spec import BijectionInstance, TrainingClaim
    from verifier.train import build_model
    from verifier.train.config import train_config

    spec = load_spec_text(HEAD + REGIME.replace("seeds: [0, 1, 2]\n    ", ""))
    (gd,) = run_spec(spec).results
    assert gd.status == "passed", gd.message
    instance, claim = spec.instance, spec.claims[0]
    assert isinstance(instance, BijectionInstance) and isinstance(claim, TrainingClaim)
    facts = bijection_facts(instance)
    start = mech.as_float64(build_model(facts, train_config(instance, claim)))
    assert gd.measured["relation_gating_init"] == mech.relation_gating(start, facts).value
    for name in ("relation_gating", "relation_gating_init", "relu_necessity"):
        assert isinstance(gd.measured[name], float) and gd.measured[name] <= 1.0
    assert "relation_gating_init" in gd.evidence["mechanism"]
