"""Plots of growth results: the measure against the swept variable, fitted laws overlaid.

Draws what :mod:`verifier.growth` put in a ``claim-id[growth]`` result's evidence: the points,
and each fitted law of :mod:`verifier.fits` (THEORY.md sections 3-6 name the laws), the expected
one solid, the competitors dashed, with their held-out errors in the legend. The x axis is
logarithmic when x > 0 spans more than a factor 8, the y axis when y > 0 does. Matplotlib runs
headless (an Agg canvas, no pyplot state); :func:`growth_png` returns PNG bytes that the HTTP
report page embeds, and :func:`write_plots` writes one PNG per growth result
(``verifier check --plots DIR``).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from verifier.fits import Law, predict
from verifier.report import ClaimResult, Report

_SPAN = 8.0  # a positive range wider than this factor gets a log axis


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
