"""Plots of a report (matplotlib PNGs): growth fits, sweeps and measured values beside bounds.

- Growth results: what :mod:`verifier.engine.growth` put in a ``claim-id[growth]`` result's
  evidence, the points and each fitted law of :mod:`verifier.engine.fits` (docs/theory.md sections
  3-6 name the laws), the expected one solid, the competitors dashed, with their held-out errors in
  the legend. The x axis is logarithmic when x > 0 spans more than a factor 8, the y axis when y > 0
  does. :func:`growth_png` returns PNG bytes; :func:`write_plots` writes one PNG per growth result
  (``verifier check --plots DIR``).
- Any claim kind (so a new kind needs no change here): a sweep claim's expected (or key)
  measures against the first swept variable, with the expectation's bound where it has one
  (:func:`sweep_plot`); a single-point claim's measured values beside their bounds
  (:func:`bound_plot`); a sweep over two or more fields (a regime map) as one heatmap per
  measure (:func:`grid_plots`), and each trained model's MLP gating (:func:`gating_plots`;
  both drawn by :mod:`verifier.render.heatmaps`).
- Two or more searched sweeps over N (associative against geometric): one figure with
  both curves and their bits per trainable parameter beside LB1 (:mod:`verifier.render.contrast`).

:func:`report_plots` gives all of them for one report, as :class:`Plot` (base64 PNG, title,
alt text): the HTTP report page and ``Report._repr_html_`` embed them. Matplotlib runs headless
(an Agg canvas, no pyplot state).
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from verifier.engine.fits import Law, predict
from verifier.engine.report import ClaimResult, Report
from verifier.render.html import anchor

_SPAN = 8.0  # a positive range wider than this factor gets a log axis
MAX_PANELS = 4  # measures drawn per claim


@dataclass(frozen=True)
class Plot:
    """One PNG, base64-encoded, with its title and alt text; ``kind`` is an HTML class
    (``curves`` for training curves) and ``anchor`` the figure's HTML id (or empty)."""

    title: str
    alt: str
    png_base64: str
    kind: str = ""
    anchor: str = ""


