"""Plots of a report's measured values (matplotlib PNGs), used by the report page.

Where the engine has :mod:`verifier.plots`, the page uses it; these are the API's own plots
for the measured values any claim kind reports, so a new kind needs no change here:

* a sweep claim: each expected (or key) measure against the first swept variable, with the
  expectation's bound where it has one (e.g. ``code_dim`` against ``N`` beside ``16 log N``);
* a single-point claim: each measured value beside its bound, one bar per expectation;
* a sweep over two or more fields (a regime map): one heatmap per measure
  (:mod:`verifier.heatmaps`), and for each trained model its MLP gating heatmap.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

from verifier.report import ClaimResult, Report

MAX_PANELS = 4  # measures drawn per claim


@dataclass(frozen=True)
class Plot:
    """One PNG, base64-encoded, with its title and alt text."""

    title: str
    alt: str
    png_base64: str


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _measures(results: list[ClaimResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        for e in r.expectations:
            if e.measure not in names and _number(r.measured.get(e.measure)) is not None:
                names.append(e.measure)
    for r in results:
        for name, value in r.measured.items():
            if name not in names and _number(value) is not None and name in ("accuracy", "margin"):
                names.append(name)
    return names[:MAX_PANELS]


def sweep_plot(claim_id: str, results: list[ClaimResult]) -> Plot | None:
    """Measures against the first swept variable, with bounds (one panel per measure)."""
    from matplotlib.figure import Figure

    var = next(iter(results[0].point or {}), None)
    if var is None:
        return None
    xs = [_number((r.point or {}).get(var)) for r in results]
    names = _measures(results)
    if not names or any(x is None for x in xs):
        return None
    fig = Figure(figsize=(3.2 * len(names), 2.8), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        pts = [(x, _number(r.measured.get(name))) for x, r in zip(xs, results, strict=True)]
        good = sorted((x, y) for x, y in pts if x is not None and y is not None)
        ax.plot([p[0] for p in good], [p[1] for p in good], "o-", label="measured")
        bounds = sorted(
            (x, e.bound)
            for x, r in zip(xs, results, strict=True)
            for e in r.expectations
            if e.measure == name and e.bound is not None and x is not None
        )
        if bounds:
            ax.plot([b[0] for b in bounds], [b[1] for b in bounds], "--", label="bound")
            ax.legend(fontsize=7)
        if good and good[0][0] > 0 and good[-1][0] / good[0][0] >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(var)
        ax.set_title(name, fontsize=9)
    fig.suptitle(claim_id, fontsize=10)
    alt = f"{claim_id}: {', '.join(names)} against {var}"
    return Plot(title=f"{claim_id}: measures against {var}", alt=alt, png_base64=_png(fig))


def bound_plot(result: ClaimResult) -> Plot | None:
    """Each numeric expectation of one result: the measured value beside its bound."""
    from matplotlib.figure import Figure

    rows: list[tuple[str, float, float, bool | None]] = []
    for e in result.expectations:
        value = _number(e.measured)
        if value is not None and e.bound is not None:
            rows.append((e.measure, value, e.bound, e.ok))
    rows = rows[:MAX_PANELS]
    if not rows:
        return None
    fig = Figure(figsize=(2.6 * len(rows), 2.6), layout="constrained")
    for i, (name, value, bound, ok) in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), i + 1)
        ax.bar(
            ["measured", "bound"],
            [value, bound],
            color=["tab:green" if ok else "tab:red", "tab:gray"],
        )
        ax.set_title(name, fontsize=9)
    fig.suptitle(result.key, fontsize=10)
    alt = f"{result.key}: " + ", ".join(
        f"{n} = {v:.4g} against bound {b:.4g}" for n, v, b, _ in rows
    )
    return Plot(title=f"{result.key}: measured against bound", alt=alt, png_base64=_png(fig))


GRID_MEASURES = (  # drawn for a regime map besides its expectations, where measured
    "accuracy",
    "steps_to_perfect",
    "superposition_r2",
    "probe_accuracy",
    "functional_superposition",
    "selector_linearity",
    "gated_fraction",
    "intervention_success",
    "control_accuracy",
)


def grid_plots(claim_id: str, results: list[ClaimResult]) -> list[Plot]:
    """A regime map (a sweep over two or more fields): one heatmap per measure."""
    from verifier.heatmaps import grid_png

    names = [e.measure for r in results[:1] for e in r.expectations]
    names += [m for m in GRID_MEASURES if m not in names]
    plots = []
    for name in names:
        if not any(_number(r.measured.get(name)) is not None for r in results):
            continue
        png = base64.b64encode(grid_png(claim_id, results, name)).decode("ascii")
        title = f"{claim_id}: {name} over the swept grid"
        plots.append(Plot(title=title, alt=title, png_base64=png))
    return plots


def gating_plots(report: Report) -> list[Plot]:
    """One gating heatmap (unit activation rate per relation) per trained model drawn once."""
    from verifier.heatmaps import activation_rates, gating_png

    plots, seen = [], set()
    for r in report.results:
        if r.check != "training" or r.point or activation_rates(r) is None:
            continue
        model = str(r.evidence.get("checkpoint", r.key))
        if model in seen:
            continue
        seen.add(model)
        png = base64.b64encode(gating_png(r)).decode("ascii")
        title = f"{r.key}: MLP gating (activation rate of each unit per relation)"
        plots.append(Plot(title=title, alt=title, png_base64=png))
    return plots


def report_plots(report: Report) -> list[Plot]:
    """The plots that fit a report's claims (sweeps, regime maps, gating, bounded measures)."""
    groups: dict[str, list[ClaimResult]] = {}
    for r in report.results:
        groups.setdefault(r.claim_id, []).append(r)
    plots: list[Plot] = []
    for claim_id, results in groups.items():
        swept = [r for r in results if r.point]
        if len(swept) > 1 and len(swept[0].point or {}) > 1:
            plots.extend(grid_plots(claim_id, swept))
            continue
        plot = sweep_plot(claim_id, swept) if len(swept) > 1 else bound_plot(results[0])
        if plot is not None:
            plots.append(plot)
    return plots + gating_plots(report)
