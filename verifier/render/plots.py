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

_SPAN = 8.0  # a positive range wider than this factor gets a log axis
MAX_PANELS = 4  # measures drawn per claim


@dataclass(frozen=True)
class Plot:
    """One PNG, base64-encoded, with its title and alt text."""

    title: str
    alt: str
    png_base64: str


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


def sweep_plot(claim_id: str, results: list[ClaimResult]) -> Plot | None:
    """Measures against the first swept variable, with bounds (one panel per measure)."""
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


def gating_plots(report: Report) -> list[Plot]:
    """One gating heatmap (unit activation rate per relation) per trained model, drawn once."""
    from verifier.render.heatmaps import activation_rates, gating_png

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
    """Every plot that fits a report: growth fits, the regime contrast, sweeps and bounds."""
    return growth_plots(report) + contrast_plots(report) + _measure_plots(report)