def _log_axis(values: list[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > _SPAN


def growth_png(result: ClaimResult, dpi: int = 100) -> bytes:
    """A PNG of one growth result's points and fitted laws.

    Raises:
        ValueError: ``result`` is not a growth result (no ``groups`` in its evidence).
    """
    groups: list[dict[str, Any]] = result.evidence.get("groups", [])
    growth: dict[str, Any] = result.evidence.get("growth", {})
    if not growth:
        raise ValueError(f"expected a growth result, got {result.key!r} without growth evidence")
    fig = Figure(figsize=(6.4, 4.4), dpi=dpi)  # no pyplot: no global figure state
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    xs_all: list[float] = []
    ys_all: list[float] = []
    for gi, group in enumerate(groups):
        x, y = list(group["x"]), list(group["y"])
        xs_all += x
        ys_all += y
        fixed = ", ".join(f"{k}={v}" for k, v in group.get("fixed", {}).items())
        ax.scatter(x, y, s=22, zorder=3, color=f"C{gi}", label=f"measured {fixed}".strip())
        if not x:
            continue
        lo, hi = min(x), max(x)
        grid = np.geomspace(lo, hi, 200) if _log_axis(x) else np.linspace(lo, hi, 200)
        for fit in group.get("fits", []):
            if fit.get("skipped") or fit.get("a") is None or fit.get("b") is None:
                continue
            law: Law = fit["law"]
            line = predict(law, (float(fit["a"]), float(fit["b"])), grid)
            expected = law == growth.get("law")
            err = fit.get("held_out_error")
            ax.plot(
                grid,
                line,
                color=f"C{gi}" if expected else "0.45",
                linestyle="-" if expected else "--",
                linewidth=2 if expected else 1,
                alpha=1.0 if expected else 0.7,
                label=f"{law}" + (f" (held-out {err:.3g})" if err is not None else "")
                if gi == 0
                else None,
            )
    if _log_axis(xs_all):
        ax.set_xscale("log", base=2)
    if _log_axis(ys_all):
        ax.set_yscale("log")
    ax.set_xlabel(str(growth.get("over", "x")))
    ax.set_ylabel(str(growth.get("measure", "y")))
    ax.set_title(f"{result.key}: {result.status}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_name(report: Report, result: ClaimResult) -> str:
    """A file name for one result's plot: ``<spec>__<claim>-growth.png``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{report.spec}__{result.claim_id}-growth")
    return f"{stem}.png"


def write_plots(reports: Iterable[Report], folder: str | Path) -> list[Path]:
    """Write one PNG per growth result into ``folder`` (created if missing); return the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        for result in report.results:
            if "groups" in result.evidence and "growth" in result.evidence:
                path = out / plot_name(report, result)
                path.write_bytes(growth_png(result))
                written.append(path)
    return written


# --- plots of any claim kind ---------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _png(fig: Any) -> str:
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


def _replicate_values(result: ClaimResult, measure: str) -> list[float]:
    """Each replicate's (seed's) numeric value of ``measure`` where the result has them."""
    for e in result.expectations:
        if e.measure == measure and e.replicates:
            return [v for v in map(_number, e.replicates) if v is not None]
    return []


def sweep_plot(claim_id: str, results: list[ClaimResult]) -> Plot | None:
    """Measures against the first swept variable, with bounds (one panel per measure); on a
    replicated claim each seed's value as a small point beside the median."""
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
        replicated = any(_replicate_values(r, name) for r in results)
        median = "median of seeds" if replicated else "measured"
        ax.plot([p[0] for p in good], [p[1] for p in good], "o-", label=median)
        seeds = [
            (x, v)
            for x, r in zip(xs, results, strict=True)
            if x is not None
            for v in _replicate_values(r, name)
        ]
        if seeds:
            ax.scatter([p[0] for p in seeds], [p[1] for p in seeds], s=12, color="0.35",
                       alpha=0.7, zorder=3, label="each seed")  # fmt: skip
        bounds = sorted(
            (x, e.bound)
            for x, r in zip(xs, results, strict=True)
            for e in r.expectations
            if e.measure == name and e.bound is not None and x is not None
        )
        if bounds:
            ax.plot([b[0] for b in bounds], [b[1] for b in bounds], "--", label="bound")
        if bounds or seeds:
            ax.legend(fontsize=7)
        if good and good[0][0] > 0 and good[-1][0] / good[0][0] >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(var)
        ax.set_title(name, fontsize=9)
    fig.suptitle(claim_id, fontsize=10)
    alt = f"{claim_id}: {', '.join(names)} against {var}"
    return Plot(title=f"{claim_id}: measures against {var}", alt=alt, png_base64=_png(fig))


def bound_figure(result: ClaimResult) -> Figure | None:
    """Each numeric expectation of one result: the measured value (the median, on a replicated
    claim, with each seed's value as a point on its bar) beside its bound, each bar labelled
    with its value, and the y range padded below 0 so that a bar of height 0 still shows as a
    line."""
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
        bars = ax.bar(
            ["measured", "bound"],
            [value, bound],
            color=["tab:green" if ok else "tab:red", "tab:gray"],
            edgecolor="black",
            linewidth=0.8,
        )
        for bar, height in zip(bars, (value, bound), strict=True):  # visible at height 0
            x0 = bar.get_x()
            ax.plot([x0, x0 + bar.get_width()], [height, height], color="black", linewidth=2)
        ax.bar_label(bars, labels=[f"{value:.4g}", f"{bound:.4g}"], fontsize=7, padding=2)
        seeds = _replicate_values(result, name)
        if seeds:
            ax.scatter([0.0] * len(seeds), seeds, s=14, color="black", zorder=3, label="each seed")
            ax.legend(fontsize=6, loc="best")
        values = [value, bound, *seeds]
        lo, hi = min(0.0, *values), max(0.0, *values)
        pad = 0.15 * (hi - lo) or 0.5
        ax.set_ylim(lo - pad, hi + pad)
        ax.axhline(0.0, color="0.6", linewidth=0.6)
        ax.set_title(name, fontsize=9)
    fig.suptitle(result.key, fontsize=10)
    return fig


def bound_plot(result: ClaimResult) -> Plot | None:
    """:func:`bound_figure` as a :class:`Plot`."""
    fig = bound_figure(result)
    if fig is None:
        return None
    rows = [
        (e.measure, _number(e.measured), e.bound)
        for e in result.expectations
        if _number(e.measured) is not None and e.bound is not None
    ][:MAX_PANELS]
    alt = f"{result.key}: " + ", ".join(
        f"{n} = {v:.4g} against bound {b:.4g}"
        for n, v, b in rows
        if v is not None and b is not None
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
    "relation_gating",
    "relation_gating_init",
    "relu_necessity",
    "intervention_success",
    "control_accuracy",
)


def grid_plots(claim_id: str, results: list[ClaimResult]) -> list[Plot]:
    """A regime map (a sweep over two or more fields): one heatmap per measure."""
    from verifier.render.heatmaps import grid_png

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


GATED_KINDS = ("training", "model_file")  # kinds whose evidence holds MLP activation rates


def gating_plots(report: Report) -> list[Plot]:
    """One gating heatmap (unit activation rate per relation) per trained (or read) model,
    drawn once."""
    from verifier.render.heatmaps import activation_rates, gating_png

    plots, seen = [], set()
    for r in report.results:
        if r.check not in GATED_KINDS or r.point or activation_rates(r) is None:
            continue
        model = str(r.evidence.get("checkpoint", r.key))
        if model in seen:
            continue
        seen.add(model)
        png = base64.b64encode(gating_png(r)).decode("ascii")
        title = f"{r.key}: MLP gating (activation rate of each unit per relation)"
        plots.append(Plot(title=title, alt=title, png_base64=png))
    return plots


def expected_level(result: ClaimResult, measure: str) -> float | None:
    """The level an expectation on ``measure`` sets: its bound (a comparison), or the value of
    an equality (``accuracy: 1.0``, ``{value: 0.9, tol: ...}``); None without one."""
    for e in result.expectations:
        if e.measure != measure:
            continue
        if e.bound is not None:
            return e.bound
        head = e.expected.split()[0] if e.expected.split() else ""
        try:
            return float(head)
        except ValueError:
            return None
    return None


def curves_plot(result: ClaimResult, also: list[str] | None = None) -> Plot | None:
    """Loss and accuracy against the step of a training result, one line per replicate (seed),
    the claim's ``accuracy`` expectation drawn as a dotted line; None without history.

    The loss (mean cross-entropy, nats) is drawn on a log axis when it spans more than a
    factor 8; accuracy is the share of facts recalled exactly, in [0, 1].
    ``also`` names the other claims that trained the same models (drawn once).
    """
    runs = [h for h in result.history if h.step]
    if not runs:
        return None
    fig = Figure(figsize=(8.0, 2.9), layout="constrained")
    loss_ax, acc_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    losses: list[float] = []
    for i, h in enumerate(runs):
        label = f"seed {h.seed}"
        loss_ax.plot(h.step, h.loss, color=f"C{i}", linewidth=1.4, label=label)
        acc_ax.plot(h.step, h.accuracy, color=f"C{i}", linewidth=1.4, label=label)
        losses += h.loss
    if _log_axis(losses):
        loss_ax.set_yscale("log")
    level = expected_level(result, "accuracy")
    if level is not None:
        acc_ax.axhline(
            level,
            color="tab:red",
            linestyle=(0, (2, 2)),
            linewidth=1.8,
            zorder=5,
            label=f"expected accuracy {level:.4g}",
        )  # fmt: skip  (drawn over the lines)
    acc_ax.set_ylim(-0.03, 1.05)
    loss_ax.set_title("training loss (cross-entropy)", fontsize=9)
    acc_ax.set_title("accuracy (share of facts recalled)", fontsize=9)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    acc_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result.key}: {result.status}", fontsize=10)
    seeds = ", ".join(str(h.seed) for h in runs)
    others = f" (the same models as {', '.join(also)})" if also else ""
    alt = (
        f"training curves of {result.key}{others}: loss and accuracy against the step, one "
        f"line per seed ({seeds})"
        + (f", expected accuracy {level:.4g} marked" if level is not None else "")
    )
    return Plot(
        title=f"{result.key}: training loss and accuracy per seed{others}",
        alt=alt,
        png_base64=_png(fig),
        kind="curves",
        anchor=f"curves-{anchor(result.key)}",
    )


def curves_overview(claim_id: str, results: list[ClaimResult]) -> Plot | None:
    """The training curves of a sweep with many points on one figure: every replicate of every
    point as a thin line, green where the point's result is ok and red where it is not, the
    ``accuracy`` expectation dotted; None without history."""
    runs = [(r, h) for r in results for h in r.history if h.step]
    if not runs:
        return None
    fig = Figure(figsize=(8.0, 2.9), layout="constrained")
    loss_ax, acc_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    losses: list[float] = []
    for r, h in runs:
        color = "tab:green" if r.ok else "tab:red"
        loss_ax.plot(h.step, h.loss, color=color, linewidth=0.7, alpha=0.5)
        acc_ax.plot(h.step, h.accuracy, color=color, linewidth=0.7, alpha=0.5)
        losses += h.loss
    if _log_axis(losses):
        loss_ax.set_yscale("log")
    level = next((v for r in results if (v := expected_level(r, "accuracy")) is not None), None)
    if level is not None:
        acc_ax.axhline(level, color="black", linestyle=(0, (2, 2)), linewidth=1.5, zorder=5)
    acc_ax.set_ylim(-0.03, 1.05)
    loss_ax.set_title("training loss (cross-entropy)", fontsize=9)
    acc_ax.set_title("accuracy (share of facts recalled)", fontsize=9)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    failing = sum(not r.ok for r in results)
    fig.suptitle(
        f"{claim_id}: {len(results)} points, {len(runs)} runs (red: the {failing} points not ok)",
        fontsize=10,
    )
    alt = (
        f"training curves of {claim_id}: loss and accuracy against the step, one line per seed "
        f"of each of {len(results)} sweep points, red where the point is not ok ({failing})"
    )
    return Plot(
        title=f"{claim_id}: training loss and accuracy of every sweep point and seed",
        alt=alt,
        png_base64=_png(fig),
        kind="curves",
        anchor=f"curves-{anchor(claim_id)}",
    )


MAX_CURVE_FIGURES = 4  # per claim; a sweep with more points gets one overview figure


def curves_plots(report: Report) -> list[Plot]:
    """Training curves of every result with history. Results with the same history (claims
    that trained the same models) are drawn once, from the one with an ``accuracy``
    expectation where there is one; a claim with more than :data:`MAX_CURVE_FIGURES` such
    results (a sweep) gets one :func:`curves_overview` instead."""
    groups: dict[str, list[ClaimResult]] = {}
    for r in report.results:
        if any(h.step for h in r.history):
            key = repr([(h.seed, h.step, h.loss, h.accuracy) for h in r.history])
            groups.setdefault(key, []).append(r)
    by_claim: dict[str, list[tuple[ClaimResult, list[str]]]] = {}
    for results in groups.values():
        first = next((r for r in results if expected_level(r, "accuracy") is not None), results[0])
        also = [r.key for r in results if r is not first]
        by_claim.setdefault(first.claim_id, []).append((first, also))
    plots = []
    for claim_id, drawn in by_claim.items():
        if len(drawn) > MAX_CURVE_FIGURES:
            plot = curves_overview(claim_id, [r for r, _ in drawn])
            plots += [plot] if plot is not None else []
            continue
        for first, also in drawn:
            plot = curves_plot(first, also)
            plots += [plot] if plot is not None else []
    return plots


def _measure_plots(report: Report) -> list[Plot]:
    """Sweep, regime-map, bound and gating plots for the claims of a report."""
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


def growth_plots(report: Report) -> list[Plot]:
    """One plot per growth result of a report."""
    plots = []
    for r in report.results:
        if "groups" in r.evidence and "growth" in r.evidence:
            png = base64.b64encode(growth_png(r)).decode("ascii")
            title = f"{r.key}: growth, measured points and fitted laws"
            plots.append(Plot(title=title, alt=title, png_base64=png))
    return plots


def contrast_plots(report: Report) -> list[Plot]:
    """The associative-against-geometric contrast (:mod:`verifier.render.contrast`), if any."""
    from verifier.render.contrast import contrast_png  # it imports this module's neighbours

    png = contrast_png(report)
    if png is None:
        return []
    title = "contrast: searched MLP width and bits per trainable parameter against N"
    return [Plot(title=title, alt=title, png_base64=base64.b64encode(png).decode("ascii"))]


def report_plots(report: Report) -> list[Plot]:
    """Every plot that fits a report: training curves, growth fits, the regime contrast, sweeps
    and bounds."""
    return (
        curves_plots(report)
        + growth_plots(report)
        + contrast_plots(report)
        + _measure_plots(report)
    )
