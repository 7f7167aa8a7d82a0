"""Executors: run sweep points and whole specs as tasks, locally or on a Ray cluster.

A task is ``(spec text, file, limits, claims or keys)``: the worker re-loads the spec from its text
(same validation, same expansion, so the same keys), runs its share and returns plain
:class:`~verifier.engine.report.ClaimResult` dictionaries. The caller puts them back into each
spec's :class:`~verifier.engine.runner.SpecRunner`
(:meth:`~verifier.engine.runner.SpecRunner.adopt`), which adds the growth results, so every executor
produces the same report model as an in-process run.

Tasks: every point of a claim that neither needs nor feeds another claim is its own task;
claims joined by dependencies (a trained model and the claims that probe it) run together in
one task, since artifacts never leave a process. With ``per="spec"`` each spec is one task.

- ``local`` (default): ``jobs == 1`` runs the tasks one by one in this process (claims that
  depend on each other share the caller's runner); ``jobs > 1`` uses a spawned process pool.
  Each worker gets ``max(1, cpus // jobs)`` torch/BLAS threads (``torch.set_num_threads`` and
  ``OMP_NUM_THREADS`` before numpy loads), so points do not oversubscribe the cores.
- ``ray`` (extra ``[ray]``): ``ray.init(address=...)`` - ``None`` starts a local instance,
  ``"auto"`` joins a running cluster - then one ``num_cpus=1`` Ray task per task, one thread each.
  Workers need this package importable (installed on every node).

Progress is reported per finished point: ``on_point(spec name, key, done, total, status)``.

With a verdict store (:mod:`verifier.engine.verdicts`, a folder every worker can reach), the caller
takes stored results itself and plans only the rest: a point task whose verdict is stored is
not sent, nor is a dependency group whose every point is stored; workers store what they
verify.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Literal

from verifier.engine.report import ClaimResult, Report
from verifier.errors import VerifierError
from verifier.limits import Limits

if TYPE_CHECKING:
    from verifier.engine.runner import ProgressFn, SpecRunner
    from verifier.engine.verdicts import VerdictStore
    from verifier.spec import Spec

log = logging.getLogger(__name__)

ExecutorName = Literal["local", "ray"]
Granularity = Literal["point", "spec"]
PointProgress = Callable[[str, str, int, int, str], None]  # (spec, key, done, total, status)
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Task:
    """One unit of work: some claims (whole) or some points of one spec."""

    spec_index: int
    text: str  # the spec's source text (YAML or JSON)
    file: str
    limits: dict[str, Any]
    claims: tuple[str, ...] = ()  # run these claims whole (with their dependencies)
    keys: tuple[str, ...] = ()  # run these points alone
    cache_dir: str | None = None  # training checkpoints (a folder every worker can reach)
    verdicts: tuple[str, bool] | None = None  # verdict store: (folder, read stored verdicts)


def set_threads(threads: int) -> None:
    """Limit this process to ``threads`` torch and BLAS threads."""
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def run_task(
    task: Task, threads: int | None = None, progress: ProgressFn | None = None
) -> list[dict[str, Any]]:
    """Worker side: run one task, return its point results as JSON-able dictionaries.

    ``progress``: called as ``(point key, fraction, message)`` while a check reports progress.
    """
    if threads is not None:
        set_threads(threads)
    from verifier.engine.runner import SpecRunner
    from verifier.engine.verdicts import VerdictStore
    from verifier.spec import load_spec_text

    spec = load_spec_text(task.text, task.file)
    store = None if task.verdicts is None else VerdictStore(*task.verdicts)
    runner = SpecRunner(
        spec,
        Limits(**task.limits),
        progress=progress,
        cache_dir=task.cache_dir,
        verdicts=store,
    )
    return _run_on(runner, task)


def _run_on(runner: SpecRunner, task: Task) -> list[dict[str, Any]]:
    """Run ``task``'s claims and points on ``runner``; their results as JSON-able dicts."""
    for claim_id in task.claims:
        runner.claim_results(claim_id)
    results: list[ClaimResult] = []
    for claim_id in task.claims:  # after all ran: a dependent may re-run a reused dependency
        points = {p.key for p in runner.points[claim_id]}
        results.extend(r for r in runner.claim_results(claim_id) if r.key in points)
    results.extend(runner.point_result(key) for key in task.keys)
    return [r.model_dump(mode="json") for r in results]


