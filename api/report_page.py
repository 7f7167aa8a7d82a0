"""The HTML report page: verdict, one row per claim result, the plots that fit, the spec.

The table and the plots are the engine's (:mod:`verifier.render.html`,
:mod:`verifier.render.plots`), the same a notebook shows for a ``Report``. Everything user-supplied
is escaped; images are inline PNGs (``data:`` URIs), so the page needs no other request and no
script.
"""

from __future__ import annotations

from html import escape

from api.store import Job
from verifier.engine.report import Report
from verifier.render.html import figures, results_table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.passed,.xfailed{color:#176b2c}.failed,.xpassed,.error,.interrupted{color:#b00020}
.undecided,.cancelled,.queued,.running{color:#8a6d00}
figure{display:inline-block;margin:0 1em 1em 0}pre{background:#f6f6f6;padding:1em}
"""


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
        from verifier.render.plots import report_plots  # matplotlib: only when a page is drawn

        report = Report.model_validate(job.report)
        parts.append(results_table(report))
        plots = report_plots(report)
        parts.append("<h2>Plots</h2>" if plots else "<p>No plottable measures.</p>")
        parts.append(figures(plots))
    parts.append(f"<h2>Spec</h2><pre>{escape(job.spec_text)}</pre></body></html>")
    return "".join(parts)
