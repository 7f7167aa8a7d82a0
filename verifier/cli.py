"""The ``verifier`` command line (typer).

``verifier check PATH...`` runs specs and exits 0 (all passed), 1 (a claim did not pass) or 2
(a bad spec, a limit, or bad usage). ``verifier run SPEC`` prints one report; ``verifier schema``
prints the spec language's JSON Schema; ``verifier new`` writes a starter spec.
"""

from __future__ import annotations

import json
import logging
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from verifier.discover import spec_files
from verifier.errors import LimitExceeded, SpecError, VerifierError
from verifier.limits import Limits
from verifier.report import Report, fmt, key_measures
from verifier.run import SpecRunner
from verifier.selection import compile_selector
from verifier.spec import Spec, load_spec_file, spec_schema

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_BAD_SPEC = 0, 1, 2

_STATUS_STYLE = {
    "passed": "green",
    "xfailed": "green",
    "failed": "red",
    "xpassed": "red",
    "error": "red bold",
    "undecided": "yellow",
}


def _load_all(paths: list[Path], limits: Limits, include_full: bool) -> list[Spec]:
    specs = []
    for file in spec_files(paths, include_full=include_full):
        specs.append(load_spec_file(file, max_bytes=limits.max_spec_bytes))
    return specs


def render_table(reports: list[Report]) -> Table:
    """The verdict table: spec, claim, check, method, status, key measures, time."""
    table = Table(show_lines=False, header_style="bold")
    for column in ("spec", "claim", "check", "method", "status", "measures", "time"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("measures", "claim"))
    for report in reports:
        for r in report.results:
            style = _STATUS_STYLE.get(r.status, "")
            table.add_row(
                report.spec,
                r.key,
                r.check,
                r.method or "-",
                f"[{style}]{r.status}[/]",
                key_measures(r) if r.measured else r.message[:80],
                f"{r.duration_s:.2f}s",
            )
    return table


def junit_xml(reports: list[Report]) -> str:
    """JUnit XML: one testsuite per spec, one testcase per claim result."""
    suites = ET.Element("testsuites")
    for report in reports:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=report.spec,
            tests=str(len(report.results)),
            failures=str(sum(r.status in ("failed", "xpassed", "undecided") for r in report.results)),
            errors=str(sum(r.status == "error" for r in report.results)),
            time=f"{report.duration_s:.3f}",
        )
        for r in report.results:
            case = ET.SubElement(
                suite, "testcase", classname=report.spec, name=r.key, time=f"{r.duration_s:.3f}"
            )
            if r.status == "error":
                ET.SubElement(case, "error", message=r.message).text = r.failure_text()
            elif not r.ok:
                ET.SubElement(case, "failure", message=r.status).text = r.failure_text()
            elif r.status == "xfailed":
                ET.SubElement(case, "skipped", message=f"xfail: {r.xfail}")
    return ET.tostring(suites, encoding="unicode")


def _run_reports(
    specs: list[Spec], limits: Limits, select: str | None, show_progress: bool
) -> list[Report]:
    predicate = compile_selector(select) if select else None
    runners = [SpecRunner(s, limits) for s in specs]
    for runner in runners:
        runner.preflight()  # every limit, for every spec, before any work
    reports = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show_progress,
    ) as progress:
        for runner in runners:
            task = progress.add_task(runner.spec.name, total=1.0)

            def on_progress(key: str, fraction: float, message: str, task: int = task) -> None:
                progress.update(task, completed=fraction, description=f"{key}: {message}")

            runner.progress = on_progress
            name = runner.spec.name
            sel = None if predicate is None else (lambda k, n=name: predicate(f"{n}::{k}"))
            report = runner.run(select=sel)
            progress.remove_task(task)
            if report.results:
                reports.append(report)
    return reports


@app.command()
def check(
    paths: Annotated[list[Path], typer.Argument(help="spec files or folders")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write reports as JSON")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML")] = None,
    select: Annotated[str | None, typer.Option("-k", help="select claims: spec::claim words")] = None,
    include_full: Annotated[bool, typer.Option("--full", help="include specs/**/full/")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Verify every claim of every spec; exit 1 if any claim does not pass, 2 on a bad spec."""
    limits = Limits()
    try:
        specs = _load_all(paths, limits, include_full)
        reports = _run_reports(specs, limits, select, progress and sys.stderr.isatty())
    except (SpecError, LimitExceeded, VerifierError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_SPEC) from None
    console.print(render_table(reports))
    results = [r for report in reports for r in report.results]
    counts = {s: sum(r.status == s for r in results) for s in _STATUS_STYLE}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    for r in results:
        if not r.ok:
            console.print(r.failure_text(), highlight=False, soft_wrap=True)
    console.print(f"{len(reports)} specs, {len(results)} claims: {summary or 'nothing selected'}")
    if json_out is not None:
        json_out.write_text(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
    if junit is not None:
        junit.write_text(junit_xml(reports))
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(help="one spec file")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Verify one spec and print its report."""
    limits = Limits()
    try:
        spec = load_spec_file(spec_path, max_bytes=limits.max_spec_bytes)
        [report] = _run_reports([spec], limits, None, not as_json and sys.stderr.isatty())
    except (SpecError, LimitExceeded, VerifierError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_SPEC) from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        console.print(render_table([report]))
        for r in report.results:
            for e in r.expectations:
                console.print(
                    f"  {r.key}: {e.measure} = {fmt(e.measured)}, expected {e.expected}"
                    + (f" (bound {e.bound:.6g})" if e.bound is not None else "")
                    + ("" if e.ok else "  [red]x[/]"),
                    highlight=False,
                )
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILED)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec language."""
    typer.echo(json.dumps(spec_schema(), indent=2))


_TEMPLATE = """\
# A starter spec: edit the instance and the claims, then `verifier run {path}`.
name: {name}
description: Random bijections are recalled exactly by the geometric construction.
instance: {{kind: bijection, entities: 256, relations: 4, attributes: shared, seed: 0}}
claims:
  - id: exact-recall
    check: construction
    construction: {{name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}}
    expect: {{accuracy: 1.0, margin: ">= 0.5", embedding_dim: "<= 20*R*log(N)"}}
"""


@app.command()
def new(
    path: Annotated[Path, typer.Argument(help="where to write, e.g. specs/mine.spec.yaml")],
) -> None:
    """Write a starter spec (refuses to overwrite)."""
    if path.exists():
        err_console.print(f"[red]error:[/] {path} exists; expected a new path")
        raise typer.Exit(EXIT_BAD_SPEC)
    name = path.name.removesuffix(".spec.yaml").removesuffix(".yaml") or "my-spec"
    path.write_text(_TEMPLATE.format(name=name, path=path))
    console.print(f"wrote {path}")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
