"""The ``verifier`` command line (typer): check, run, schema, new, theorems, serve.

Help texts are plain text (typer renders them with rich, so a literal ``[`` is escaped).
``check`` and ``run`` share :mod:`verifier.engine.session` with the Python door
(``verifier.check``).
Exit codes: 0 every claim passed, 1 a claim did not, 2 a bad spec, a limit or bad usage,
5 nothing was verified (no spec, or ``-k`` selected no claim; as pytest exits 5).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from verifier import __version__
from verifier.cli_entry import LOG_FORMAT
from verifier.cli_serve import serve
from verifier.console import LEGEND, render_reports, render_table, spec_line
from verifier.engine.baseline import compare, counts, load_reports, markdown
from verifier.engine.executors import ExecutorName
from verifier.engine.provenance import HOST_VAR
from verifier.engine.report import Report
from verifier.engine.runner import OUT_OF_MEMORY
from verifier.engine.session import (
    DEFAULT_CACHE_DIR,
    RunOptions,
    cache_dir_of,
    load_specs,
    run_checks,
)
from verifier.errors import LimitExceeded, SpecError, VerifierError
from verifier.limits import Limits, LimitSettingError, limits_from_environment
from verifier.spec import load_spec_file, spec_schema
from verifier.spec.discover import SPEC_SUFFIX

APP_HELP = (
    "Verify claims about factual recall in transformers, written as YAML specs. "
    "Each claim is checked by the strongest method that fits it (symbolic, convex certificate, "
    "exact enumeration through the forward pass, certified or exhaustive, or training) and gets "
    "one verdict."
    "\n\n"
    "verifier check PATH... verifies every spec under the paths and exits 0 when every claim "
    "passed, 1 when one did not, 2 for a bad spec, a limit or bad usage, 5 when nothing was "
    "verified. verifier run SPEC "
    "prints one report; verifier schema prints the JSON Schema of the spec language; "
    "verifier new PATH writes a starter spec."
    "\n\n"
    "Trained models and verdicts are cached under ./.verifier/artifacts (--cache-dir DIR "
    "elsewhere, --no-cache off): an unchanged claim reuses its stored verdict (--no-reuse "
    "verifies it again), and a changed training claim reuses a checkpoint that trained the "
    "same model."
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=APP_HELP)
# emoji=False: rich would print "spec.yaml:100: ..." as "spec.yaml💯 ..."; piped output is 160
# columns wide (the table) unless COLUMNS says otherwise
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else 160
console = Console(width=_WIDTH, emoji=False)
err_console = Console(stderr=True, emoji=False)

EXIT_OK, EXIT_FAILED, EXIT_BAD_SPEC, EXIT_NOTHING = 0, 1, 2, 5
__all__ = ["DEFAULT_CACHE_DIR", "app", "cache_dir_of", "main", "render_table"]

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="cache folder: trained checkpoints and stored verdicts "
        "(default: ./.verifier/artifacts)",
    ),
]
NoCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-cache", help="no cache folder: retrain every model, verify every claim, store nothing"
    ),
]
ProvenanceHostOption = Annotated[
    bool,
    typer.Option(
        "--provenance-host",
        help=f"record this machine's host name in the reports' provenance (as {HOST_VAR}=1)",
    ),
]
NoReuseOption = Annotated[
    bool,
    typer.Option(
        "--no-reuse",
        help="verify every claim again instead of reusing stored verdicts (the fresh verdicts "
        "are stored)",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"verifier {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Options before the command."""


def _spec_done(report: Report) -> None:
    """A line per finished spec when stdout is not a terminal (a CI log, ``| cat``), so that a
    run of several minutes shows its progress there; a terminal has the progress bars."""
    if not sys.stdout.isatty():
        console.print(spec_line(report), highlight=False)
        console.file.flush()


def _point_done(spec: str, key: str, status: str) -> None:
    """A line per finished point on an executor (--jobs, ray) when stdout is not a terminal."""
    if not sys.stdout.isatty():
        console.print(Text(f"{spec}::{key} {status}"), highlight=False)
        console.file.flush()


