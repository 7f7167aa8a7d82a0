"""Heatmaps (verifier/render/heatmaps.py): gating per relation and measures over a regime grid."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.image import imread

from verifier.engine.report import ClaimResult
from verifier.render.heatmaps import activation_rates, gating_png, grid_axes, grid_png


def _image(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG")
    image: np.ndarray = imread(io.BytesIO(png), format="png")
    return image


def test_gating_heatmap_reads_the_first_replicate() -> None:
    rates = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]
    evidence = {"mechanism": {"gated_fraction": {"activation_rate": rates}}}
    result = ClaimResult(
        key="gd",
        claim_id="gd",
        check="training",
        status="passed",
        evidence={"replicates": {"evidence": [evidence, {}]}},
    )
    assert np.array_equal(activation_rates(result), np.array(rates))  # type: ignore[arg-type]
    assert _image(gating_png(result)).shape[0] > 50


def test_gating_needs_the_evidence() -> None:
    result = ClaimResult(key="gd", claim_id="gd", check="training", status="passed")
    assert activation_rates(result) is None
    with pytest.raises(ValueError, match="expected gating evidence"):
        gating_png(result)


def _grid() -> list[ClaimResult]:
    out = []
    for r in (2, 4):
        for attention in ("learned", "uniform"):
            for d in (32, 64, 128):
                value = None if (r, d) == (4, 128) else r / 4 + d / 256
                out.append(
                    ClaimResult(
                        key=f"m[R={r},attention={attention},d_model={d}]",
                        claim_id="m",
                        check="training",
                        status="passed",
                        point={"R": r, "attention": attention, "d_model": d},
                        measured={"superposition_r2": value},
                    )
                )
    return out


def test_grid_rows_are_every_field_but_the_last() -> None:
    axes = grid_axes(_grid())
    assert axes is not None
    rows, columns = axes
    assert columns == [32, 64, 128]
    assert rows == [
        "R=2, attention=learned",
        "R=2, attention=uniform",
        "R=4, attention=learned",
        "R=4, attention=uniform",
    ]
    assert _image(grid_png("m", _grid(), "superposition_r2")).shape[1] > 100


def test_a_one_field_sweep_is_no_grid() -> None:
    one = [r.model_copy(update={"point": {"d_model": 32}}) for r in _grid()[:1]]
    assert grid_axes(one) is None
    with pytest.raises(ValueError, match="two or more fields"):
        grid_png("m", one, "superposition_r2")
