"""One verification run as the CLI and the Python door both make it: specs + options -> reports.

Options mirror ``verifier check``: ``-k`` selection, ``--full``, ``--jobs``, ``--executor``,
``--ray-address``, the cache folder (training checkpoints in ``training/`` and stored verdicts
in ``verdicts/``; None turns both off), verdict reuse, and progress bars (rich, on stderr).
``jobs == 1`` with the local executor runs in this process, claim by claim, with a bar per
spec; otherwise the points run as tasks (:mod:`verifier.engine.executors`) with one bar overall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from verifier.engine.executors import ExecutorName, run_specs
from verifier.engine.report import Report
from verifier.engine.runner import SpecRunner
from verifier.engine.selection import compile_selector
from verifier.engine.verdicts import VerdictStore
from verifier.errors import VerifierError
from verifier.limits import Limits
from verifier.spec import Spec, load_spec_file
from verifier.spec.discover import spec_files

# The cache folder, relative to the working directory (the pytest plugin, verifier/pytest_plugin.py,
# uses it under its rootdir): training checkpoints in training/, stored verdicts in verdicts/.
DEFAULT_CACHE_DIR = Path(".verifier", "artifacts")
EXECUTORS: tuple[ExecutorName, ...] = ("local", "ray")


@dataclass(frozen=True)
class RunOptions:
    """How to run: the options of ``verifier check``."""

    select: str | None = None  # -k expression over spec::claim[point]
    include_full: bool = False  # also specs under folders named full/
    jobs: int = 1  # local worker processes
    executor: ExecutorName = "local"  # local or ray
    ray_address: str | None = None  # ray.init address; None starts a local instance
    cache_dir: str | None = None  # checkpoints and verdicts; None: neither read nor written
    reuse: bool = True  # reuse stored verdicts (False: verify again, store the fresh ones)
    progress: bool = False  # progress bars on stderr

    def verdict_store(self) -> VerdictStore | None:
        """The verdict store these options ask for (None without a cache folder)."""
        return None if self.cache_dir is None else VerdictStore(self.cache_dir, read=self.reuse)


def cache_dir_of(cache_dir: str | Path | None, no_cache: bool = False) -> str | None:
    """The cache folder a run uses: None with ``no_cache``, else the one given or the default."""
    if no_cache:
        return None
    return str(Path(cache_dir) if cache_dir is not None else Path.cwd() / DEFAULT_CACHE_DIR)


def load_specs(paths: Iterable[str | Path], limits: Limits, include_full: bool) -> list[Spec]:
    """Every spec under ``paths`` (files as given, folders searched), validated.

    Raises:
        SpecError: a missing path or an invalid spec, with file and line.
    """
    return [
        load_spec_file(f, max_bytes=limits.max_spec_bytes)
        for f in spec_files(paths, include_full=include_full)
    ]


def run_checks(
    specs: list[Spec],
    limits: Limits,
    options: RunOptions,
    console: Console | None = None,
    on_report: Callable[[Report], None] | None = None,
    on_point: Callable[[str, str, str], None] | None = None,
) -> list[Report]:
    """Preflight every spec, then verify the selected claims; one report per spec with results.

    ``on_report`` is called with each spec's report as it finishes (in process), or with each
    one at the end (on an executor, whose specs finish together); ``on_point(spec, key,
    status)`` with each point as it finishes on an executor.

    Raises:
        SpecError, LimitExceeded: from preflight, before any claim runs.
        VerifierError: bad options (an unknown executor, jobs < 1, a bad ``-k``).
    """
    if options.executor not in EXECUTORS:
        raise VerifierError(f"--executor: expected local or ray, got {options.executor!r}")
    console = console or Console(stderr=True)
    if options.executor == "local" and options.jobs == 1:
        return _in_process(specs, limits, options, console, on_report)
    reports = _on_executor(specs, limits, options, console, on_point)
    for report in reports:
        if on_report is not None:
            on_report(report)
    return reports


def _bars(console: Console, count: str, show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn(count),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not show,
    )


def _in_process(
    specs: list[Spec],
    limits: Limits,
    options: RunOptions,
    console: Console,
    on_report: Callable[[Report], None] | None,
) -> list[Report]:
    predicate = compile_selector(options.select) if options.select else None
    store = options.verdict_store()
    runners = [SpecRunner(s, limits, cache_dir=options.cache_dir, verdicts=store) for s in specs]
    for runner in runners:
        runner.preflight()  # every limit, for every spec, before any work
    reports = []
    with _bars(console, "{task.percentage:>3.0f}%", options.progress) as progress:
        for runner in runners:
            task = progress.add_task(escape(runner.spec.name), total=1.0)

            def on_progress(key: str, fraction: float, message: str, task: TaskID = task) -> None:
                progress.update(  # drawn now: a claim shorter than a refresh still shows its label
                    task,
                    completed=fraction,
                    description=escape(f"{key}: {message}"),
                    refresh=True,
                )

            runner.progress = on_progress
            name = runner.spec.name
            sel = None if predicate is None else (lambda k, n=name: predicate(f"{n}::{k}"))
            report = runner.run(select=sel)
            progress.remove_task(task)
            if report.results:
                reports.append(report)
                if on_report is not None:
                    on_report(report)
    return reports


def _on_executor(
    specs: list[Spec],
    limits: Limits,
    options: RunOptions,
    console: Console,
    on_done: Callable[[str, str, str], None] | None = None,
) -> list[Report]:
    """Every spec's points as tasks (verifier/engine/executors.py), one progress tick per point."""
    predicate = compile_selector(options.select) if options.select else None
    sel = None if predicate is None else (lambda name, key: predicate(f"{name}::{key}"))
    with _bars(console, "{task.completed:.0f}/{task.total:.0f}", options.progress) as progress:
        bar = progress.add_task(f"{options.executor} x{options.jobs}", total=None)

        def on_point(spec: str, key: str, done: int, total: int, status: str) -> None:
            what = escape(f"{spec}::{key} {status}")  # user text: never rich markup
            progress.update(bar, completed=done, total=total, description=what)
            if on_done is not None:
                on_done(spec, key, status)

        return run_specs(
            specs,
            limits,
            executor=options.executor,
            jobs=options.jobs,
            select=sel,
            ray_address=options.ray_address,
            on_point=on_point,
            cache_dir=options.cache_dir,
            verdicts=options.verdict_store(),
        )
