"""P1 (and the feasibility claim around P1 and P2) on the one-hot codebook, against the optimum
derived by hand.

P1 for target t (docs/theory.md section 6): ``gamma_t = max gamma`` subject to
``(a_t - a_j)^T v >= gamma`` for every ``j != t`` and ``|v|_inf <= B``. One-hot codes are the
standard basis, ``a_j = e_j`` in ``R^n`` (so the default box is ``B = max |a_{j,i}| = 1``), and
the constraints read ``v_t - v_j >= gamma``.

- Upper: every row has ``v_t - v_j <= B - (-B) = 2B``, so ``gamma_t <= 2B``. The dual says the
  same: for any ``lambda`` in the simplex, ``B || sum_j lambda_j (e_t - e_j) ||_1
  = B || e_t - sum_j lambda_j e_j ||_1 = B (1 + sum_j lambda_j) = 2B``.
- Lower: ``v = B (2 e_t - 1)`` (``v_t = B``, every other ``v_j = -B``) is in the box and gives
  ``v_t - v_j = 2B`` for every ``j``.

So ``gamma_t = 2B`` for every target and every ``n >= 2``, and the codebook's margin
``min_t gamma_t`` is ``2B``: 2 with the default box, twice G1's point ``v = a_t`` (``1 - mu = 1``).
The certified interval ``[margin_lower, margin_upper]`` must contain it and be tight.
"""

from __future__ import annotations

import pytest

from verifier.constructions.codebooks import codebook
from verifier.convex.codebook_margin import codebook_margin
from verifier.engine.report import ClaimResult
from verifier.engine.runner import SpecRunner
from verifier.limits import Limits
from verifier.spec import load_spec_text

SOLVER_TOL = 1e-6  # the solvers' own tolerance, far above float64 rounding
ROUNDING = 1e-12  # the certified bounds are exact up to float64 rounding


def hand_margin(box: float) -> float:
    """The one-hot codebook's P1 margin with box B (module docstring): 2B."""
    return 2.0 * box


@pytest.mark.parametrize("n", [5, 40])  # 40: more than one batch of targets
@pytest.mark.parametrize("box", [None, 0.25])
def test_p1_on_onehot_certifies_the_hand_optimum(n: int, box: float | None) -> None:
    result = codebook_margin(codebook("onehot", n, n, seed=0), box)
    want = hand_margin(1.0 if box is None else box)
    assert result.complete and len(result.certificates) == n
    assert result.box == (1.0 if box is None else box)
    lower, upper = result.margin_lower, result.margin_upper
    assert lower - ROUNDING <= want <= upper + ROUNDING  # the interval contains the optimum
    assert abs(lower - want) <= SOLVER_TOL and abs(upper - want) <= SOLVER_TOL  # and is tight
    for cert in result.certificates:  # every target separately: gamma_t = 2B
        assert cert.lower - ROUNDING <= want <= cert.upper + ROUNDING
        assert cert.upper - cert.lower <= 2 * SOLVER_TOL
    assert result.status(want - 1e-3) == "feasible"
    assert result.status(want + 1e-3) == "infeasible"


SPEC = """
name: onehot
instance: {{kind: bijection, entities: {n}, relations: 2, seed: 0}}
claims:
  - id: c
    check: feasibility
    program: {program}
    construction: {{name: geometric, codebook: onehot, code_dim: {code_dim}}}
    min_margin: {min_margin}
    expect: {expect}
"""


def _run(limits: Limits | None = None, **fields: object) -> ClaimResult:
    spec = load_spec_text(SPEC.format(**fields))
    return SpecRunner(spec, limits or Limits()).run().results[0]


@pytest.mark.parametrize("code_dim", ["auto", 8])
def test_p1_claim_runs_on_onehot(code_dim: str | int) -> None:
    result = _run(
        n=8,
        program="codebook_margin",
        code_dim=code_dim,
        min_margin=1.5,
        expect='{status: feasible, margin: ">= 1.5"}',
    )
    assert result.status == "passed", result.message
    low, up = result.evidence["sandwich"]
    assert abs(low - hand_margin(1.0)) <= SOLVER_TOL and abs(up - hand_margin(1.0)) <= SOLVER_TOL
    if code_dim == "auto":  # one width only: m = attributes, and no neighbour below it
        assert result.measured["min_code_dim"] == 8
        assert list(result.evidence["neighbours"]) == ["8"]


def test_p1_claim_on_onehot_above_the_optimum_is_certified_infeasible() -> None:
    result = _run(
        n=8,
        program="codebook_margin",
        code_dim=8,
        min_margin=2.5,
        expect="{status: infeasible}",
    )
    assert result.status == "passed", result.message


def test_p2_claim_runs_on_onehot() -> None:
    """P2 runs on the one width onehot has and gives a verdict, not a refusal. (From G1's own
    rows every zero code coordinate sits on the boundary of both of its ReLU units, a region
    where the new answer's coordinate is pinned at 0: P2 may report ``not_found`` there, which
    is never a claim of impossibility.)"""
    result = _run(
        n=8,
        program="reembed",
        code_dim="auto",
        min_margin=0.05,
        expect="{status: feasible}",
    )
    assert result.status in ("passed", "undecided"), result.message
    assert list(result.evidence["widths_tried"]) == ["8"]
    assert result.evidence["max_code_dim"] == 8
    assert result.evidence["widths_tried"]["8"]["status"] in ("feasible", "not_found")


def test_onehot_refusals_are_named() -> None:
    """Only what the construction refuses (a second width) or a limit stops a onehot claim."""
    wrong = _run(
        n=8, program="codebook_margin", code_dim=4, min_margin=0.5, expect="{status: feasible}"
    )
    assert wrong.status == "error" and "code_dim" in wrong.message
    over = _run(
        Limits(max_code_dim=4),
        n=8,
        program="codebook_margin",
        code_dim="auto",
        min_margin=0.5,
        expect="{status: feasible}",
    )
    assert over.status == "error" and "max_code_dim" in over.message
