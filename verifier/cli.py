"""The ``verifier`` command line (typer).

``verifier check PATH...`` runs specs and exits 0 (all passed), 1 (a claim did not pass), 2
(a bad spec, a limit, or bad usage) or 5 (nothing was verified: no spec, or ``-k`` selected no
claim; as pytest exits 5 when it collects no test). ``verifier run SPEC`` prints one report;
``verifier schema`` prints the spec language's JSON Schema; ``verifier new`` writes a starter
spec.

Trained models are cached in ``.verifier/artifacts`` under the current working directory
(``--cache-dir DIR`` elsewhere, ``--no-cache`` off), keyed by the hash of everything that
determines the run (:func:`verifier.train.run_key`), so a repeated claim reuses its checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from verifier.discover import SPEC_SUFFIX, spec_files
from verifier.errors import LimitExceeded, SpecError, VerifierError
from verifier.executors import ExecutorName, run_specs
from verifier.limits import Limits
from verifier.report import Report, fmt, key_measures
from verifier.run import SpecRunner
from verifier.selection import compile_selector
from verifier.spec import Spec, load_spec_file, spec_schema

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
# emoji=False: rich would print "spec.yaml:100: ..." as "spec.yaml💯 ..."
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
err_console = Console(stderr=True, emoji=False)

EXIT_OK, EXIT_FAILED, EXIT_BAD_SPEC, EXIT_NOTHING = 0, 1, 2, 5
# Artifacts folder (training checkpoints), relative to the working directory. The pytest plugin
# uses the same folder under pytest's rootdir (verifier/pytest_plugin.py).
DEFAULT_CACHE_DIR = Path(".verifier", "artifacts")

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="artifacts folder for trained checkpoints (default: ./.verifier/artifacts)",
    ),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="neither reuse nor write checkpoints: retrain")
]


def cache_dir_of(cache_dir: Path | None, no_cache: bool) -> str | None:
    """The artifacts folder a run uses: None with ``--no-cache``, else the option or default."""
    if no_cache:
        return None
    return str(cache_dir if cache_dir is not None else Path.cwd() / DEFAULT_CACHE_DIR)


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
            failures=str(
                sum(r.status in ("failed", "xpassed", "undecided") for r in report.results)
            ),
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
    specs: list[Spec],
    limits: Limits,
    select: str | None,
    show_progress: bool,
    cache_dir: str | None = None,
) -> list[Report]:
    predicate = compile_selector(select) if select else None
    runners = [SpecRunner(s, limits, cache_dir=cache_dir) for s in specs]
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

            def on_progress(key: str, fraction: float, message: str, task: TaskID = task) -> None:
                progress.update(task, completed=fraction, description=f"{key}: {message}")

            runner.progress = on_progress
            name = runner.spec.name
            sel = None if predicate is None else (lambda k, n=name: predicate(f"{n}::{k}"))
            report = runner.run(select=sel)
            progress.remove_task(task)
            if report.results:
                reports.append(report)
    return reports


def _run_on_executor(
    specs: list[Spec],
    limits: Limits,
    select: str | None,
    show_progress: bool,
    executor: ExecutorName,
    jobs: int,
    ray_address: str | None,
    cache_dir: str | None,
) -> list[Report]:
    """Run every spec's points as tasks (verifier/executors.py), one progress tick per point."""
    predicate = compile_selector(select) if select else None
    sel = None if predicate is None else (lambda name, key: predicate(f"{name}::{key}"))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show_progress,
    ) as progress:
        bar = progress.add_task(f"{executor} x{jobs}", total=None)

        def on_point(spec: str, key: str, done: int, total: int, status: str) -> None:
            progress.update(bar, completed=done, total=total, description=f"{spec}::{key} {status}")

        return run_specs(
            specs,
            limits,
            executor=executor,
            jobs=jobs,
            select=sel,
            ray_address=ray_address,
            on_point=on_point,
            cache_dir=cache_dir,
        )


@app.command()
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
        str, typer.Option("--executor", help="local (process pool) or ray (extra [ray])")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="ray.init address; none starts one")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="write growth plots (PNG) into this folder")
    ] = None,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
) -> None:
    """Verify every claim of every spec; exit 1 if any claim does not pass, 2 on a bad spec.

    Trained checkpoints are cached (serial runs and ``--jobs``/ray workers alike) unless
    ``--no-cache``; ray workers on other machines need the folder on a shared filesystem.
    """
    limits = Limits()
    cache = cache_dir_of(cache_dir, no_cache)
    if executor not in ("local", "ray"):
        err_console.print(f"[red]error:[/] --executor: expected local or ray, got {executor!r}")
        raise typer.Exit(EXIT_BAD_SPEC)
    try:
        specs = _load_all(paths, limits, include_full)
        show = progress and sys.stderr.isatty()
        if executor == "local" and jobs == 1:
            reports = _run_reports(specs, limits, select, show, cache)
        else:
            name = cast(ExecutorName, executor)  # checked above
            reports = _run_on_executor(specs, limits, select, show, name, jobs, ray_address, cache)
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
    if not results:  # a run that verifies nothing is not a pass (exit 5, as pytest's)
        why = "-k selected no claim" if specs else f"no *{SPEC_SUFFIX} file was found"
        err_console.print(f"[red]error:[/] nothing was verified: {why}", highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
    if junit is not None:
        junit.write_text(junit_xml(reports))
    if plots is not None:
        from verifier.plots import write_plots  # matplotlib only when plots are asked for

        for path in write_plots(reports, plots):
            console.print(f"wrote {path}", highlight=False)
    if not results:
        raise typer.Exit(EXIT_NOTHING)
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(help="one spec file")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
) -> None:
    """Verify one spec and print its report."""
    limits = Limits()
    cache = cache_dir_of(cache_dir, no_cache)
    try:
        spec = load_spec_file(spec_path, max_bytes=limits.max_spec_bytes)
        show = not as_json and sys.stderr.isatty()
        [report] = _run_reports([spec], limits, None, show, cache)
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
def theorems(
    as_json: Annotated[bool, typer.Option("--json", help="print the registry as JSON")] = False,
) -> None:
    """List the theorem registry: id, statement, source, formulas in plain text and LaTeX."""
    from verifier.bounds import theorems as registry

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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    data_dir: Annotated[
        Path | None, typer.Option(help="SQLite data folder (default VERIFIER_API_DATA_DIR)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="worker processes (default VERIFIER_API_WORKERS)")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="local (worker processes) or ray: claim points as Ray tasks"),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default auto: this node's)")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="training checkpoints; with ray a folder on a shared filesystem"),
    ] = None,
) -> None:
    """Serve the HTTP API (uvicorn): jobs in SQLite under the data folder, run by worker
    processes, or with ``--executor ray`` as Ray tasks on a cluster (``ray start --head``
    first, then ``--ray-address auto``)."""
    import uvicorn

    from api.main import create_app  # the service is optional: imported only here
    from api.settings import Settings

    if executor not in (None, "local", "ray"):
        err_console.print(f"[red]error:[/] --executor: expected local or ray, got {executor!r}")
        raise typer.Exit(EXIT_BAD_SPEC)
    overrides = {
        "data_dir": data_dir,
        "workers": workers,
        "executor": executor,
        "ray_address": ray_address,
        "cache_dir": cache_dir,
    }
    settings = Settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if settings.executor == "ray" and importlib.util.find_spec("ray") is None:
        err_console.print(
            "[red]error:[/] --executor ray: expected the ray package "
            "(pip install 'verifier[ray]'), got none"
        )
        raise typer.Exit(EXIT_BAD_SPEC)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