def _components(spec: Spec) -> list[list[str]]:
    """Claim ids grouped by dependency (union-find over ``depends_on``), in spec order."""
    parent = {c.id: c.id for c in spec.claims}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for claim in spec.claims:
        for dep in claim.depends_on():
            parent[root(claim.id)] = root(dep)
    groups: dict[str, list[str]] = {}
    for claim in spec.claims:
        groups.setdefault(root(claim.id), []).append(claim.id)
    return list(groups.values())


def plan(
    runners: Sequence[SpecRunner],
    select: Callable[[str, str], bool] | None = None,
    per: Granularity = "point",
) -> list[Task]:
    """Split the selected work of every spec into tasks.

    Args:
        runners: one per spec, already preflighted.
        select: ``(spec name, key) -> bool``; a selected growth key selects all its points.
        per: ``point`` (points and dependency groups) or ``spec`` (one task per spec).
    """
    tasks: list[Task] = []
    for i, runner in enumerate(runners):
        spec = runner.spec
        text = spec.source.text or spec.model_dump_json()
        store = runner.verdicts
        base = Task(
            i,
            text,
            spec.source.file,
            runner.limits.model_dump(),
            cache_dir=runner.cache_dir,
            verdicts=None if store is None else (store.folder, store.read),
        )

        def chosen(claim_id: str, runner: SpecRunner = runner) -> list[str]:
            """Selected point keys of one claim (all of them if its growth is selected)."""
            points = [p.key for p in runner.points[claim_id]]
            if select is None:
                return points
            name = runner.spec.name
            if any(select(name, k) for k in runner.claim_keys(claim_id) if k not in points):
                return points
            return [k for k in points if select(name, k)]

        selected = [c.id for c in spec.claims if chosen(c.id)]
        if per == "spec":
            if selected:
                tasks.append(replace(base, claims=tuple(selected)))
            continue
        for group in _components(spec):
            group = [c for c in group if c in selected]
            if len(group) > 1 or (group and spec.claim(group[0]).depends_on()):
                tasks.append(replace(base, claims=tuple(group)))
            elif group:
                tasks.extend(replace(base, keys=(k,)) for k in chosen(group[0]))
    return tasks


def error_results(runner: SpecRunner, task: Task, message: str) -> list[ClaimResult]:
    """Error results for every point of a task that did not come back."""
    keys = set(task.keys) | {p.key for c in task.claims for p in runner.points[c]}
    out = []
    for claim in runner.spec.claims:
        for p in runner.points[claim.id]:
            if p.key in keys:
                out.append(
                    ClaimResult(
                        key=p.key,
                        claim_id=claim.id,
                        check=claim.check_kind(),
                        point=p.point,
                        status="error",
                        message=message,
                        xfail=claim.xfail,
                        file=runner.spec.source.file,
                        line=p.line,
                    )
                )
    return out


def _serial(
    tasks: Sequence[Task], runners: Sequence[SpecRunner]
) -> Iterable[tuple[Task, list[Any] | str]]:
    """In this process, on the callers' runners (dependencies memoised, no re-loading)."""
    for task in tasks:
        yield task, _run_on(runners[task.spec_index], task)


