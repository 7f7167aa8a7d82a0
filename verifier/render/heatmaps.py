"""Heatmaps of training results: gating per relation, and measures over a regime grid.

- :func:`gating_png`: a training result's ``gated_fraction`` evidence holds each MLP unit's
  activation rate per relation (``(R, d_mlp)``, docs/theory.md section 7); drawn as an image with
  units sorted by the relation they fire most for, so a hard selector shows as blocks and a
  shared (ungated) MLP as a flat band.
- :func:`grid_png`: one measure of a claim swept over several fields (a regime map), rows the
  combinations of every field but the last, columns the last field's values, each cell the
  point's (median over replicates) value; unmeasured cells are left blank, and a cell whose
  expectation on the measure failed is framed in red and marked with a cross.

Matplotlib runs headless (an Agg canvas, no pyplot state); both return PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from verifier.engine.report import ClaimResult


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def activation_rates(result: ClaimResult) -> np.ndarray | None:
    """``(R, d_mlp)`` activation rates of a training result (its first replicate), or None."""
    evidence: dict[str, Any] = result.evidence
    replicated = evidence.get("replicates")
    if isinstance(replicated, dict) and replicated.get("evidence"):
        evidence = replicated["evidence"][0]
    rates = evidence.get("mechanism", {}).get("gated_fraction", {}).get("activation_rate")
    return None if rates is None else np.asarray(rates, dtype=np.float64)


def gating_png(result: ClaimResult) -> bytes:
    """The activation-rate heatmap of one training result.

    Raises:
        ValueError: the result has no activation rates in its evidence.
    """
    rates = activation_rates(result)
    if rates is None:
        raise ValueError(f"expected gating evidence, got none in {result.key!r}")
    order = np.lexsort((-rates.max(axis=0), rates.argmax(axis=0)))
    fig = Figure(figsize=(min(12.0, 2.0 + rates.shape[1] / 24), 0.9 + 0.45 * rates.shape[0]))
    ax = fig.subplots()
    image = ax.imshow(rates[:, order], aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_yticks(range(rates.shape[0]), [f"r={r}" for r in range(rates.shape[0])])
    ax.set_xlabel("MLP unit (sorted by the relation it fires most for)")
    ax.set_title(f"{result.key}: share of subjects each unit fires for", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    return _png(fig)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def grid_axes(results: Sequence[ClaimResult]) -> tuple[list[str], list[Any]] | None:
    """(row labels, column values) of a sweep over two or more fields, or None."""
    points = [r.point or {} for r in results]
    if not points or len(points[0]) < 2:
        return None
    fields = list(points[0])
    last = fields[-1]
    columns: list[Any] = []
    rows: list[str] = []
    for p in points:
        label = ", ".join(f"{f}={p[f]}" for f in fields[:-1])
        if label not in rows:
            rows.append(label)
        if p[last] not in columns:
            columns.append(p[last])
    return rows, columns


def grid_cells(
    claim_id: str, results: Sequence[ClaimResult], measure: str
) -> tuple[list[str], list[Any], np.ndarray, list[tuple[int, int]]]:
    """(row labels, column values, ``(rows, columns)`` values with NaN where unmeasured, the
    ``(row, column)`` cells whose expectation on ``measure`` failed) of a swept grid.

    Raises:
        ValueError: the results are not a sweep over two or more fields.
    """
    axes = grid_axes(results)
    if axes is None:
        raise ValueError(f"expected a sweep over two or more fields in {claim_id!r}")
    rows, columns = axes
    last = list(results[0].point or {})[-1]
    cells = np.full((len(rows), len(columns)), np.nan)
    failed: list[tuple[int, int]] = []
    for r in results:
        p = r.point or {}
        label = ", ".join(f"{f}={p[f]}" for f in list(p)[:-1])
        cell = (rows.index(label), columns.index(p[last]))
        value = _number(r.measured.get(measure))
        if value is not None:
            cells[cell] = value
        if any(e.measure == measure and e.ok is False for e in r.expectations):
            failed.append(cell)
    return rows, columns, cells, failed


def grid_png(claim_id: str, results: Sequence[ClaimResult], measure: str) -> bytes:
    """One measure over a swept grid as a heatmap (rows: all fields but the last), the cells
    whose expectation failed framed in red.

    Raises:
        ValueError: the results are not a sweep over two or more fields.
    """
    rows, columns, cells, failed = grid_cells(claim_id, results, measure)
    last = list(results[0].point or {})[-1]
    fig = Figure(figsize=(2.2 + 1.1 * len(columns), 0.9 + 0.32 * len(rows)))
    ax = fig.subplots()
    image = ax.imshow(cells, aspect="auto", cmap="viridis")
    for i in range(len(rows)):
        for j in range(len(columns)):
            if math.isfinite(cells[i, j]):
                ax.text(j, i, f"{cells[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if cells[i, j] < np.nanmean(cells) else "black")  # fmt: skip
    for i, j in failed:
        ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, edgecolor="red",
                               linewidth=2.5))  # fmt: skip
        ax.text(j + 0.38, i - 0.3, "✗", ha="right", va="center", fontsize=8, color="red")
    ax.set_xticks(range(len(columns)), [str(c) for c in columns], fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel(last)
    note = f" (red: expectation failed at {len(failed)} of {len(results)} points)" if failed else ""
    ax.set_title(f"{claim_id}: {measure}{note}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    return _png(fig)