def _print_reports(reports: list[Report]) -> None:
    """The verdicts (a table, or one block per claim below 120 columns) and the legend."""
    console.print(render_reports(reports, console.width))
    console.print(LEGEND, highlight=False, markup=False)


def junit_xml(reports: list[Report]) -> str:
    """JUnit XML: one testsuite per spec, its provenance as ``<properties>``, one testcase per
    claim result."""
    suites = ET.Element("testsuites")
    for report in reports:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=report.spec,
            tests=str(len(report.results)),
            failures=str(
                sum(r.status in ("failed", "xpassed", "undecided") for r in report.results)
            ),
            errors=str(sum(r.status == "error" for r in report.results)),
            time=f"{report.duration_s:.3f}",
        )
        if report.provenance is not None:
            properties = ET.SubElement(suite, "properties")
            for name, value in report.provenance.rows():
                ET.SubElement(properties, "property", name=f"verifier.{name}", value=value)
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


def _fail(exc: VerifierError) -> typer.Exit:
    """Print a bad-spec, limit or usage error; the exit to raise."""
    err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_SPEC)


def _dry_run(paths: list[Path], limits: Limits, include_full: bool) -> typer.Exit:
    """Print every claim's estimated work (verifier/engine/cost.py); the exit to raise: 0, 2
    for a bad spec or one over a limit (max_job_flops, max_job_memory), 5 for no spec."""
    from verifier.engine.runner import SpecRunner

    try:
        specs = load_specs(paths, limits, include_full)
        estimates = []
        for spec in specs:
            runner = SpecRunner(spec, limits)
            runner.preflight()
            estimates.append((spec.name, runner.estimate()))
    except (SpecError, LimitExceeded, VerifierError) as exc:
        return _fail(exc)
    for name, costs in estimates:
        for claim_id, cost in costs.items():
            console.print(
                f"{name}::{claim_id}: {cost.flops:.3g} flops at most (expected "
                f"{cost.likely:.3g}), peak {cost.memory / 2**20:,.1f} MiB",
                highlight=False,
                markup=False,
            )
    total = sum(c.flops for _, costs in estimates for c in costs.values())
    likely = sum(c.likely for _, costs in estimates for c in costs.values())
    console.print(
        f"{len(estimates)} specs: {total:.3g} flops at most, {likely:.3g} expected, in all "
        "(limits, on the worst case: max_job_flops = "
        f"{limits.max_job_flops:.3g}, max_job_memory = {limits.max_job_memory / 2**30:g} GiB "
        "per claim); nothing was run",
        highlight=False,
    )
    return typer.Exit(EXIT_OK if estimates else EXIT_NOTHING)


