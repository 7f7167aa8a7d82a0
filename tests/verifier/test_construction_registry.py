"""The registry of constructions (verifier/constructions/registry.py): each construction's
registry size formulas, evaluated exactly, against a real build; section 2's parameter count
against a real OneLayerTransformer; the evaluator's bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from verifier.constructions.base import size_params
from verifier.constructions.codebooks import codebook
from verifier.constructions.registry import BUILTIN, construction, constructions
from verifier.errors import SpecError
from verifier.facts.bijections import BijectionFacts
from verifier.facts.chains import ChainFacts
from verifier.model import ModelConfig, OneLayerTransformer
from verifier.spec import BijectionInstance, MultiHopInstance
from verifier.theory import get_theorem
from verifier.theory.evaluate import evaluate_expression, exact_integer
from verifier.theory.sizes import MODEL_PARAMS, SizeParams, model_param_count
from verifier.theory.symbols import N, R, k


def _bijection_case(n: int, r: int, m: int, disjoint: bool) -> tuple[Any, np.ndarray, SizeParams]:
    facts = BijectionFacts(n_entities=n, n_relations=r, seed=1, disjoint=disjoint)
    codes = codebook("rademacher", facts.n_attributes, m, seed=1)
    return facts, codes, SizeParams(n, r, m, attributes=facts.n_attributes)


def _chain_case(
    n: int, r: int, k_: int, m: int, chains: list[list[int]] | None
) -> tuple[Any, np.ndarray, SizeParams]:
    facts = ChainFacts(n, r, k_, seed=2, chain_list=chains)
    codes = codebook("rademacher", n, m, seed=2)
    listed = None if chains is None else len(chains)
    return facts, codes, SizeParams(n, r, m, hops=k_, chains=listed)


# Every registered construction (built-in or a plugin's) is built at each size of its facts'
# kind, so adding one needs no edit here; a listed-chain case for Gk's |C| slots.
BIJECTION_SIZES = [(7, 2, 3, False), (5, 3, 4, True), (9, 2, 5, False), (4, 3, 2, True)]
CHAIN_SIZES = [(6, 2, 2, 3), (4, 1, 3, 2), (6, 2, 3, 4), (5, 3, 1, 2)]
CASES = [
    (c.name, _bijection_case(*size) if c.facts == "bijection" else _chain_case(*size, None))
    for c in constructions().values()
    for size in (BIJECTION_SIZES if c.facts == "bijection" else CHAIN_SIZES)
] + [("chain", _chain_case(5, 3, 2, 2, [[0, 1], [2, 2], [1, 0]]))]


def test_every_construction_is_registered_by_its_name() -> None:
    registered = constructions()
    assert [c.name for c in BUILTIN] == list(registered)[: len(BUILTIN)]  # built-ins first
    for name, c in registered.items():
        assert c.name == name and construction(name) is c
        get_theorem(c.theorem)  # its sizes are a registry theorem's (a plugin's too)
    with pytest.raises(SpecError, match="construction 'nope': expected one of"):
        construction("nope")


@pytest.mark.parametrize(
    ("name", "case"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_built_sizes_are_the_registry_formulas(
    name: str, case: tuple[Any, np.ndarray, SizeParams]
) -> None:
    facts, codes, params = case
    c = construction(name)
    sizes = c.size(params)
    model, layout = c.build(facts, codes)
    assert sizes.shapes() == vars(model.cfg)
    assert sizes.params == model.n_params() == sum(t.numel() for t in model.parameters())
    assert all(isinstance(v, int) for v in vars(sizes).values())
    assert (layout.d_model, layout.d_mlp) == (sizes.d_model, sizes.d_mlp)


@pytest.mark.parametrize("name", list(constructions()))
def test_size_is_the_theorem_quantities(name: str) -> None:
    """The construction's size function and its theorem's quantities are one formula (every
    registered construction's, a plugin's included)."""
    c = construction(name)
    theorem = get_theorem(c.theorem)
    for n, r, hops, m in ((64, 3, 2, 7), (1000, 4, 3, 11)):
        params = SizeParams(n, r, m, hops=1 if c.facts == "bijection" else hops)
        values = params.values()
        sizes = c.size(params)
        for quantity, got in (
            ("embedding_dim", sizes.d_model),
            ("mlp_width", sizes.d_mlp),
            ("params", sizes.params),
        ):
            assert exact_integer(theorem.quantity(quantity).expr, values) == got


def test_size_params_of_an_instance() -> None:
    disjoint = BijectionInstance(kind="bijection", entities=8, relations=3, attributes="disjoint")
    assert size_params(disjoint, 5) == SizeParams(8, 3, 5, attributes=24, hops=1)
    listed = MultiHopInstance(
        kind="multi_hop", entities=8, relations=2, hops=2, chains=[[0, 1], [1, 1]]
    )
    assert size_params(listed, 4).chains == 2
    assert size_params(listed, 4, hops=3) == SizeParams(8, 2, 4, attributes=8, hops=3)


@pytest.mark.parametrize(
    "shapes",
    [
        {"n_vocab": 7, "n_ctx": 2, "d_model": 5, "d_head": 3, "n_heads": 1, "d_mlp": 4, "n_out": 6},
        {
            "n_vocab": 13,
            "n_ctx": 5,
            "d_model": 9,
            "d_head": 2,
            "n_heads": 4,
            "d_mlp": 1,
            "n_out": 3,
        },
        {"n_vocab": 1, "n_ctx": 1, "d_model": 1, "d_head": 1, "n_heads": 1, "d_mlp": 1, "n_out": 1},
    ],
)
def test_section2_count_is_the_models_numel(shapes: dict[str, int]) -> None:
    model = OneLayerTransformer(ModelConfig(**shapes))
    assert model_param_count(shapes) == sum(t.numel() for t in model.parameters())


def test_sizes_are_exact_far_beyond_float64s_integers() -> None:
    n = 10**12 + 1  # above 2**53: a float would round
    sizes = construction("geometric").size(SizeParams(n, 3, 17))
    d = 3 * 17 + 3 + 17
    assert sizes.params == (n + 3) * d + 2 * d + 4 * d * 3 + 2 * d * 102 + 102 + d + d * n
    shapes = {**sizes.shapes(), "n_vocab": n + 3}
    assert model_param_count(shapes) == sizes.params


def test_evaluator_bounds_a_symbolic_power_before_building_it() -> None:
    with pytest.raises(SpecError, match="cannot be evaluated"):
        evaluate_expression(R**k * N, {"R": 2, "k": 10**9, "N": 3})
    with pytest.raises(SpecError, match="expected an exact integer"):
        exact_integer(N / 2, {"N": 3})
    assert evaluate_expression(R**k, {"R": 3, "k": 40}) == 3**40
    assert {s.name for s in MODEL_PARAMS.free_symbols} == {
        "n_vocab",
        "n_ctx",
        "d_model",
        "d_head",
        "n_heads",
        "d_mlp",
        "n_out",
    }


def test_a_construction_name_the_registry_lacks_is_refused_before_any_work() -> None:
    from verifier.engine.runner import SpecRunner
    from verifier.errors import SpecError
    from verifier.spec import load_spec_text

    def refusal(name: str) -> SpecError:
        spec = load_spec_text(
            "name: s\ninstance: {kind: bijection, entities: 8, relations: 2}\nclaims:\n"
            f"  - id: c\n    check: construction\n    construction: {{name: {name}}}\n"
            "    expect: {accuracy: 1.0}\n",
            "s.spec.yaml",
        )
        with pytest.raises(SpecError) as err:
            SpecRunner(spec).preflight()
        return err.value

    bijection = ", ".join(n for n, c in constructions().items() if c.facts == "bijection")
    for name in ("hologram", "chain"):  # unknown; a multi-hop construction
        err = refusal(name)
        assert err.key is not None and err.key.endswith("c.construction.name")
        assert f"expected one of {bijection} for a bijection instance" in str(err)
        assert f"got {name!r}" in str(err)
