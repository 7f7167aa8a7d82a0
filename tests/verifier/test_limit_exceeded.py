"""LimitExceeded carries its limit as fields: the message is rendered from them."""

from __future__ import annotations

import pickle

import pytest

from verifier.constructions.codebooks import smallest_code_dim
from verifier.errors import LimitExceeded
from verifier.limits import require


def test_require_raises_with_the_limit_as_fields() -> None:
    with pytest.raises(LimitExceeded) as err:
        require("max_facts", 10_000, 4_096, "N*R (facts)")
    exc = err.value
    assert (exc.name, exc.value, exc.limit, exc.what, exc.claim) == (
        "max_facts",
        10_000,
        4_096,
        "N*R (facts)",
        None,
    )
    assert str(exc) == (
        "N*R (facts) is 10,000, over the limit max_facts = 4,096 "
        "(set VERIFIER_MAX_FACTS to change it)"
    )


def test_require_passes_at_the_limit() -> None:
    require("max_facts", 4_096, 4_096, "N*R (facts)")


def test_in_claim_prefixes_the_claim_and_keeps_the_fields() -> None:
    exc = LimitExceeded("max_entities", 2_000_000, 1_000_000, "N").in_claim("exact")
    assert exc.name == "max_entities" and exc.claim == "exact"
    assert str(exc) == (
        "claim 'exact': N is 2,000,000, over the limit max_entities = 1,000,000 "
        "(set VERIFIER_MAX_ENTITIES to change it)"
    )


def test_a_search_names_no_single_limit() -> None:
    exc = LimitExceeded.search_exhausted(
        "code_dim auto", ("max_code_dim", "max_width"), 512, "has a certified P1 margin >= 0.1"
    )
    assert exc.name is None and exc.value is None and exc.limit == 512
    assert str(exc) == (
        "code_dim auto: no width up to 512 (max_code_dim, max_width) "
        "has a certified P1 margin >= 0.1"
    )
    none_fit = LimitExceeded.search_exhausted(
        "code_dim auto", ("max_width", "max_code_dim"), 0, "for this depth"
    )
    assert str(none_fit) == "code_dim auto: no width fits max_width and max_code_dim for this depth"


def test_it_pickles_whole() -> None:
    exc = LimitExceeded("max_steps", 200_000, 100_000, "steps", "train")
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, LimitExceeded)
    assert vars(back) == vars(exc) and str(back) == str(exc)


def test_the_code_width_search_raises_a_search_limit() -> None:
    with pytest.raises(LimitExceeded) as err:
        smallest_code_dim("rademacher", 100, 0.01, 0, 4)
    assert err.value.name is None and err.value.limit == 4
    assert str(err.value).startswith("code_dim auto: no width up to 4 (max_code_dim, max_width)")
