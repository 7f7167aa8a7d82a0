"""The training-to-transfer hand-off: :class:`TrainedModels`, and a clear error when a transfer
claim's dependency handed on something else."""

from __future__ import annotations

import pytest

from verifier.checks.base import CheckContext, Measurement
from verifier.checks.trained import TRAINED_MODELS, TrainedModels, trained_models
from verifier.checks.transfer import TransferCheck
from verifier.engine.runner import SpecRunner
from verifier.errors import VerifierError
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.limits import Limits
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.spec import BijectionInstance, TrainingClaim, TransferClaim, load_spec_text
from verifier.train.config import train_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py

INSTANCE = BijectionInstance(kind="bijection", entities=8, relations=1, seed=0)
SPEC = """name: handoff
instance: {kind: bijection, entities: 12, relations: 1, seed: 0}
claims:
  - id: gd
    check: training
    seeds: [0, 1]
    mechanism: false
    model: {d_model: 4, d_mlp: 8}
    optim: {lr: 0.01, steps: 3}
  - {id: t, check: transfer, from: gd, method: random, expect: {control_accuracy: '>= 0'}}
  - {id: r, check: transfer, from: gd, method: relearn, control_from: gd, relearn: {steps: 3},
     expect: {control_accuracy: '>= 0'}}
"""


def _model() -> OneLayerTransformer:
    return OneLayerTransformer(ModelConfig(10, 2, 4, 4, 1, 8, 8))


def _transfer(dependency: Measurement, method: str = "random") -> Measurement:
    claim = TransferClaim.model_validate({"id": "t", "check": "transfer", "from": "gd"})
    claim = claim.model_copy(update={"method": method})
    ctx = CheckContext(INSTANCE, claim, Limits(), dependencies={"gd": dependency})
    return TransferCheck().run(ctx)


def test_a_dependency_that_handed_on_other_objects_is_named() -> None:
    construction = Measurement(
        "exact", {}, artifacts={"model": _model(), "facts": None, "codes": None, "layout": None}
    )
    with pytest.raises(VerifierError, match=r"'gd'.*got its artifacts codes, facts, layout"):
        _transfer(construction)
    with pytest.raises(VerifierError, match=r"'gd'.*got none"):
        _transfer(Measurement("exact", {}))


def test_models_from_a_file_cannot_be_relearned() -> None:
    file = TrainedModels((_model(),), (BijectionFacts(8, 1, seed=0),), (0,))
    with pytest.raises(VerifierError, match=r"training settings of 'gd'.*file"):
        _transfer(Measurement("exact", {}, artifacts=file.as_artifacts()), "relearn")


def test_multi_hop_models_are_refused_by_transfer() -> None:
    chains = TrainedModels((_model(),), (ChainFacts(8, 2, 2, seed=0),), (0,))
    with pytest.raises(VerifierError, match="single-hop"):
        _transfer(Measurement("empirical", {}, artifacts=chains.as_artifacts()))


def test_one_model_facts_and_seed_per_replicate() -> None:
    with pytest.raises(ValueError, match="2 models, 1 facts, 1 seeds"):
        TrainedModels((_model(), _model()), (BijectionFacts(8, 1, seed=0),), (0,))


def test_a_training_claim_hands_on_its_replicates_and_settings() -> None:
    """End to end: what transfer reads is what the training claim trained (seconds)."""
    spec = load_spec_text(SPEC)
    runner = SpecRunner(spec, Limits())
    runner.preflight()
    results = runner.run().results
    assert [r.status for r in results] == ["passed"] * 3, [r.message for r in results]
    gd = runner._measurements["gd"]
    assert gd is not None and set(gd.artifacts) == {TRAINED_MODELS}
    handed = trained_models(gd, "gd")
    claim = spec.claims[0]
    assert isinstance(claim, TrainingClaim) and isinstance(spec.instance, BijectionInstance)
    assert handed.seeds == (0, 1) and handed.config == train_config(spec.instance, claim)
    assert [f.seed for f in handed.bijections("gd")] == [0, 1]
    assert all(m.W_E.shape == (12 + 1, 4) for m in handed.models)
    assert results[1].evidence["replicates"]["seeds"] == [0, 1]
    relearned = results[2].evidence["replicates"]["values"]  # the control: the same models
    assert [v["control_accuracy"] for v in relearned] == [v["accuracy"] for v in relearned]
