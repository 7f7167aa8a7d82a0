"""The HTML pages: one job's report, and the job list (``/``).

A report page shows the verdict, the job's times, links to download the JSON report, the JUnit
file and the spec, one row per claim result, the plots that fit (training curves first), the
provenance, a legend of statuses and methods, and the spec. The table, plots, provenance and
legend are the engine's (:mod:`verifier.render.html`, :mod:`verifier.render.plots`), the same a
notebook shows for a ``Report``. Everything user-supplied is escaped; images are inline PNGs
(``data:`` URIs), so a page needs no other request and no script.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import quote

from api.store import Job
from verifier.engine.report import Report

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.passed,.xfailed{color:#176b2c}.failed,.xpassed,.error,.interrupted{color:#b00020}
.undecided,.cancelled,.queued,.running{color:#8a6d00}
figure{display:inline-block;margin:0 1em 1em 0}pre{background:#f6f6f6;padding:1em}
nav a{margin-right:1.2em}#times{color:#555}table.provenance{width:auto}
table.provenance th{font-weight:normal;color:#555}dl{display:grid;grid-template-columns:8em 1fr;
margin:0.3em 0 1em}dt{font-weight:bold}dd{margin:0 0 0.2em}
tr:target{background:#fff6cc}
"""


def _head(title: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
    )


def _when(stamp: str | None) -> str:
    """An ISO time as ``2026-12-06 13:02:34 UTC`` (as stored where it does not parse)."""
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return stamp


def _seconds(start: str | None, end: str | None) -> str:
    try:
        spent = datetime.fromisoformat(end or "") - datetime.fromisoformat(start or "")
    except ValueError:
        return ""
    return f" ({spent.total_seconds():.1f} s)"


def job_url(job_id: str, what: str = "report") -> str:
    """A job's page (``report``) or download (``report.json``, ``junit.xml``, ``spec.yaml``)."""
    return f"/v1/verifications/{quote(job_id)}/{what}"


def render_page(job: Job) -> str:
    """The page for one job (a queued or running job shows its progress, not plots)."""
    parts = [
        _head(f"Verification {job.spec_name}: {job.status}"),
        "<nav id='top'><a href='/'>all verifications</a></nav>",
        f"<h1>{escape(job.spec_name)}: <span id='status' class='{escape(job.status)}'>"
        f"{escape(job.status)}</span></h1>",
        "<p>"
        f"id <code>{escape(job.id)}</code> · spec hash <code>{escape(job.spec_hash[:16])}</code>"
        f" · verifier {escape(job.verifier_version)}"
        + (" · reused stored report" if job.reused else "")
        + "</p>",
        "<p id='times'>"
        f"created <time id='created'>{escape(_when(job.created_at))}</time>"
        + (f" · started {escape(_when(job.started_at))}" if job.started_at else "")
        + (
            f" · finished <time id='finished'>{escape(_when(job.finished_at))}</time>"
            + escape(_seconds(job.started_at or job.created_at, job.finished_at))
            if job.finished_at
            else ""
        )
        + "</p>",
    ]
    links = [f"<a id='download-spec' href='{job_url(job.id, 'spec.yaml')}'>spec (YAML)</a>"]
    if job.report is not None:
        links[:0] = [
            f"<a id='download-json' href='{job_url(job.id, 'report.json')}'>report (JSON)</a>",
            f"<a id='download-junit' href='{job_url(job.id, 'junit.xml')}'>JUnit XML</a>",
        ]
    parts.append(f"<nav id='downloads'>download: {''.join(links)}</nav>")
    if job.message:
        parts.append(f"<p id='message'>{escape(job.message)}</p>")
    if job.report is None:
        parts.append(
            f"<p id='progress'>progress {job.progress:.0%} {escape(job.progress_key)} "
            f"{escape(job.progress_message)}</p>"
        )
    else:
        # the engine's renderers (the claim kinds' meanings; matplotlib): on the first page drawn,
        # so the server answers /healthz before importing them
        from verifier.render.html import figures, legend_html, provenance_html, results_table
        from verifier.render.plots import report_plots

        report = Report.model_validate(job.report)
        parts.append(results_table(report))
        plots = report_plots(report)
        parts.append("<h2>Plots</h2>" if plots else "<p>No plottable measures.</p>")
        parts.append(figures(plots))
        parts.append(provenance_html(report.provenance))
        parts.append(legend_html())
    parts.append(f"<h2>Spec</h2><pre id='spec'>{escape(job.spec_text)}</pre></body></html>")
    return "".join(parts)


JOB_STATUSES: dict[str, str] = {  # the job list's legend
    "queued": "waiting for a worker",
    "running": "a worker is verifying it (its page shows the progress)",
    "passed": "every claim passed (or failed as its xfail: said)",
    "failed": "some claim failed, was undecided, or passed against its xfail:",
    "error": "a claim could not be run, the spec verified nothing, or the job timed out",
    "cancelled": "stopped on request",
    "interrupted": "its run was lost (a server stop, a lost Ray task) with no attempt left",
}


def render_list(jobs: list[Job], total: int, next_url: str | None, status: str | None) -> str:
    """The job list: newest first, one row per job (status, spec, times, a link to its page),
    and a link to the next page."""
    heading = f"Verifications{f' ({status})' if status else ''}"
    rows = [
        f"<tr class='job'><td><a href='{job_url(j.id)}'>{escape(j.spec_name)}</a></td>"
        f"<td class='{escape(j.status)}'>{escape(j.status)}</td>"
        f"<td>{escape(_when(j.created_at))}</td><td>{escape(_when(j.finished_at))}</td>"
        f"<td>{'reused' if j.reused else ''}</td><td><code>{escape(j.id[:12])}</code></td></tr>"
        for j in jobs
    ]
    table = (
        "<table id='jobs'><thead><tr><th>spec</th><th>status</th><th>created</th>"
        "<th>finished</th><th></th><th>id</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else "<p id='empty'>No verifications yet: POST a spec to /v1/verifications.</p>"
    )
    more = (
        f"<p><a id='next' href='{escape(next_url, quote=True)}'>older</a></p>" if next_url else ""
    )
    return (
        _head(heading)
        + f"<h1>{escape(heading)}</h1>"
        + f"<p>{total} in all, newest first · <a href='/docs'>API docs</a></p>"
        + table
        + more
        + "<section id='legend'><h4>Job statuses</h4><dl>"
        + "".join(f"<dt class='{k}'>{k}</dt><dd>{escape(v)}</dd>" for k, v in JOB_STATUSES.items())
        + "</dl><p>A report page's legend says what each claim status and method means.</p>"
        + "</section></body></html>"
    )
