"""One code-width resolution (verifier/constructions/widths.py): onehot, an integer and auto,
with each construction's width cap read from its own size law."""

from __future__ import annotations

import pytest

from verifier.constructions.geometric import GEOMETRIC
from verifier.constructions.registry import construction
from verifier.constructions.widths import (
    fixed_code_dim,
    require_code_dim,
    resolve_code_dim,
    width_cap,
)
from verifier.engine.runner import SpecRunner
from verifier.errors import LimitExceeded, SpecError
from verifier.limits import Limits
from verifier.spec import CodebookConstruction, load_spec_text
from verifier.theory.sizes import SizeParams


def spec(**fields: object) -> CodebookConstruction:
    return CodebookConstruction.model_validate(fields)


def closed_form_cap(name: str, r: int, k: int, chains: int, width: int, max_m: int) -> int:
    """The widest m by hand from docs/theory.md's shapes: d = slots m + blocks R + m + pos and
    d_mlp = 2 slots m (G1: slots R, one block, no positional code; compact: no answer slot)."""
    slots, blocks, extra_m, pos = {
        "geometric": (r, 1, 1, 0),
        "compact": (r, 1, 0, 0),
        "chain": (chains, k, 1, 2),
        "cot": (r, 1, 1, 2),
    }[name]
    by_d = (width - blocks * r - pos) // (slots + extra_m)
    return max(0, min(max_m, by_d, width // (2 * slots)))


@pytest.mark.parametrize("name", ["geometric", "compact", "chain", "cot"])
@pytest.mark.parametrize(
    ("r", "k", "width", "max_m"), [(2, 1, 64, 4096), (3, 2, 200, 7), (2, 3, 9, 50), (1, 1, 3, 9)]
)
def test_each_construction_states_its_cap_from_its_size_law(
    name: str, r: int, k: int, width: int, max_m: int
) -> None:
    params = SizeParams(10, r, 1, hops=k)
    cap = width_cap(construction(name), params, Limits(max_width=width, max_code_dim=max_m))
    assert cap == closed_form_cap(name, r, k, r**k, width, max_m)
    if cap >= 1:  # the cap fits and the next width does not (or max_code_dim stops it)
        at = construction(name).size(SizeParams(10, r, cap, hops=k))
        assert max(at.d_model, at.d_mlp) <= width
        above = construction(name).size(SizeParams(10, r, cap + 1, hops=k))
        assert cap == max_m or max(above.d_model, above.d_mlp) > width


def test_onehot_fixes_m_and_refuses_another_code_dim() -> None:
    assert fixed_code_dim(spec(codebook="onehot"), 12, "attributes") == 12
    assert fixed_code_dim(spec(codebook="onehot", code_dim=12), 12, "attributes") == 12
    assert fixed_code_dim(spec(code_dim=5), 12, "attributes") == 5
    assert fixed_code_dim(spec(), 12, "attributes") is None
    with pytest.raises(SpecError, match=r"expected code_dim auto or 12 \(= entities\), got 5"):
        fixed_code_dim(spec(codebook="onehot", code_dim=5), 12, "entities")


def test_an_integer_over_max_code_dim_and_too_many_codes_for_auto_name_their_limits() -> None:
    limits = Limits(max_code_dim=8, max_auto_attributes=100)
    with pytest.raises(LimitExceeded) as err:
        require_code_dim(spec(code_dim=9), 12, "attributes", limits)
    assert err.value.name == "max_code_dim" and err.value.value == 9
    with pytest.raises(LimitExceeded) as err:
        require_code_dim(spec(codebook="onehot"), 12, "entities", limits)
    assert err.value.name == "max_code_dim" and "onehot: entities" in str(err.value)
    with pytest.raises(LimitExceeded) as err:
        require_code_dim(spec(), 101, "attributes", limits)
    assert err.value.name == "max_auto_attributes"
    assert require_code_dim(spec(code_dim=8), 12, "attributes", limits) == 8


def test_auto_with_no_width_under_the_cap_is_refused_naming_the_limits() -> None:
    with pytest.raises(LimitExceeded, match="no width fits max_width and max_code_dim for G1"):
        resolve_code_dim(spec(), 12, 0, 0, "attributes", "for G1")
    found = resolve_code_dim(spec(margin=0.5), 12, 0, 64, "attributes", "for G1")
    assert found.search is not None and found.m == found.search.m <= 64
    assert found.evidence()["code_search"]["target_coherence"] == 0.5
    assert resolve_code_dim(spec(code_dim=7), 12, 0, 0, "attributes", "").evidence() == {}


CLAIM = """\
name: w
instance: {{kind: {kind}, entities: 8, relations: 2{extra}}}
claims:
  - id: c
    check: construction
    construction: {{name: {name}, {construction}}}
    expect: {{accuracy: 1.0}}
"""


@pytest.mark.parametrize(
    ("kind", "extra", "name", "construction", "limits", "error", "what"),
    [
        (
            "bijection",
            "",
            "geometric",
            "codebook: onehot, code_dim: 5",
            {},
            SpecError,
            "= attributes",
        ),
        (
            "multi_hop",
            ", hops: 2",
            "chain",
            "codebook: onehot, code_dim: 5",
            {},
            SpecError,
            "= entities",
        ),
        (
            "bijection",
            "",
            "compact",
            "code_dim: 9",
            {"max_code_dim": 8},
            LimitExceeded,
            "max_code_dim",
        ),
        (
            "multi_hop",
            ", hops: 2",
            "chain",
            "code_dim: 9",
            {"max_code_dim": 8},
            LimitExceeded,
            "max_code_dim",
        ),
        (
            "bijection",
            "",
            "geometric",
            "code_dim: auto",
            {"max_width": 4},
            LimitExceeded,
            "the G1 model's width",
        ),
        (
            "multi_hop",
            ", hops: 2",
            "chain",
            "code_dim: auto",
            {"max_width": 10},
            LimitExceeded,
            "the Gk model's width",
        ),
    ],
)
def test_every_check_refuses_a_bad_width_before_any_work(
    kind: str,
    extra: str,
    name: str,
    construction: str,
    limits: dict[str, int],
    error: type[Exception],
    what: str,
) -> None:
    text = CLAIM.format(kind=kind, extra=extra, name=name, construction=construction)
    runner = SpecRunner(load_spec_text(text), Limits.model_validate(limits))
    with pytest.raises(error, match=what):
        runner.preflight()


def test_g1_cap_is_the_one_feasibility_reads() -> None:
    from verifier.checks.feasibility import p2_entries, p2_max_code_dim
    from verifier.spec import BijectionInstance

    instance = BijectionInstance(kind="bijection", entities=8, relations=2)
    limits = Limits(max_width=40)
    cap = width_cap(GEOMETRIC, SizeParams(8, 2, 1), limits)
    assert cap == min((40 - 2) // 3, 40 // 4) == 10  # d = 3m + 2, d_mlp = 4m
    assert p2_max_code_dim(instance, limits) == cap  # the width cap binds
    entries = limits.model_copy(update={"max_lp_entries": p2_entries(instance, 7)})
    assert p2_max_code_dim(instance, entries) == 7  # P2's program size binds below the cap