def _local_pool(tasks: Sequence[Task], jobs: int) -> Iterable[tuple[Task, list[Any] | str]]:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: str(threads) for v in _THREAD_VARS})  # inherited by spawned workers
    try:
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=get_context("spawn"),
            initializer=set_threads,
            initargs=(threads,),
        ) as pool:
            futures: dict[Future[list[dict[str, Any]]], Task] = {
                pool.submit(run_task, t): t for t in tasks
            }
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except Exception as exc:  # a crashed worker: report, do not hang
                    yield futures[future], f"executor local: {type(exc).__name__}: {exc}"
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _ray(tasks: Sequence[Task], address: str | None) -> Iterable[tuple[Task, list[Any] | str]]:
    try:
        import ray
    except ImportError:
        raise VerifierError(
            "executor ray: expected the ray package (pip install 'verifier[ray]'), got none"
        ) from None
    started = not ray.is_initialized()
    if started:
        # None: a new local instance, never a cluster that happens to run on this machine
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise VerifierError(
                f"executor ray: no Ray cluster answers at {address!r} ({exc}); start one with "
                "'ray start --head', or leave --ray-address out to start a local instance"
            ) from None
    try:
        remote = ray.remote(num_cpus=1)(run_task)
        refs = {remote.remote(t, 1): t for t in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield refs[ref], ray.get(ref)
                except Exception as exc:  # a failed task: report, do not hang
                    yield refs[ref], f"executor ray: {type(exc).__name__}: {exc}"
    finally:
        if started:
            ray.shutdown()


def _unstored(
    tasks: Sequence[Task], runners: Sequence[SpecRunner], by_spec: list[dict[str, ClaimResult]]
) -> list[Task]:
    """The tasks left once stored verdicts are taken (into ``by_spec``) here, in the caller.

    A point task is dropped when its verdict is stored; a dependency group when all its
    points' are (a partly stored group runs whole: its worker reuses what it can).
    """
    left: list[Task] = []
    for task in tasks:
        runner = runners[task.spec_index]
        keys = list(task.keys) + [p.key for c in task.claims for p in runner.points[c]]
        stored = {k: runner.stored_result(k) for k in keys}
        if task.claims and None in stored.values():
            left.append(task)
            continue
        for key, result in stored.items():
            if result is not None:
                by_spec[task.spec_index][key] = result
        missing = tuple(k for k in task.keys if stored[k] is None)
        if missing:
            left.append(replace(task, keys=missing))
    return left


def run_specs(
    specs: Sequence[Spec],
    limits: Limits | None = None,
    executor: ExecutorName = "local",
    jobs: int = 1,
    select: Callable[[str, str], bool] | None = None,
    per: Granularity = "point",
    ray_address: str | None = None,
    on_point: PointProgress | None = None,
    cache_dir: str | None = None,
    verdicts: VerdictStore | None = None,
) -> list[Report]:
    """Preflight every spec, run the selected work on ``executor``, return one report per spec.

    ``cache_dir``: the training checkpoint folder, shared by every worker (checkpoints are
    written atomically, and their key includes the thread count, so a 1-thread worker and a
    2-thread serial run never share weights that differ); None disables the cache.
    ``verdicts``: the verdict store (None: verify everything, store nothing).

    Raises:
        LimitExceeded, SpecError: from preflight, before any task starts.
        VerifierError: ``ray`` requested but not installed; ``jobs < 1``.
    """
    from verifier.engine.runner import SpecRunner

    if jobs < 1:
        raise VerifierError(f"--jobs: expected an integer >= 1, got {jobs}")
    limits = limits or Limits()
    runners = [SpecRunner(s, limits, cache_dir=cache_dir, verdicts=verdicts) for s in specs]
    for runner in runners:
        runner.preflight()
    start = time.perf_counter()
    by_spec: list[dict[str, ClaimResult]] = [{} for _ in runners]
    tasks = _unstored(plan(runners, select, per), runners, by_spec)
    total = sum(len(r) for r in by_spec) + sum(
        len(t.keys) + sum(len(runners[t.spec_index].points[c]) for c in t.claims) for t in tasks
    )
    stream: Iterable[tuple[Task, list[Any] | str]]
    if not tasks:  # every verdict stored (or nothing selected): start no worker
        stream = ()
    elif executor == "ray":
        stream = _ray(tasks, ray_address)
    elif jobs == 1:
        stream = _serial(tasks, runners)
    else:
        stream = _local_pool(tasks, jobs)
    done = 0
    for spec_index, stored in enumerate(by_spec):
        for r in stored.values():
            done += 1
            if on_point is not None:
                on_point(runners[spec_index].spec.name, r.key, done, total, r.status)
    for task, outcome in stream:
        runner = runners[task.spec_index]
        if isinstance(outcome, str):
            results = error_results(runner, task, outcome)
        else:
            results = [ClaimResult.model_validate(r) for r in outcome]
        for r in results:
            by_spec[task.spec_index][r.key] = r
            done += 1
            if on_point is not None:
                on_point(runner.spec.name, r.key, done, total, r.status)
    reports = []
    for runner, returned in zip(runners, by_spec, strict=True):
        for claim in runner.spec.claims:
            got = [returned[p.key] for p in runner.points[claim.id] if p.key in returned]
            if got:
                runner.adopt(claim.id, got)
        name = runner.spec.name
        sel = None if select is None else (lambda k, n=name: select(n, k))
        report = runner.run(select=sel)
        report.duration_s = time.perf_counter() - start
        reports.append(report)
    return [r for r in reports if r.results]
