"""A report as HTML: the verdict table, the plots that fit (inline PNGs, no script), the
provenance and a legend of statuses and methods.

The HTTP service's report page (``api/report_page.py``) wraps :func:`results_table`,
:func:`figures`, :func:`provenance_html` and :func:`legend_html` in its page; :func:`report_html`
is the fragment a notebook shows (``Report._repr_html_``), its style scoped to one ``div``.
Each claim's first row carries the id ``claim-<id>``, and a transfer claim's row links to the
claim it starts from (``#claim-<from>``). Everything user-supplied is escaped.
"""

from __future__ import annotations

import re
from html import escape
from typing import TYPE_CHECKING

from verifier.checks.base import METHOD_MEANINGS
from verifier.engine.report import REUSED_MEANING, STATUS_MEANINGS, Provenance, Report, fmt

if TYPE_CHECKING:  # matplotlib is imported only when plots are drawn (the API stays light)
    from verifier.render.plots import Plot

_FRAGMENT_STYLE = (
    ".verifier-report table{border-collapse:collapse;font-size:13px}"
    ".verifier-report th,.verifier-report td{border:1px solid #ccc;padding:3px 6px;"
    "text-align:left;vertical-align:top}"
    ".verifier-report figure{display:inline-block;margin:0 1em 1em 0}"
    ".verifier-report .passed,.verifier-report .xfailed{color:#176b2c}"
    ".verifier-report .failed,.verifier-report .xpassed,.verifier-report .error{color:#b00020}"
    ".verifier-report .undecided{color:#8a6d00}"
    ".verifier-report dl{font-size:12px}.verifier-report dt{font-weight:bold}"
)

STATUSES = STATUS_MEANINGS  # the legend: what each claim status means
METHODS = METHOD_MEANINGS  # the legend: how a verdict was reached, strongest first
REUSED = f"reused: {REUSED_MEANING}"


def anchor(text: str) -> str:
    """An HTML id made of ``text``: letters, digits, ``-``, ``_`` and ``.`` kept, runs of any
    other character as one ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def results_table(report: Report) -> str:
    """``<table id='results'>``: one ``tr.result`` per claim result; a claim's first row has the
    id ``claim-<id>``, and a transfer claim links to its ``from:`` claim's row."""
    rows = [
        "<table id='results'><thead><tr><th>claim</th><th>check</th><th>method</th>"
        "<th>status</th><th>expectations</th><th>message</th><th>time</th></tr></thead><tbody>"
    ]
    seen: set[str] = set()
    for r in report.results:
        expectations = "<br>".join(
            f"{escape(e.measure)} = {escape(fmt(e.measured))}, expected {escape(e.expected)}"
            + (f" (bound {e.bound:.6g})" if e.bound is not None else "")
            + (
                f" · seeds: {escape(', '.join(fmt(v) for v in e.replicates))}"
                if e.replicates and len(e.replicates) > 1
                else ""
            )
            + ("" if e.ok else " ✗")
            for e in r.expectations
        )
        when = f"reused ({escape((r.verified_at or '')[:10])})" if r.reused else ""
        row_id = ""
        if r.claim_id not in seen:
            seen.add(r.claim_id)
            row_id = f" id='claim-{escape(anchor(r.claim_id), quote=True)}'"
        source = r.evidence.get("from")
        link = (
            f"<br><a class='from' href='#claim-{escape(anchor(source), quote=True)}'>from "
            f"{escape(source)}</a>"
            if isinstance(source, str) and source
            else ""
        )
        rows.append(
            f"<tr class='result'{row_id}><td>{escape(r.key)}{link}</td><td>{escape(r.check)}</td>"
            f"<td>{escape(r.method or '-')}</td>"
            f"<td class='{escape(r.status)}'>{escape(r.status)}</td><td>{expectations}</td>"
            f"<td>{escape(r.message)}</td><td>{when or f'{r.duration_s:.2f}s'}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def figures(plots: list[Plot]) -> str:
    """One ``figure`` with an ``img.plot`` (a data: URI) per plot; a plot's ``kind`` is a
    further class of its image, its ``anchor`` the figure's id."""
    return "".join(
        "<figure"
        + (f" id='{escape(plot.anchor, quote=True)}'" if plot.anchor else "")
        + f"><img class='plot{' ' + escape(plot.kind, quote=True) if plot.kind else ''}' "
        f"alt='{escape(plot.alt, quote=True)}' src='data:image/png;base64,{plot.png_base64}'>"
        f"<figcaption>{escape(plot.title)}</figcaption></figure>"
        for plot in plots
    )


def provenance_html(provenance: Provenance | None) -> str:
    """``<section id='provenance'>``: the versions, machine and training settings that
    decided the numbers, one row each (or a line saying the report records none)."""
    if provenance is None:
        return (
            "<section id='provenance'><h4>Provenance</h4>"
            "<p>This report records no provenance.</p></section>"
        )
    pairs: list[tuple[str, object]] = []
    for name, value in provenance.model_dump().items():
        if isinstance(value, dict):  # one row per entry (VERIFIER_* settings and the like)
            pairs += [(f"{name}.{k}", v) for k, v in value.items()]
        elif value is not None and value != "":
            pairs.append((name, value))
    rows = []
    for name, value in pairs:
        if name == "git_dirty":
            value = "yes (uncommitted changes)" if value else "no"
        rows.append(f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>")
    return (
        "<section id='provenance'><h4>Provenance</h4><table class='provenance'>"
        + "".join(rows)
        + "</table></section>"
    )


def legend_html() -> str:
    """``<section id='legend'>``: what each status and each method means."""
    statuses = "".join(
        f"<dt class='{name}'>{name}</dt><dd>{escape(text)}</dd>" for name, text in STATUSES.items()
    )
    methods = "".join(f"<dt>{name}</dt><dd>{escape(text)}</dd>" for name, text in METHODS.items())
    return (
        "<section id='legend'><h4>Legend</h4>"
        f"<div><b>Statuses</b><dl>{statuses}</dl></div>"
        f"<div><b>Methods</b><dl>{methods}</dl></div><p>{escape(REUSED)}</p></section>"
    )


def report_html(report: Report) -> str:
    """A self-contained fragment: heading, verdict table, plots."""
    from verifier.render.plots import report_plots

    status = escape(report.status)
    return (
        f"<div class='verifier-report'><style>{_FRAGMENT_STYLE}</style>"
        f"<h3>{escape(report.spec)}: <span class='report-status {status}'>{status}</span></h3>"
        f"<p>{len(report.results)} results · spec hash <code>{escape(report.spec_hash[:16])}"
        f"</code> · verifier {escape(report.verifier_version)}</p>"
        f"{results_table(report)}{figures(report_plots(report))}"
        f"{provenance_html(report.provenance)}{legend_html()}</div>"
    )
