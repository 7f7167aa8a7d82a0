"""Unreachable attributes of a frozen W_U (verifier/convex/reachability.py, P1 on its columns):
certified, refused before training, and used to explain a search where nothing holds."""

from __future__ import annotations

import numpy as np
import pytest

from verifier.convex.reachability import UNREACHABLE_TOL, reachability
from verifier.engine.runner import SpecRunner, run_spec
from verifier.errors import SpecError
from verifier.spec import load_spec_text
from verifier.train import TrainConfig, initial_unembedding


def test_a_column_inside_the_hull_is_certified_unreachable() -> None:
    e = np.eye(3)
    W_U = np.stack([e[0], -e[0], e[1], -e[1], e[2], -e[2], 0.3 * e[0] + 0.2 * e[1]], axis=1)
    result = reachability(W_U)
    assert result.unreachable == (6,) and result.undecided == ()
    cert = result.certificates[6]
    assert cert["upper"] <= UNREACHABLE_TOL and cert["lower"] <= 0
    # the dual support is a convex combination of the other columns that reproduces u_6
    weights = np.zeros(7)
    for j, w in cert["dual_support"]:
        weights[j] = w
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.abs(W_U @ weights - W_U[:, 6]).sum() <= 1e-6
    assert "attribute(s) 6 of 7" in result.message()


def test_unit_columns_are_all_reachable() -> None:
    cfg = TrainConfig(d_model=4, d_mlp=8, freeze=("W_E", "W_U"), unit_norm=("W_U",))
    W_U = initial_unembedding(16, cfg, seed=0)
    assert np.allclose(np.linalg.norm(W_U, axis=0), 1.0, atol=1e-6)
    assert reachability(W_U).unreachable == ()


HEAD = "name: t\ninstance: {kind: bijection, entities: 16, relations: 1, seed: 0}\nclaims:\n"
FROZEN = """  - id: frozen
    check: training
    model: {d_model: 4, d_mlp: 8}
    optim: {optimizer: adam, lr: 3e-2, steps: 40}
    freeze: [W_E, W_U]
"""


def test_a_claim_needing_an_unreachable_attribute_is_refused_naming_it() -> None:
    """At N = 16, d = 4, seed 0 the Gaussian column u_15 (norm 0.255) lies inside the hull of
    the others: no hidden state makes attribute 15 the argmax, so accuracy 1 is impossible."""
    runner = SpecRunner(load_spec_text(HEAD + FROZEN + "    expect: {accuracy: 1.0}\n"))
    with pytest.raises(SpecError) as info:
        runner.preflight()
    text = info.value.render()
    assert "accuracy 1.0 cannot hold" in text
    assert "attribute(s) 15 of 16 can never be the argmax" in text
    assert "u_15 (norm 0.255) inside the convex hull" in text and "at most 0.9375" in text
    assert "frozen.expect.accuracy" in text


@pytest.mark.parametrize(
    "edit",
    [
        ("    expect: {accuracy: 1.0}\n", "    expect: {accuracy: '<= 0.9375'}\n"),  # a refutation
        ("model: {d_model: 4, d_mlp: 8}", "model: {d_model: 4, d_mlp: 8, unit_norm: [W_U]}"),
        ("freeze: [W_E, W_U]", "freeze: [W_E]"),  # W_U trained
    ],
)
def test_claims_the_frozen_unembedding_allows_pass_preflight(edit: tuple[str, str]) -> None:
    text = (HEAD + FROZEN + "    expect: {accuracy: 1.0}\n").replace(*edit)
    SpecRunner(load_spec_text(text)).preflight()


def test_a_width_search_whose_until_needs_an_unreachable_attribute_is_refused() -> None:
    search = "    minimize: {field: d_mlp, until: {accuracy: '>= 0.99'}, start: 1, max: 256}\n"
    with pytest.raises(SpecError, match="attribute\\(s\\) 15 of 16"):
        SpecRunner(load_spec_text(HEAD + FROZEN + search)).preflight()


def test_a_search_where_nothing_holds_is_explained_by_the_certificate() -> None:
    """Searching N changes W_U, so preflight cannot refuse it; the search runs, N = 16 fails,
    and the undecided result names the unreachable attribute and its certificate."""
    search = (
        "    mechanism: false\n"
        "    maximize: {field: N, until: {accuracy: '>= 0.99'}, start: 16, max: 16}\n"
    )
    [result] = run_spec(load_spec_text(HEAD + FROZEN + search)).results
    assert result.status == "undecided"
    diagnosis = result.evidence["search"]["diagnosis"]
    assert diagnosis["value"] == 16 and diagnosis["replicates"][0]["unreachable"] == [15]
    assert diagnosis["certificate"]["unreachable"] == [15]
    assert "attribute(s) 15 of 16 can never be the argmax" in result.message
