"""The spec language split into modules: the public names stay, loading stays light, and every
measure a claim names is one its kind produces on the spec's instance."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import verifier.spec
from tests.conftest import ROOT
from verifier.errors import SpecError
from verifier.measure.registry import INIT_MEASURES
from verifier.spec import (
    MECHANISM_MEASURES,
    MULTIHOP_MEASURES,
    BijectionInstance,
    ConstructionClaim,
    MultiHopInstance,
    load_spec_text,
)
from verifier.spec.discover import in_full_folder, spec_files

# Every name the single-module verifier/spec.py defined (classes, functions, constants, aliases).
OLD_NAMES = [
    "IDENT",
    "MAX_HOPS",
    "MAX_REPLICATES",
    "MECHANISM_MEASURES",
    "MULTIHOP_MEASURES",
    "SWEEP_ALIASES",
    "_STATUS_WORDS",
    "_claim_measures",
    "BijectionInstance",
    "BoundClaim",
    "BudgetClaim",
    "Claim",
    "ClaimBase",
    "CodebookConstruction",
    "Construction",
    "ConstructionClaim",
    "DepthBudget",
    "FeasibilityClaim",
    "GeometricConstruction",
    "InitName",
    "Instance",
    "Maximize",
    "Minimize",
    "MultiHopInstance",
    "Multiplier",
    "OptimGroup",
    "RelearnOptim",
    "RequireRule",
    "Source",
    "Spec",
    "StrictModel",
    "TrainingClaim",
    "TrainingModel",
    "TrainingOptim",
    "TransferClaim",
    "WeightName",
    "load_spec_file",
    "load_spec_text",
    "parse_spec",
    "spec_schema",
]

BIJECTION = BijectionInstance(kind="bijection", entities=8, relations=2)
MULTI_HOP = MultiHopInstance(kind="multi_hop", entities=8, relations=2, hops=2)


def _spec(instance: str, claim: str) -> str:
    return f"name: s\ninstance: {instance}\nclaims:\n  - id: c\n{claim}"


CONSTRUCTION = "    check: construction\n    construction: {name: geometric}\n"


@pytest.mark.parametrize("name", OLD_NAMES)
def test_every_name_of_the_old_module_is_importable(name: str) -> None:
    assert hasattr(verifier.spec, name)
    assert name in verifier.spec.__all__


def test_loading_a_spec_without_formulas_or_bound_claims_does_not_import_sympy() -> None:
    text = _spec(
        "{kind: bijection, entities: 8, relations: 2}",
        CONSTRUCTION + "    expect: {accuracy: 1.0, margin: {value: 0.5, tol: 0.5}}\n",
    )
    code = (
        "import sys, verifier.spec; "
        f"verifier.spec.load_spec_text({text!r}); print('sympy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"


def test_construction_measures_depend_on_the_instance() -> None:
    claim = ConstructionClaim.model_validate(
        {"id": "c", "check": "construction", "construction": {"name": "geometric"}}
    )
    assert not claim.measures(BIJECTION) & set(MULTIHOP_MEASURES)
    assert claim.measures(MULTI_HOP) >= set(MULTIHOP_MEASURES) | {"accuracy", "params"}


def test_a_multi_hop_measure_on_a_bijection_instance_is_refused_at_load() -> None:
    text = _spec(
        "{kind: bijection, entities: 8, relations: 2}",
        CONSTRUCTION + "    expect: {accuracy: 1.0, lbk_bits: '>= 1'}\n",
    )
    with pytest.raises(SpecError) as err:
        load_spec_text(text, file="x.spec.yaml")
    e = err.value
    assert (e.file, e.line, e.key) == ("x.spec.yaml", 4, "c.expect.lbk_bits")
    assert "expected one of accuracy, margin, coherence, code_dim" in e.message
    assert "lbk_bits" not in e.message.split("expected one of")[1].split(", got")[0]
    assert e.message.endswith("got lbk_bits")


@pytest.mark.parametrize(
    ("instance", "claim", "key"),
    [
        (  # P1 recalls no facts: accuracy is P2's and P3's
            "{kind: bijection, entities: 8, relations: 2}",
            "    check: feasibility\n    program: codebook_margin\n"
            "    construction: {name: geometric, code_dim: 4}\n    expect: {accuracy: 1.0}\n",
            "c.expect.accuracy",
        ),
        (  # the least code width is searched only under code_dim: auto
            "{kind: bijection, entities: 8, relations: 2}",
            "    check: feasibility\n    program: codebook_margin\n"
            "    construction: {name: geometric, code_dim: 4}\n    expect: {min_code_dim: 4}\n",
            "c.expect.min_code_dim",
        ),
        (
            "{kind: multi_hop, entities: 8, relations: 2, hops: 2}",
            "    check: budget\n    construction: {name: geometric}\n    budget: {params: 900}\n"
            "    expect: {budget_dim: 3}\n",
            "c.expect.budget_dim",
        ),
        (
            "{kind: bijection, entities: 8, relations: 2}",
            CONSTRUCTION + "    minimize: {field: code_dim, until: {lbk_bits: '>= 1'}}\n",
            "c.minimize.until.lbk_bits",
        ),
        (
            "{kind: bijection, entities: 8, relations: 2}",
            CONSTRUCTION + "    sweep: {N: [8, 16]}\n"
            "    expect: {growth: {measure: lbk_bits, over: N, law: linear}}\n",
            "c.expect.growth.measure",
        ),
    ],
)
def test_a_measure_the_claim_does_not_produce_is_refused(
    instance: str, claim: str, key: str
) -> None:
    with pytest.raises(SpecError, match="is undefined on a") as err:
        load_spec_text(_spec(instance, claim))
    assert err.value.key == key


def test_a_swept_field_counts_for_its_conditional_measures() -> None:
    claim = (
        "    check: feasibility\n    program: codebook_margin\n"
        "    construction: {name: geometric, code_dim: 4}\n"
        "    sweep: {code_dim: [4, auto]}\n    expect: {min_code_dim: '>= 1'}\n"
    )
    spec = load_spec_text(_spec("{kind: bijection, entities: 8, relations: 2}", claim))
    assert "min_code_dim" in spec.claims[0].measures(spec.instance)


def test_relearn_control_measures_need_a_control() -> None:
    head = (
        "name: s\ninstance: {kind: bijection, entities: 64, relations: 2}\nclaims:\n"
        "  - id: gd\n    check: training\n    model: {d_model: 4, d_mlp: 8}\n"
        "    optim: {lr: 0.01, steps: 10}\n"
        "  - id: moved\n    check: transfer\n    from: gd\n    method: relearn\n"
    )
    load_spec_text(head + "    expect: {steps_to_perfect: '<= 10'}\n")
    with pytest.raises(SpecError, match="control_accuracy is undefined"):
        load_spec_text(head + "    expect: {control_accuracy: '<= 1'}\n")


def test_the_mechanism_measures_are_those_verifier_measure_mechanism_computes() -> None:
    from verifier.measure import mechanism

    computed = {
        name
        for name, fn in inspect.getmembers(mechanism, inspect.isfunction)
        if fn.__module__ == mechanism.__name__
        and list(inspect.signature(fn).parameters) == ["model", "facts"]
        and inspect.signature(fn).return_annotation in ("MeasureResult", mechanism.MeasureResult)
    }
    assert computed | set(INIT_MEASURES) == set(MECHANISM_MEASURES)
    assert set(INIT_MEASURES.values()) <= computed


def test_the_mechanism_measures_are_not_produced_on_multi_hop_instances() -> None:
    claim = verifier.spec.TrainingClaim.model_validate(
        {
            "id": "t",
            "check": "training",
            "model": {"d_model": 4, "d_mlp": 8},
            "optim": {"lr": 1e-2, "steps": 1},
        }
    )
    assert claim.measures(BIJECTION) >= set(MECHANISM_MEASURES)
    assert not claim.measures(MULTI_HOP) & set(MECHANISM_MEASURES)


def test_every_bundled_spec_loads() -> None:
    for path in spec_files([ROOT / "specs"], include_full=True):
        verifier.spec.load_spec_file(path)


def test_the_full_rule_counts_folders_below_the_searched_path_only() -> None:
    spec = Path("/r/full/specs/a/full/x.spec.yaml")
    assert in_full_folder(spec, Path("/r/full/specs"))
    assert not in_full_folder(spec, Path("/r/full/specs/a/full"))
    assert not in_full_folder(spec, spec)
    assert not in_full_folder(Path("/r/full/specs/b/y.spec.yaml"), Path("/r/full/specs"))


def test_one_default_cache_folder() -> None:
    from verifier import cli, pytest_plugin
    from verifier.engine import session

    assert cli.DEFAULT_CACHE_DIR is session.DEFAULT_CACHE_DIR is pytest_plugin.DEFAULT_CACHE_DIR
