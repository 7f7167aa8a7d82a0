"""The trainer and the training/transfer claims: determinism, caching, refusals before work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from verifier.checks.base import CheckContext
from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import Cancelled, LimitExceeded, SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.limits import Limits
from verifier.spec import load_spec_text
from verifier.train import TrainConfig, checkpoint_path, lr_factor, train, train_cached

TINY = """
name: tiny-training
instance: {kind: bijection, entities: 64, relations: 2, seed: 5}
claims:
  - id: gd
    check: training
    model: {d_model: 12, d_mlp: 48, heads: 1}
    optim: {lr: 2e-2, steps: 400}
    expect: {accuracy: 1.0, probe_accuracy: ">= 0"}
  - id: moved
    check: transfer
    from: gd
    method: probe
    expect: {control_accuracy: "<= 0.1"}
"""
TRAIN_ONLY = TINY.split("  - id: moved")[0]
FACTS = BijectionFacts(64, 2, seed=5)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


CFG = TrainConfig(d_model=12, d_mlp=48, lr=2e-2, steps=400)


def _report(text: str = TINY, **kwargs: object) -> list[dict[str, object]]:
    report = run_spec(load_spec_text(text, file="tiny.spec.yaml"), **kwargs)  # type: ignore[arg-type]
    return [r.model_dump(exclude={"duration_s"}) for r in report.results]


def test_gd_recalls_every_fact_and_stops_early() -> None:
    result = train(FACTS, CFG)
    assert result.final_accuracy == 1.0 and result.stopped_early
    assert result.steps_to_perfect is not None and result.steps_to_perfect <= result.steps < 400
    assert result.final_loss <= CFG.stop_loss


def test_two_runs_with_one_seed_give_identical_reports() -> None:
    first, second = _report(), _report()
    assert first == second
    assert first[0]["status"] == "passed"
    other = _report(TINY.replace("heads: 1}", "heads: 1}\n    train_seed: 9"))
    assert other[0]["measured"] != first[0]["measured"]


def test_minibatch_runs_are_deterministic() -> None:
    cfg = TrainConfig(d_model=12, d_mlp=48, lr=1e-2, steps=60, batch_size=32, eval_every=20)
    a, b = train(FACTS, cfg), train(FACTS, cfg)
    assert a.history == b.history and len(a.history) == 4
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )


def test_frozen_weights_stay_at_their_init() -> None:
    cfg = TrainConfig(d_model=12, d_mlp=48, lr=1e-2, steps=20, freeze=("W_E", "W_U"), stop_loss=0)
    result = train(FACTS, cfg)
    init = train(FACTS, TrainConfig(d_model=12, d_mlp=48, steps=0, freeze=("W_E", "W_U")))
    assert result.steps == 20
    assert torch.equal(result.model.W_E, init.model.W_E)
    assert torch.equal(result.model.W_U, init.model.W_U)
    assert not torch.equal(result.model.W_in, init.model.W_in)


def test_checkpoint_is_reused_and_reports_agree(tmp_path: Path) -> None:
    trained = train_cached(FACTS, CFG, "k1", tmp_path)
    assert checkpoint_path(tmp_path, "k1").is_file() and not trained.from_cache
    again = train_cached(FACTS, CFG, "k1", tmp_path)
    assert again.from_cache and again.steps == trained.steps
    assert torch.equal(again.model.W_E, trained.model.W_E)
    fresh = _report()
    cached1, cached2 = _report(cache_dir=str(tmp_path)), _report(cache_dir=str(tmp_path))
    assert fresh == cached1 == cached2
    assert len(list((tmp_path / "training").glob("*.pt"))) == 2  # k1 and the claim's key


def test_progress_reaches_the_context_and_cancel_stops_training() -> None:
    seen: list[tuple[str, float, str]] = []
    spec = load_spec_text(TINY)
    runner = SpecRunner(spec, progress=lambda k, f, m: seen.append((k, f, m)))
    runner.run()
    messages = [m for k, _, m in seen if k == "gd"]
    assert any(m.startswith("step 0/400: loss") for m in messages) and messages[-1] == "done"
    calls = iter(range(1000))
    cancelling = SpecRunner(spec, is_cancelled=lambda: next(calls) >= 3)
    with pytest.raises(Cancelled):
        cancelling.run()


def test_schedules() -> None:
    cfg = TrainConfig(d_model=4, d_mlp=4, steps=110, warmup=10, schedule="cosine")
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(10, cfg) == 1.0
    assert lr_factor(60, cfg) == pytest.approx(0.5) and lr_factor(110, cfg) == pytest.approx(0.0)
    linear = TrainConfig(d_model=4, d_mlp=4, steps=100, schedule="linear")
    assert lr_factor(25, linear) == pytest.approx(0.75)


# --- refused before any training ------------------------------------------------------------------


def _preflight(text: str, limits: Limits | None = None) -> None:
    runner = SpecRunner(load_spec_text(text, file="bad.spec.yaml"), limits or Limits())
    runner.preflight()


@pytest.mark.parametrize(
    ("edit", "limits", "limit_name"),
    [
        (("steps: 400", "steps: 5000"), Limits(max_steps=1000), "max_steps"),
        (("entities: 64", "entities: 64"), Limits(max_entities=32), "max_entities"),
        (("d_mlp: 48", "d_mlp: 4096"), Limits(max_width=1024), "max_width"),
        (("d_model: 12", "d_model: 2048"), Limits(max_width=1024), "max_width"),
    ],
)
def test_oversized_training_is_refused(
    edit: tuple[str, str], limits: Limits, limit_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import verifier.checks.training as training

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained despite a limit")

    monkeypatch.setattr(training, "train_replicates_cached", no_training)
    with pytest.raises(LimitExceeded, match=limit_name):
        _preflight(TRAIN_ONLY.replace(*edit), limits)


def test_expecting_an_underdetermined_measure_is_refused_with_its_line() -> None:
    text = TINY.replace("probe_accuracy", "superposition_r2")
    # 8 folds of 64 subjects fit on 56; R*d + 1 = 2*28 + 1 = 57 regressors
    text = text.replace("d_model: 12", "d_model: 28")
    with pytest.raises(SpecError) as err:
        _preflight(text)
    assert err.value.line == 5 and err.value.file == "bad.spec.yaml"
    assert "N - ceil(N/8) > R*d + 1 = 57" in err.value.message
    assert "superposition_r2" in str(err.value.key)


def test_transfer_must_name_a_training_claim() -> None:
    construction = TINY.replace(
        "  - id: moved",
        "  - id: built\n    check: construction\n"
        "    construction: {name: geometric, code_dim: 8}\n  - id: moved",
    ).replace("from: gd", "from: built")
    with pytest.raises(SpecError, match="expected the id of a training claim, got 'built'"):
        load_spec_text(construction)
    with pytest.raises(SpecError, match="not an earlier claim"):
        load_spec_text(TINY.replace("from: gd", "from: nowhere"))


def test_an_underdetermined_probe_transfer_is_refused() -> None:
    text = TINY.replace("d_model: 12", "d_model: 32")  # N = 64 <= R*d + 1 = 65
    with pytest.raises(SpecError, match="probe is underdetermined") as err:
        load_spec_text(text)
    assert err.value.line == 10


def test_multi_hop_training_is_accepted_but_its_transfer_is_refused() -> None:
    """Multi-hop training: tests/verifier/test_train_multihop.py. Transfer stays single-hop."""
    text = TINY.replace(
        "{kind: bijection, entities: 64, relations: 2, seed: 5}",
        "{kind: multi_hop, entities: 64, relations: 2, hops: 2, seed: 5}",
    ).replace('probe_accuracy: ">= 0"', 'step_accuracy: ">= 0"')
    _preflight(text.split("  - id: moved")[0])
    with pytest.raises(SpecError, match="transfer claims: expected a bijection instance"):
        _preflight(text)


def test_context_report_cancels() -> None:
    ctx = CheckContext(instance=None, claim=None, limits=Limits(), is_cancelled=lambda: True)
    with pytest.raises(Cancelled):
        train(FACTS, CFG, progress=lambda s, lo, a: ctx.report(s / 400))


def test_lp_transfer_runs_p2_and_is_judged_by_the_forward_pass() -> None:
    [_, moved] = _report(TINY.replace("method: probe", "method: lp"))
    evidence = moved["evidence"]["method"]  # type: ignore[index]
    assert evidence["lp_rounds"] >= 1 and evidence["lp_solves"] >= 1
    assert moved["measured"]["accuracy"] == evidence["correct"] / 128  # type: ignore[index]
