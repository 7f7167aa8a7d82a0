"""The HTML report page: verdict, one row per claim result, the plots that fit, the spec.

Everything user-supplied is escaped; images are inline PNGs (``data:`` URIs), so the page
needs no other request and no script.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
from html import escape
from typing import Any

from api.plots import Plot, report_plots
from api.store import Job
from verifier.report import Report, fmt

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.passed,.xfailed{color:#176b2c}.failed,.xpassed,.error,.interrupted{color:#b00020}
.undecided,.cancelled,.queued,.running{color:#8a6d00}
figure{display:inline-block;margin:0 1em 1em 0}pre{background:#f6f6f6;padding:1em}
"""


def engine_plots(report: Report) -> list[Plot]:
    """Growth plots (points and fitted laws) from :mod:`verifier.plots`, where the engine has it."""
    if importlib.util.find_spec("verifier.plots") is None:
        return []
    module = importlib.import_module("verifier.plots")
    growth_png = getattr(module, "growth_png", None)
    if not callable(growth_png):
        return []
    plots: list[Plot] = []
    for r in report.results:
        if "groups" in r.evidence and "growth" in r.evidence:
            png = base64.b64encode(growth_png(r)).decode("ascii")
            title = f"{r.key}: growth, measured points and fitted laws"
            plots.append(Plot(title=title, alt=title, png_base64=png))
    return plots


def contrast_plots(report: Report) -> list[Plot]:
    """The associative-against-geometric contrast (:mod:`verifier.contrast_plot`), if any."""
    from verifier.contrast_plot import contrast_png

    png = contrast_png(report)
    if png is None:
        return []
    title = "contrast: searched MLP width and bits per trainable parameter against N"
    return [Plot(title=title, alt=title, png_base64=base64.b64encode(png).decode("ascii"))]


def _cell(value: Any) -> str:
    return escape(fmt(value))


def render_page(job: Job) -> str:
    """The page for one job (a queued or running job shows its progress, not plots)."""
    head = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Verification {escape(job.spec_name)}: {escape(job.status)}</title>"
        f"<style>{_STYLE}</style></head><body>"
    )
    parts = [
        head,
        f"<h1>{escape(job.spec_name)}: <span id='status' class='{escape(job.status)}'>"
        f"{escape(job.status)}</span></h1>",
        "<p>"
        f"id <code>{escape(job.id)}</code> · spec hash <code>{escape(job.spec_hash[:16])}</code>"
        f" · verifier {escape(job.verifier_version)}"
        + (" · reused stored report" if job.reused else "")
        + "</p>",
    ]
    if job.message:
        parts.append(f"<p id='message'>{escape(job.message)}</p>")
    if job.report is None:
        parts.append(
            f"<p id='progress'>progress {job.progress:.0%} {escape(job.progress_key)} "
            f"{escape(job.progress_message)}</p>"
        )
    else:
        report = Report.model_validate(job.report)
        parts.append(_table(report))
        plots = engine_plots(report) + contrast_plots(report) + report_plots(report)
        parts.append("<h2>Plots</h2>" if plots else "<p>No plottable measures.</p>")
        for plot in plots:
            parts.append(
                f"<figure><img class='plot' alt='{escape(plot.alt, quote=True)}' "
                f"src='data:image/png;base64,{plot.png_base64}'>"
                f"<figcaption>{escape(plot.title)}</figcaption></figure>"
            )
    parts.append(f"<h2>Spec</h2><pre>{escape(job.spec_text)}</pre></body></html>")
    return "".join(parts)


def _table(report: Report) -> str:
    rows = [
        "<table id='results'><thead><tr><th>claim</th><th>check</th><th>method</th>"
        "<th>status</th><th>expectations</th><th>message</th><th>time</th></tr></thead><tbody>"
    ]
    for r in report.results:
        expectations = "<br>".join(
            f"{escape(e.measure)} = {_cell(e.measured)}, expected {escape(e.expected)}"
            + (f" (bound {e.bound:.6g})" if e.bound is not None else "")
            + ("" if e.ok else " ✗")
            for e in r.expectations
        )
        rows.append(
            f"<tr class='result'><td>{escape(r.key)}</td><td>{escape(r.check)}</td>"
            f"<td>{escape(r.method or '-')}</td>"
            f"<td class='{escape(r.status)}'>{escape(r.status)}</td><td>{expectations}</td>"
            f"<td>{escape(r.message)}</td><td>{r.duration_s:.2f}s</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)