def _out_of_memory() -> typer.Exit:
    """Print an allocation failure outside any claim (a claim's own is its error verdict)."""
    err_console.print(f"[red]error:[/] {OUT_OF_MEMORY}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_SPEC)


@app.command(
    help="Verify every claim of every spec under PATHS. Exit 0 when every claim passed, 1 when "
    "one did not, 2 for a bad spec, a limit or bad usage."
    "\n\n"
    "An unchanged claim (same content, instance, dependencies, verifier source and numeric "
    "libraries) reuses its stored verdict, marked reused with the date it was verified. "
    "--baseline OLD.json compares with an earlier --json report (newly failing, newly passing, "
    "figures moved beyond their tolerance, claims added and removed); --summary FILE writes "
    "that and the verdict table as Markdown. Neither changes the exit code."
    "\n\n"
    "--jobs and ray workers share the cache folder; ray workers on other machines need it on "
    "a shared filesystem."
)
def check(
    paths: Annotated[list[Path], typer.Argument(help="spec files or folders")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write reports as JSON")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML")] = None,
    select: Annotated[
        str | None, typer.Option("-k", help="select claims: spec::claim words")
    ] = None,
    include_full: Annotated[bool, typer.Option("--full", help="include specs/**/full/")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="local worker processes")] = 1,
    executor: Annotated[
        str, typer.Option("--executor", help="local (process pool) or ray (extra \\[ray])")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="ray.init address; none starts one")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="write growth plots (PNG) into this folder")
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="an earlier --json report to compare with"),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option("--summary", help="write the comparison and the verdicts as Markdown"),
    ] = None,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
    no_reuse: NoReuseOption = False,
    provenance_host: ProvenanceHostOption = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="validate and preflight only: print each claim's estimated flops and peak "
            "memory, run nothing",
        ),
    ] = False,
) -> None:
    """Verify every claim of every spec."""
    if provenance_host:
        os.environ[HOST_VAR] = "1"  # worker processes inherit it
    try:
        limits = limits_from_environment()
    except LimitSettingError as exc:
        raise _fail(exc) from None
    if dry_run:
        raise _dry_run(paths, limits, include_full)
    options = RunOptions(
        select=select,
        include_full=include_full,
        jobs=jobs,
        executor=cast(ExecutorName, executor),
        ray_address=ray_address,
        cache_dir=cache_dir_of(cache_dir, no_cache),
        reuse=not no_reuse,
        progress=progress and sys.stderr.isatty(),
    )
    try:
        old = load_reports(baseline) if baseline is not None else None
        specs = load_specs(paths, limits, include_full)
        reports = run_checks(specs, limits, options, err_console, _spec_done, _point_done)
    except (SpecError, LimitExceeded, VerifierError) as exc:
        raise _fail(exc) from None
    except MemoryError:
        raise _out_of_memory() from None
    _print_reports(reports)
    results = [r for report in reports for r in report.results]
    for r in results:
        if not r.ok:
            console.print(r.failure_text(), highlight=False, soft_wrap=True, markup=False)
    console.print(counts(reports), highlight=False, markup=False)
    if not results:  # a run that verifies nothing is not a pass (exit 5, as pytest's)
        why = "-k selected no claim" if specs else f"no *{SPEC_SUFFIX} file was found"
        err_console.print(f"[red]error:[/] nothing was verified: {why}", highlight=False)
    comparison = compare(old, reports) if old is not None else None
    if comparison is not None:
        console.print(
            f"since {baseline}: {len(comparison.newly_failing)} newly failing, "
            f"{len(comparison.newly_passing)} newly passing, {len(comparison.moved)} moved, "
            f"{len(comparison.added)} added, {len(comparison.removed)} removed",
            highlight=False,
            markup=False,
        )
    if json_out is not None:
        json_out.write_text(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
    if junit is not None:
        junit.write_text(junit_xml(reports))
    if summary is not None:
        summary.write_text(markdown(reports, comparison, str(baseline or "")))
    if plots is not None:
        from verifier.render.plots import write_plots  # matplotlib only when plots are asked for

        for path in write_plots(reports, plots):
            console.print(f"wrote {path}", highlight=False, markup=False)
    if not results:
        raise typer.Exit(EXIT_NOTHING)
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


@app.command(help="Verify one spec and print its report (--json: as JSON).")
def run(
    spec_path: Annotated[Path, typer.Argument(help="one spec file")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
    no_reuse: NoReuseOption = False,
    provenance_host: ProvenanceHostOption = False,
) -> None:
    """Verify one spec and print its report."""
    if provenance_host:
        os.environ[HOST_VAR] = "1"
    try:
        limits = limits_from_environment()
    except LimitSettingError as exc:
        raise _fail(exc) from None
    options = RunOptions(
        cache_dir=cache_dir_of(cache_dir, no_cache),
        reuse=not no_reuse,
        progress=not as_json and sys.stderr.isatty(),
    )
    try:
        spec = load_spec_file(spec_path, max_bytes=limits.max_spec_bytes)
        [report] = run_checks([spec], limits, options, err_console)
    except (SpecError, LimitExceeded, VerifierError) as exc:
        raise _fail(exc) from None
    except MemoryError:
        raise _out_of_memory() from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_reports([report])
        for r in report.results:
            if not r.ok:
                console.print(r.failure_text(), highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILED)


@app.command(help="List the theorem registry: id, statement, source, formulas in text and LaTeX.")
def theorems(
    as_json: Annotated[bool, typer.Option("--json", help="print the registry as JSON")] = False,
) -> None:
    """List the theorem registry."""
    from verifier.theory import theorems as registry

    entries = [t.to_dict() for t in registry()]
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    for t in entries:
        source = t["source"] + (f" ({t['citation']})" if t["citation"] else "")
        console.print(f"[bold]{t['id']}[/]  " + source.replace("[", r"\["), highlight=False)
        console.print(f"  {t['statement']}", highlight=False, soft_wrap=True, markup=False)
        for a in t["assumptions"]:
            console.print(f"  assumes: {a}", highlight=False, soft_wrap=True, markup=False)
        for q in t["quantities"]:
            console.print(
                f"  {q['name']} = {q['text']}", highlight=False, soft_wrap=True, markup=False
            )
            console.print(f"    latex: {q['latex']}", highlight=False, soft_wrap=True, markup=False)


@app.command(
    help="List the installed plugins: name, group, distribution, version and status (loaded, "
    "or failed with its error). Exit 0 when every plugin loaded, 1 when one failed."
)
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="print the list as JSON")] = False,
) -> None:
    """List the plugins of every entry point group (verifier/plugins.py)."""
    from verifier import plugins as registry

    found = registry.records()
    if as_json:
        typer.echo(json.dumps([vars(p) for p in found], indent=2))
    elif not found:
        console.print(f"no plugins installed (groups: {', '.join(registry.GROUPS)})")
    else:
        table = Table("name", "group", "distribution", "version", "status", box=None)
        for p in found:
            status = p.status if p.error is None else f"{p.status}: {p.error}"
            table.add_row(
                *(escape(x) for x in (p.name, p.group, p.distribution, p.version, status))
            )
        console.print(table)
    raise typer.Exit(EXIT_FAILED if any(p.status == "failed" for p in found) else EXIT_OK)


