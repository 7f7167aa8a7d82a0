"""The headline contrast on one figure: associative against geometric recall (docs/theory.md 3, 4).

The paper's first sentence contrasts two regimes: an associative memory over frozen embeddings
needs MLP width linear in the number of facts, while learned embeddings let a small, fixed MLP
select. Each regime is a claim that searches the smallest ``d_mlp`` (or any field)
at every N of a sweep; this module draws every such claim of a report on one figure:

- left: the searched minimum (``minimum`` / ``maximum``) against N, one curve per claim, with
  the claim's expected growth law where its ``claim-id[growth]`` result fitted one;
- right: bits per trainable parameter at each point, ``R log2(N!) / P_trainable`` (LB1's
  ``bits`` from :mod:`verifier.theory`), beside LB1's ceiling (``P p >= R log2(N!)``, so at
  most p bits per parameter; p = 32 for the float32 training here) and the ~2 bits per
  parameter that trained models store (Allen-Zhu & Li 2024, docs/theory.md section 4).

Headless matplotlib (an Agg canvas, no pyplot state); :func:`contrast_png` returns PNG bytes or
None when the report has fewer than two searched sweeps over N.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from verifier.engine.fits import Law, predict
from verifier.engine.report import Report
from verifier.theory import evaluate_expression, get_theorem

OVER = "N"  # the swept variable the curves share
FLOAT_BITS = 32  # p in LB1's ceiling: the precision the models are trained in
REFERENCE_BITS = 2.0  # bits per parameter trained models store (Allen-Zhu & Li 2024)


@dataclass
class Curve:
    """One claim's searched boundary and bits per trainable parameter over N."""

    claim_id: str
    searched: str  # the searched field (d_mlp, ...)
    measure: str  # minimum or maximum
    points: list[tuple[float, float]] = field(default_factory=list)  # (N, boundary)
    bits: list[tuple[float, float]] = field(default_factory=list)  # (N, bits per trainable)
    law: tuple[Law, float, float] | None = None  # the expected growth law's fit, if any


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def lb1_bits(n: float, r: float) -> float:
    """``R log2(N!)``: LB1's ``bits`` quantity from the theorem registry."""
    return float(evaluate_expression(get_theorem("LB1").quantity("bits").expr, {"N": n, "R": r}))


def contrast_curves(report: Report) -> list[Curve]:
    """Every claim of ``report`` that searched a field at each N of a sweep, as a curve."""
    curves: dict[str, Curve] = {}
    for r in report.results:
        search = r.evidence.get("search")
        x = _number((r.point or {}).get(OVER))
        if not isinstance(search, dict) or x is None:
            continue
        measure = "maximum" if search.get("direction") == "largest" else "minimum"
        curve = curves.setdefault(r.claim_id, Curve(r.claim_id, str(search["field"]), measure))
        y = _number(r.measured.get(measure))
        if y is not None:
            curve.points.append((x, y))
        trainable, facts = _number(r.measured.get("trainable_params")), r.measured.get("n_facts")
        if y is not None and trainable and isinstance(facts, int) and facts > 0:
            curve.bits.append((x, lb1_bits(x, facts / x) / trainable))
    for r in report.results:
        growth = r.evidence.get("growth")
        if r.claim_id not in curves or not isinstance(growth, dict) or growth.get("over") != OVER:
            continue
        for group in r.evidence.get("groups", [])[:1]:
            fit = next((f for f in group.get("fits", []) if f.get("law") == growth["law"]), None)
            if fit is not None and fit.get("a") is not None and fit.get("b") is not None:
                curves[r.claim_id].law = (growth["law"], float(fit["a"]), float(fit["b"]))
    return [c for c in curves.values() if len(c.points) >= 2]


def contrast_png(report: Report, dpi: int = 100) -> bytes | None:
    """The two-panel contrast figure, or None with fewer than two curves to contrast."""
    curves = contrast_curves(report)
    if len(curves) < 2:
        return None
    fig = Figure(figsize=(10.5, 4.2), dpi=dpi)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    xs = sorted({x for c in curves for x, _ in c.points})
    for i, c in enumerate(curves):
        pts = sorted(c.points)
        left.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=c.claim_id)
        if c.law is not None:
            law, a, b = c.law
            grid = np.geomspace(min(xs), max(xs), 100)
            left.plot(
                grid,
                predict(law, (a, b), grid),
                "--",
                color=f"C{i}",
                alpha=0.6,
                label=f"{c.claim_id}: {law} fit",
            )
        bx, by = zip(*sorted(c.bits), strict=True) if c.bits else ((), ())
        right.plot(bx, by, "o-", color=f"C{i}", label=c.claim_id)
    right.axhline(FLOAT_BITS, color="0.3", linestyle="-", linewidth=1)
    label = f"LB1: R log2(N!) / P <= p = {FLOAT_BITS} (float32)"
    right.text(min(xs), FLOAT_BITS / 1.15, label, fontsize=8, va="top")  # below: the title is above
    right.axhline(REFERENCE_BITS, color="0.5", linestyle=":", linewidth=1)
    right.text(min(xs), REFERENCE_BITS * 1.15, "~2 bits/param (Allen-Zhu & Li 2024)", fontsize=8)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(OVER)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fields = sorted({c.searched for c in curves})
    left.set_ylabel(f"searched {', '.join(fields)}")
    left.set_title("smallest MLP width with recall, per regime", fontsize=10)
    right.set_yscale("log")
    right.set_ylabel("bits per trainable parameter")
    right.set_title("R log2(N!) / trainable parameters, beside LB1", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
