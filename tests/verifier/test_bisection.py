"""The one doubling/galloping-then-bisection helper (verifier/bisection.py) and the one sweep
field setter (verifier/engine/substitution.py)."""

from __future__ import annotations

import pytest

from verifier.bisection import find_maximum, find_minimum
from verifier.engine.substitution import FieldNotFound, set_field


@pytest.mark.parametrize("threshold", [1, 2, 5, 17, 63, 64])
@pytest.mark.parametrize("guess", [1, 3, 17, 40, 64, 500])
def test_galloping_finds_the_minimum_from_any_guess(threshold: int, guess: int) -> None:
    calls: list[int] = []

    def holds(v: int) -> bool:
        calls.append(v)
        return v >= threshold

    result = find_minimum(holds, 1, 64, guess=guess)
    assert result.minimum == threshold
    assert result.below == (None if threshold == 1 else threshold - 1)
    assert len(calls) == len(set(calls)) == len(result.holds)
    assert list(result.holds) == calls  # in evaluation order
    g = min(guess, 64)
    assert calls[0] == g  # the guess first, then outward by 1, 3, 7, ...
    if len(calls) > 1 and calls[1] != g:
        assert abs(calls[1] - g) == 1


def test_galloping_reports_not_found_at_the_cap() -> None:
    result = find_minimum(lambda v: False, 1, 20, guess=5)
    assert result.minimum is None and list(result.holds) == [5, 6, 8, 12, 20]


def test_empty_range_evaluates_nothing() -> None:
    def never(v: int) -> bool:
        raise AssertionError(f"evaluated {v}")

    assert find_minimum(never, 5, 4).holds == {}
    assert find_minimum(never, 5, 4, guess=5).minimum is None
    assert find_maximum(never, 1, 0).minimum is None


@pytest.mark.parametrize("m_max", [1, 2, 9, 64, 100])
@pytest.mark.parametrize("largest_fit", [0, 1, 7, 64, 100])
def test_find_maximum_matches_a_scan(m_max: int, largest_fit: int) -> None:
    """The multi-hop budget's question: the largest m <= m_max that fits (0: none)."""
    result = find_maximum(lambda m: m <= largest_fit, 1, m_max)
    assert (result.minimum or 0) == min(largest_fit, m_max)


def test_set_field_writes_instance_claim_and_dotted_fields() -> None:
    inst = {"entities": 8, "relations": 2}
    claim = {"id": "c", "model": {"d_model": 8, "init": {}}, "optim": {"lr": 0.1}}
    set_field(inst, claim, "N", 16)  # alias of an instance field
    set_field(inst, claim, "d_model", 12)  # the one key of that name
    set_field(inst, claim, "model.init.W_E", "zero")  # a dotted path, created where missing
    assert inst == {"entities": 16, "relations": 2}
    assert claim["model"] == {"d_model": 12, "init": {"W_E": "zero"}}


@pytest.mark.parametrize(("name", "occurrences"), [("width", 0), ("lr", 2)])
def test_set_field_names_a_missing_or_ambiguous_field(name: str, occurrences: int) -> None:
    claim = {"optim": {"lr": 0.1}, "probe": {"lr": 0.2}}
    with pytest.raises(FieldNotFound) as err:
        set_field({}, claim, name, 1)
    assert err.value.name == name and err.value.occurrences == occurrences
    assert claim == {"optim": {"lr": 0.1}, "probe": {"lr": 0.2}}  # nothing written
