"""What a report shows (verifier/render): training curves per seed, each seed's value beside the
median, zero bounds drawn, failed heatmap cells marked, transfer links, provenance and legend."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from matplotlib.image import imread

from verifier.engine.report import (
    ClaimResult,
    ExpectationResult,
    Provenance,
    ReplicateHistory,
    Report,
)
from verifier.render.heatmaps import grid_cells
from verifier.render.html import METHODS, STATUSES, legend_html, provenance_html, results_table
from verifier.render.plots import (
    MAX_CURVE_FIGURES,
    bound_figure,
    curves_plot,
    curves_plots,
    expected_level,
    report_plots,
    sweep_plot,
)


def _history(seed: int, steps: int = 40) -> ReplicateHistory:
    """A made-up curve: loss falling from 5 to about 0.01, accuracy rising to 1."""
    step = list(range(0, steps * 10, 10))
    loss = [5.0 * math.exp(-s / 60) + 0.01 for s in step]
    accuracy = [min(1.0, s / (150 + 20 * seed)) for s in step]
    return ReplicateHistory(seed=seed, step=step, loss=loss, accuracy=accuracy)


PROVENANCE = Provenance(
    verifier="0.1.0",
    python="3.11.9",
    torch="2.13.0",
    numpy="2.1.0",
    scipy="1.14.0",
    cvxpy="1.6.0",
    sympy="1.13.0",
    device="cpu",
    cpu="Test CPU <model>",
    train_threads=1,
    train_order=0,
    git_commit="0123456789abcdef",
    git_dirty=True,
)


def training_report() -> Report:
    """A report as a training spec gives: two claims on the same models (one with an accuracy
    expectation), a transfer claim from the first, history and provenance."""
    history = [_history(0), _history(1), _history(2)]
    trained = ClaimResult(
        key="gd-finds-it",
        claim_id="gd-finds-it",
        check="training",
        status="passed",
        method="empirical",
        measured={"accuracy": 1.0, "steps_to_perfect": 47},
        expectations=[
            ExpectationResult(
                measure="accuracy", expected="1.0", measured=1.0, ok=True, replicates=[1, 1, 1]
            ),
            ExpectationResult(
                measure="steps_to_perfect",
                expected="<= 250",
                measured=47,
                ok=True,
                bound=250.0,
                replicates=[33, 47, 48],
            ),
        ],
        history=history,
    )
    gating = ClaimResult(
        key="hard-gating",
        claim_id="hard-gating",
        check="training",
        status="xfailed",
        method="empirical",
        measured={"gated_fraction": 0.0},
        expectations=[
            ExpectationResult(
                measure="gated_fraction",
                expected=">= 0.5",
                measured=0.0,
                ok=False,
                bound=0.5,
                replicates=[0.0, 0.0, 0.0],
            )
        ],
        history=history,
    )
    transfer = ClaimResult(
        key="probe-transfer",
        claim_id="probe-transfer",
        check="transfer",
        status="passed",
        method="empirical",
        measured={"control_accuracy": 0.001},
        expectations=[
            ExpectationResult(
                measure="control_accuracy",
                expected="<= 5/N",
                measured=0.001,
                ok=True,
                bound=0.0098,
                replicates=[0.001, 0.001, 0.0],
            )
        ],
        evidence={"from": "gd-finds-it"},
    )
    return Report(
        spec="gd-geometric",
        spec_hash="f" * 64,
        verifier_version="0.1.0",
        results=[trained, gating, transfer],
        provenance=PROVENANCE,
    )


def _image(plot_b64: str) -> np.ndarray:
    image: np.ndarray = imread(io.BytesIO(base64.b64decode(plot_b64)), format="png")
    return image


def test_curves_one_line_per_seed_and_the_threshold() -> None:
    report = training_report()
    plot = curves_plot(report.results[0])
    assert plot is not None and plot.kind == "curves" and plot.anchor == "curves-gd-finds-it"
    assert "one line per seed (0, 1, 2)" in plot.alt and "expected accuracy 1 marked" in plot.alt
    assert _image(plot.png_base64).shape[1] > 400
    assert expected_level(report.results[0], "accuracy") == 1.0
    assert expected_level(report.results[0], "steps_to_perfect") == 250.0
    assert expected_level(report.results[2], "accuracy") is None


def test_claims_on_the_same_models_draw_their_curves_once() -> None:
    [plot] = curves_plots(training_report())
    assert plot.anchor == "curves-gd-finds-it"  # the claim with the accuracy expectation
    assert "the same models as hard-gating" in plot.title
    other = training_report()
    other.results[1].history = [_history(5)]
    assert len(curves_plots(other)) == 2


def test_no_history_no_curves() -> None:
    report = training_report()
    for r in report.results:
        r.history = []
    assert curves_plots(report) == []
    assert all(p.kind != "curves" for p in report_plots(report))


def test_a_zero_bar_is_drawn_and_seeds_sit_beside_the_median() -> None:
    gating = training_report().results[1]  # measured 0.0 against a bound of 0.5
    fig = bound_figure(gating)
    assert fig is not None
    [ax] = fig.axes
    low, high = ax.get_ylim()
    assert low < 0 < 0.5 < high  # room below the zero bar
    flat = [
        line for line in ax.get_lines() if np.allclose(line.get_ydata(), 0.0) and line.get_lw() >= 2
    ]
    assert flat, "the zero-height bar has no visible line"
    [seeds] = ax.collections  # the three per-seed points
    assert np.allclose(seeds.get_offsets()[:, 1], [0.0, 0.0, 0.0])
    assert [t.get_text() for t in ax.texts] == ["0", "0.5"]  # the bar labels


def test_a_sweep_draws_each_seed() -> None:
    results = []
    for n, values in ((32, [0.9, 0.8, 1.0]), (64, [0.7, 0.75, 0.6])):
        results.append(
            ClaimResult(
                key=f"c[N={n}]",
                claim_id="c",
                check="training",
                status="passed",
                point={"N": n},
                measured={"accuracy": float(np.median(values))},
                expectations=[
                    ExpectationResult(
                        measure="accuracy",
                        expected=">= 0.5",
                        measured=float(np.median(values)),
                        ok=True,
                        bound=0.5,
                        replicates=values,
                    )
                ],
            )
        )
    plot = sweep_plot("c", results)
    assert plot is not None and _image(plot.png_base64).shape[0] > 100


def test_heatmap_cells_that_failed_are_found() -> None:
    results = []
    for r in (2, 4):
        for d in (32, 64):
            ok = not (r == 4 and d == 32)
            results.append(
                ClaimResult(
                    key=f"m[R={r},d_model={d}]",
                    claim_id="m",
                    check="training",
                    status="passed" if ok else "failed",
                    point={"R": r, "d_model": d},
                    measured={"accuracy": 1.0 if ok else 0.4, "superposition_r2": 0.9},
                    expectations=[
                        ExpectationResult(
                            measure="accuracy", expected="1.0", measured=1.0 if ok else 0.4, ok=ok
                        )
                    ],
                )
            )
    rows, columns, cells, failed = grid_cells("m", results, "accuracy")
    assert rows == ["R=2", "R=4"] and columns == [32, 64]
    assert failed == [(1, 0)] and cells[1, 0] == 0.4
    assert grid_cells("m", results, "superposition_r2")[3] == []  # no expectation on it


def test_table_anchors_claims_and_links_a_transfer_to_its_source() -> None:
    html = results_table(training_report())
    assert "<tr class='result' id='claim-gd-finds-it'>" in html
    assert "<a class='from' href='#claim-gd-finds-it'>from gd-finds-it</a>" in html
    assert "seeds: 33, 47, 48" in html


def test_provenance_and_legend() -> None:
    html = provenance_html(PROVENANCE)
    assert "<section id='provenance'>" in html
    assert "<th>torch</th><td>2.13.0</td>" in html
    assert "Test CPU &lt;model&gt;" in html  # escaped
    assert "<th>git_dirty</th><td>yes (uncommitted changes)</td>" in html
    assert "<th>host</th>" not in html  # not recorded: not shown
    extra = PROVENANCE.model_copy(update={"cpu": ""})
    assert "<th>cpu</th>" not in provenance_html(extra)  # empty: not shown
    assert "records no provenance" in provenance_html(None)
    legend = legend_html()
    for word in (*STATUSES, *METHODS):
        assert f">{word}</dt>" in legend


def test_the_notebook_view_shows_curves_provenance_and_legend() -> None:
    html = training_report()._repr_html_()
    assert "<figure id='curves-gd-finds-it'><img class='plot curves'" in html
    assert "<section id='provenance'>" in html and "<section id='legend'>" in html


def test_a_sweep_with_many_points_gets_one_overview_of_its_curves() -> None:
    results = [
        ClaimResult(
            key=f"sweep[d_model={d}]",
            claim_id="sweep",
            check="training",
            status="passed" if d > 16 else "failed",
            point={"d_model": d},
            history=[_history(seed + d) for seed in (0, 1)],
        )
        for d in (8, 16, 32, 64, 128, 256)
    ]
    report = Report(spec="s", spec_hash="0", verifier_version="0", results=results)
    [plot] = curves_plots(report)
    assert plot.anchor == "curves-sweep" and plot.kind == "curves"
    assert "each of 6 sweep points, red where the point is not ok (2)" in plot.alt
    few = Report(spec="s", spec_hash="0", verifier_version="0", results=results[:MAX_CURVE_FIGURES])
    assert [p.anchor for p in curves_plots(few)] == [
        f"curves-sweep-d_model-{d}" for d in (8, 16, 32, 64)
    ]