def _schema_text() -> str:
    return json.dumps(spec_schema(), indent=2) + "\n"


@app.command(
    help="Print the JSON Schema of the spec language, or write it to --output FILE (the file "
    "that the first line of a spec from verifier new points editors at)."
)
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the schema to this file")
    ] = None,
) -> None:
    """Print or write the JSON Schema of the spec language."""
    if output is None:
        typer.echo(_schema_text(), nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(_schema_text())
    console.print(f"wrote {output}", highlight=False, markup=False)


SCHEMA_FILE = "spec.schema.json"  # verifier new's default, beside the new spec
_TEMPLATE = """\
# yaml-language-server: $schema={schema}
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


@app.command(
    help="Write a starter spec at PATH (never overwrites). Its first line points editors "
    "(the YAML language server) at the JSON Schema, --schema FILE (default: spec.schema.json "
    "beside the spec), which is written too when it does not exist; verifier schema --output "
    "FILE refreshes it."
)
def new(
    path: Annotated[Path, typer.Argument(help="where to write, e.g. specs/mine.spec.yaml")],
    schema_file: Annotated[
        Path | None, typer.Option("--schema", help="the JSON Schema file the spec points at")
    ] = None,
) -> None:
    """Write a starter spec."""
    if path.exists():
        err_console.print(f"[red]error:[/] {escape(str(path))} exists; expected a new path")
        raise typer.Exit(EXIT_BAD_SPEC)
    target = schema_file if schema_file is not None else path.parent / SCHEMA_FILE
    pointer = Path(os.path.relpath(target.resolve(), path.parent.resolve())).as_posix()
    name = path.name.removesuffix(".spec.yaml").removesuffix(".yaml") or "my-spec"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_TEMPLATE.format(name=name, path=path, schema=pointer))
    console.print(f"wrote {path}", highlight=False, markup=False)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_schema_text())
        console.print(f"wrote {target}", highlight=False, markup=False)


app.command(name="serve")(serve)  # verifier/cli_serve.py: imports none of the engine


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    app()


if __name__ == "__main__":  # python -m verifier.cli, as the console script
    main()
