"""A report as HTML: the verdict table and the plots that fit (inline PNGs, no script).

The HTTP service's report page (``api/report_page.py``) wraps :func:`results_table` and
:func:`figures` in its page; :func:`report_html` is the fragment a notebook shows
(``Report._repr_html_``), its style scoped to one ``div``. Everything user-supplied is escaped.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from verifier.engine.report import Report, fmt

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
)


def results_table(report: Report) -> str:
    """``<table id='results'>``: one ``tr.result`` per claim result."""
    rows = [
        "<table id='results'><thead><tr><th>claim</th><th>check</th><th>method</th>"
        "<th>status</th><th>expectations</th><th>message</th><th>time</th></tr></thead><tbody>"
    ]
    for r in report.results:
        expectations = "<br>".join(
            f"{escape(e.measure)} = {escape(fmt(e.measured))}, expected {escape(e.expected)}"
            + (f" (bound {e.bound:.6g})" if e.bound is not None else "")
            + ("" if e.ok else " ✗")
            for e in r.expectations
        )
        when = f"reused ({escape((r.verified_at or '')[:10])})" if r.reused else ""
        rows.append(
            f"<tr class='result'><td>{escape(r.key)}</td><td>{escape(r.check)}</td>"
            f"<td>{escape(r.method or '-')}</td>"
            f"<td class='{escape(r.status)}'>{escape(r.status)}</td><td>{expectations}</td>"
            f"<td>{escape(r.message)}</td><td>{when or f'{r.duration_s:.2f}s'}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def figures(plots: list[Plot]) -> str:
    """One ``figure`` with an ``img.plot`` (a data: URI) per plot."""
    return "".join(
        f"<figure><img class='plot' alt='{escape(plot.alt, quote=True)}' "
        f"src='data:image/png;base64,{plot.png_base64}'>"
        f"<figcaption>{escape(plot.title)}</figcaption></figure>"
        for plot in plots
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
        f"{results_table(report)}{figures(report_plots(report))}</div>"
    )
