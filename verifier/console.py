"""Reports on the console (rich): the verdict table, or one block per claim when narrow.

Every piece of user text (spec names, claim ids with their sweep labels such as
``gd-multi-hop[cot=False]``, messages, measured values) goes into :class:`rich.text.Text`, never
through rich markup, so a ``[`` in it is printed as typed. Each measure with an expectation is
shown beside that expectation (``accuracy=0.9948 (expect 1.0) FAILED``), and :data:`LEGEND`
says what the methods and statuses mean (docs/verdicts.md says it at length).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from verifier.checks.base import METHOD_MEANINGS
from verifier.engine.report import (
    REUSED_MEANING,
    STATUS_MEANINGS,
    ClaimResult,
    ExpectationResult,
    Report,
    fmt,
)

# Below this console width the table's seven columns fold into unreadable slivers: one block
# per claim instead.
WIDE_COLUMNS = 120

STATUS_STYLE = {
    "passed": "green",
    "xfailed": "green",
    "failed": "red",
    "xpassed": "red",
    "error": "red bold",
    "undecided": "yellow",
}

METHODS = METHOD_MEANINGS
STATUSES = {**STATUS_MEANINGS, "reused": REUSED_MEANING}
LEGEND = (
    "methods: "
    + "; ".join(f"{k} = {v}" for k, v in METHODS.items())
    + "\nstatuses: "
    + "; ".join(f"{k} = {v}" for k, v in STATUSES.items())
    + " (docs/verdicts.md)"
)

# measures worth showing when fewer than MEASURE_LIMIT have expectations
_USUAL = ("accuracy", "margin", "code_dim", "embedding_dim", "status", "params")
MEASURE_LIMIT = 4


def time_text(result: ClaimResult) -> str:
    """The time column: seconds, or when a reused verdict was verified."""
    if result.reused:
        return f"reused {(result.verified_at or '')[:10]}"
    return f"{result.duration_s:.2f}s"


def _mark(e: ExpectationResult) -> str:
    if e.ok is None:
        return " NOT MEASURED" if e.measured is None else " UNDECIDED"
    return "" if e.ok else " FAILED"


def expectation_text(e: ExpectationResult) -> str:
    """``margin=0.62 (expect >= 0.5)``; a formula's bound beside it; a mark unless it held;
    each replicate's value after the median on a replicated claim."""
    bound = ""
    if e.bound is not None and fmt(e.bound) not in e.expected:
        bound = f" = {e.bound:.6g}"
    seeds = ""
    if e.replicates is not None and len(e.replicates) > 1:
        seeds = "; replicates " + " ".join(fmt(v) for v in e.replicates)
    return f"{e.measure}={fmt(e.measured)} (expect {e.expected}{bound}){_mark(e)}{seeds}"


def measure_lines(result: ClaimResult, limit: int = MEASURE_LIMIT) -> list[str]:
    """Every expectation beside its measure, then usual measures up to ``limit`` lines; the
    message when nothing was measured."""
    if not result.measured and not result.expectations:
        return [result.message[:160]] if result.message else []
    lines = [expectation_text(e) for e in result.expectations]
    named = {e.measure for e in result.expectations}
    for n in _USUAL:
        if len(lines) >= limit:
            break
        if n in result.measured and n not in named:
            lines.append(f"{n}={fmt(result.measured[n])}")
    return lines


def _status(result: ClaimResult) -> Text:
    return Text(result.status, style=STATUS_STYLE.get(result.status, ""))


def render_table(reports: Iterable[Report]) -> Table:
    """The verdict table: spec, claim, check, method, status, measures with expectations, time."""
    table = Table(show_lines=False, header_style="bold")
    for column in ("spec", "claim", "check", "method", "status", "measures", "time"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("measures", "claim"))
    for report in reports:
        for r in report.results:
            table.add_row(
                Text(report.spec),
                Text(r.key),
                Text(r.check),
                Text(r.method or "-"),
                _status(r),
                Text("\n".join(measure_lines(r))),
                Text(time_text(r)),
            )
    return table


def render_blocks(reports: Iterable[Report]) -> Group:
    """One block per claim, for narrow consoles: ``spec :: claim``, then status, check, method
    and time, then one measure per line."""
    parts: list[RenderableType] = []
    for report in reports:
        for r in report.results:
            head = Text.assemble((report.spec, "bold"), " :: ", (r.key, "bold"))
            line = Text.assemble(
                "  ", _status(r), f"  {r.check} / {r.method or '-'}  {time_text(r)}"
            )
            parts += [head, line, *(Text("    " + m) for m in measure_lines(r)), Text("")]
    return Group(*parts)


def render_reports(reports: list[Report], width: int) -> RenderableType:
    """The table on a wide console, blocks on one narrower than :data:`WIDE_COLUMNS`."""
    return render_table(reports) if width >= WIDE_COLUMNS else render_blocks(reports)


def spec_line(report: Report) -> Text:
    """One line for a finished spec: ``name: 3 claims, 2 passed, 1 failed (12.3s)``."""
    by_status: dict[str, int] = {}
    for r in report.results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in by_status.items()) or "none selected"
    return Text(f"{report.spec}: {len(report.results)} claims, {counts} ({report.duration_s:.1f}s)")
