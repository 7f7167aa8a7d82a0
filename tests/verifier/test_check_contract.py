"""The contract between the runner and the claim kinds.

Every built-in kind, on every instance kind it declares (``CheckKind[I, C]``), measures exactly
the names its claim model says it produces there (``claim.measures(instance)``), so an
``expect:`` the spec loader accepts is always measured. Tiny instances and a few training steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
import torch
from safetensors.torch import save_file

from verifier.checks.base import BUILTIN_KINDS, REGISTRY, declared_types
from verifier.engine.runner import SpecRunner
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.spec import load_spec_text

BIJECTION = "{kind: bijection, entities: 32, relations: 2, seed: 3}"
ONE_RELATION = "{kind: bijection, entities: 8, relations: 1, seed: 3}"
CHAINS = "{kind: multi_hop, entities: 8, relations: 2, hops: 2, seed: 3}"
CHAINS_COT = "{kind: multi_hop, entities: 8, relations: 2, hops: 2, cot: true, seed: 3}"
TRAINING = """\
  - id: gd
    check: training
    model: {d_model: 8, d_mlp: 32, heads: 1}
    optim: {lr: 2e-2, steps: 20}
    expect: {accuracy: ">= 0"}
"""
BOUND = """\
  - id: lb
    check: bound
    theorem: LB1
    given: {precision_bits: 16}
    expect: {min_embedding_dim: ">= 0"}
"""


def _claim(check: str, fields: str, expect: str) -> str:
    return f"  - id: c\n    check: {check}\n    {fields}\n    expect: {{{expect}}}\n"


def _construction(fields: str) -> str:
    return _claim("construction", f"construction: {{name: {fields}}}", 'accuracy: ">= 0"')


def _feasibility(program: str, fields: str) -> str:
    return _claim("feasibility", f"program: {program}\n    {fields}", 'n_facts: ">= 1"')


def _g1(code_dim: str) -> str:
    return f"min_margin: 0.01\n    construction: {{name: geometric, code_dim: {code_dim}}}"


def _transfer(method: str, extra: str = "") -> str:
    return TRAINING + (
        f"  - id: moved\n    check: transfer\n    from: gd\n    method: {method}\n{extra}"
        '    expect: {n_facts: ">= 1"}\n'
    )


MODEL_FILE = (
    "  - id: mine\n    check: model_file\n    file: {MODEL}\n    expect: {accuracy: '>= 0'}\n"
)
BUDGET = "construction: {name: geometric, codebook: onehot}\n    budget: {params: 100000}"
# (kind, instance, claims): each case one small claim of the kind (with what it depends on)
CASES: list[tuple[str, str, str]] = [
    ("construction", BIJECTION, _construction("geometric, code_dim: 8")),
    ("construction", BIJECTION, _construction("compact, code_dim: auto")),
    ("construction", CHAINS, _construction("chain, codebook: onehot")),
    ("construction", CHAINS_COT, _construction("cot, code_dim: 6")),
    ("budget", CHAINS, _claim("budget", BUDGET, 'depth: ">= 0"')),
    ("feasibility", ONE_RELATION, _feasibility("codebook_margin", _g1("4"))),
    ("feasibility", ONE_RELATION, _feasibility("codebook_margin", _g1("auto"))),
    ("feasibility", ONE_RELATION, _feasibility("reembed", _g1("4"))),
    ("feasibility", ONE_RELATION, _feasibility("associative_width", "embed_dim: 4\n    width: 8")),
    ("feasibility", ONE_RELATION, _feasibility("associative_width", "embed_dim: 4")),
    ("training", BIJECTION, TRAINING),
    ("training", BIJECTION, TRAINING.replace("    expect:", "    mechanism: false\n    expect:")),
    ("training", CHAINS, TRAINING),
    ("training", CHAINS_COT, TRAINING),
    ("transfer", BIJECTION, _transfer("probe")),
    ("transfer", BIJECTION, _transfer("random")),
    ("transfer", BIJECTION, _transfer("lp")),
    ("transfer", BIJECTION, _transfer("relearn", "    relearn: {steps: 5}\n")),
    ("bound", BIJECTION, BOUND),
    ("bound", CHAINS, BOUND),
    ("model_file", BIJECTION, MODEL_FILE),
    (
        "transfer",
        BIJECTION,
        MODEL_FILE + _transfer("probe").replace(TRAINING, "").replace("gd", "mine"),
    ),
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/verifier/conftest.py


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random one-layer model of BIJECTION's vocabulary, as safetensors (model_file cases)."""
    model = OneLayerTransformer(ModelConfig(34, 2, 8, 8, 1, 32, 32), dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("contract") / "model.safetensors"
    save_file(state, str(path))
    return path


def test_every_kind_is_covered_on_every_instance_kind_it_declares() -> None:
    declared = {
        (kind, get_args(model.model_fields["kind"].annotation)[0])
        for kind in BUILTIN_KINDS
        for model in declared_types(type(REGISTRY[kind]))[0]
    }
    covered = {
        (kind, load_spec_text(f"name: s\ninstance: {instance}\nclaims:\n{BOUND}").instance.kind)
        for kind, instance, _ in CASES
    }
    assert covered == declared


@pytest.mark.parametrize(
    ("kind", "instance", "claims"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_a_kind_measures_what_its_claim_declares(
    kind: str, instance: str, claims: str, model_path: Path
) -> None:
    claims = claims.replace("{MODEL}", str(model_path))
    spec = load_spec_text(f"name: contract\ninstance: {instance}\nclaims:\n{claims}")
    runner = SpecRunner(spec)
    runner.preflight()
    report = runner.run()
    assert [r.check for r in report.results][-1] == kind
    for result in report.results:
        assert result.status != "error", result.message
        claim = spec.claim(result.claim_id)
        declared = claim.measures(spec.instance)
        # every declared measure is reported, and nothing outside the declaration gets a value
        # (a measure that does not apply under the claim's settings may be reported as None)
        assert declared <= set(result.measured), result.key
        given = {name for name, value in result.measured.items() if value is not None}
        assert given <= declared, (result.key, sorted(given - declared))


def test_a_kind_whose_types_disagree_with_its_claims_instance_kinds_does_not_register() -> None:
    from verifier.checks.base import CheckContext, CheckKind, Measurement, register
    from verifier.limits import Limits
    from verifier.spec import BijectionInstance, FeasibilityClaim

    class Drifted(CheckKind[BijectionInstance, FeasibilityClaim]):
        def preflight(
            self, instance: BijectionInstance, claim: FeasibilityClaim, limits: Limits
        ) -> None:
            return None

        def run(self, ctx: CheckContext[BijectionInstance, FeasibilityClaim]) -> Measurement:
            raise AssertionError("never run")

    FeasibilityClaim.INSTANCE_KINDS = ("bijection", "multi_hop")  # drifted from the types
    try:
        with pytest.raises(TypeError, match=r"declares instance kinds \['bijection'\]"):
            register("drifted")(Drifted)
    finally:
        FeasibilityClaim.INSTANCE_KINDS = ("bijection",)
    assert "drifted" not in REGISTRY
