"""Jobs on a Ray cluster: a worker process drives a job's claim points as Ray tasks.

With ``executor: ray`` (:class:`api.settings.Settings`) each API worker process (:mod:`api.workers`)
is a Ray driver, not a compute process. It claims a job from the SQLite store as on the local path,
plans the spec into tasks with the CLI's planner (:func:`verifier.engine.executors.plan`: one task
per sweep point, claims joined by a dependency in one task), submits them as ``num_cpus=1`` Ray
tasks, and puts their results back into the job's :class:`~verifier.engine.runner.SpecRunner`, which
adds the growth results. The report is therefore the one the local path writes, and the store stays
the one source of truth for jobs, progress and reports: nothing on the cluster touches it.

- Progress: a task sends ``(tag, key, fraction, message)`` to the driver's
  :class:`ProgressInbox` actor (fire and forget); the driver drains it every ``poll_s`` and
  writes the job's progress, which the SSE stream reads, as the local path does.
- Cancel and timeout: the worker's probe (``is_cancelled``) is read every ``poll_s``; when it
  fires, every outstanding task of the job is cancelled (``ray.cancel``: interrupted, then
  killed with its worker after ``stop_grace_s``) before the job is closed.
- Faults: Ray re-runs a task whose worker process died up to ``retries`` times (its
  ``max_retries``; exceptions raised by the task are not retried, they are reported as error
  results). A task lost past its retries raises :class:`TaskLost`, and the job ends
  ``interrupted`` with the reason. When the driver itself dies (the server was killed), Ray
  ends its tasks with it, and the store re-queues the job at the next start.
- Files: tasks carry the runner's ``cache_dir`` (training checkpoints). On a cluster it must
  be a folder every node can read and write at the same path (a shared filesystem); with none
  configured, nothing is cached and no task assumes the API's disk.
- Limits and preflight stay in the API: a spec over a limit is refused before it is queued,
  and tasks carry the API's limits, whatever the nodes' environment says.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from verifier.engine.executors import Task, error_results, plan, run_task
from verifier.engine.report import ClaimResult, Report
from verifier.errors import Cancelled

if TYPE_CHECKING:
    from verifier.engine.runner import SpecRunner

log = logging.getLogger(__name__)

SEND_EVERY_S = 0.25  # a task sends at most one progress message per this interval
WRITE_EVERY_S = 0.25  # the driver writes at most one progress row per interval (plus points)
JobProgress = Callable[[float, str, str], None]  # (overall fraction, key, message)


_PROBE = (
    "import logging, sys, ray\n"
    "ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)\n"
    "ray.shutdown()\n"
)


def probe_cluster(address: str, timeout_s: float = 120.0) -> str | None:
    """Why no Ray cluster answers at ``address``, or None when one does.

    It joins from a child process (``ray.init``, then leaves), so the server that asks never
    becomes a Ray driver itself and never imports ray.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, address],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout_s:g} s"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


@dataclass(frozen=True)
class RayConfig:
    """How a worker process reaches the cluster and treats its tasks."""

    address: str  # ray.init address: "auto" joins the cluster started on this node
    retries: int  # re-runs of a task whose Ray worker died, before the job is interrupted
    poll_s: float  # how often results, progress and the cancel flag are read
    # both below kill_grace_s (10 s by default), after which the pool kills the whole driver
    stop_grace_s: float = 2.0  # a cancelled task still running after this is killed
    cancel_wait_s: float = 5.0  # how long killed tasks are waited for before the job closes


class TaskLost(Exception):
    """A Ray task died with its worker (or node) more often than its retries allow."""


class ProgressInbox:
    """A Ray actor (``num_cpus=0``) that holds progress messages until the driver drains them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, float, str]] = []

    def put(self, item: tuple[str, str, float, str]) -> None:
        """Keep one ``(tag, key, fraction, message)``."""
        self.items.append(item)

    def drain(self) -> list[tuple[str, str, float, str]]:
        """Everything kept so far, oldest first; the inbox is empty after."""
        items, self.items = self.items, []
        return items


def verify_task(task: Task, inbox: Any, tag: str) -> list[dict[str, Any]]:
    """Ray worker side: run one task on one thread; progress goes to ``inbox`` under ``tag``."""
    last = [0.0]

    def progress(key: str, fraction: float, message: str) -> None:
        t = time.monotonic()
        if t - last[0] >= SEND_EVERY_S:
            last[0] = t
            inbox.put.remote((tag, key, fraction, message))  # no wait: the reply is not needed

    return run_task(task, threads=1, progress=progress)


def task_keys(runner: SpecRunner, task: Task) -> list[str]:
    """The point keys one task produces."""
    return [*task.keys, *(p.key for c in task.claims for p in runner.points[c])]


class RayJobRunner:
    """One worker process's connection to the cluster; runs one job at a time on it."""

    def __init__(self, config: RayConfig) -> None:
        self.config = config
        self._remote: Any = None
        self._inbox: Any = None

    def connect(self) -> None:
        """Join the cluster (``ray.init``) and start this driver's progress inbox.

        Raises:
            ConnectionError: no cluster at the address (the caller retries).
        """
        import ray

        if not ray.is_initialized():
            ray.init(
                address=self.config.address,
                namespace="verifier",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        self._remote = ray.remote(
            num_cpus=1, max_retries=self.config.retries, retry_exceptions=False
        )(verify_task)
        self._inbox = ray.remote(num_cpus=0)(ProgressInbox).remote()

    def run(
        self, runner: SpecRunner, is_cancelled: Callable[[], bool], on_progress: JobProgress
    ) -> Report:
        """Run every claim point of a preflighted runner as Ray tasks; return the report.

        Raises:
            Cancelled: ``is_cancelled()`` fired; the job's tasks were cancelled first.
            TaskLost: a task died more than ``retries`` times; the other tasks were cancelled.
        """
        import ray

        if self._remote is None:
            self.connect()
        tasks = plan([runner])
        keys = [task_keys(runner, t) for t in tasks]
        total = max(sum(len(k) for k in keys), 1)
        tag = uuid.uuid4().hex
        refs = {self._remote.remote(t, self._inbox, tag): i for i, t in enumerate(tasks)}
        pending = list(refs)
        results: dict[str, ClaimResult] = {}
        running: dict[str, float] = {}  # fraction of each point a task reported on
        last_write = 0.0
        try:
            while pending:
                ready, pending = ray.wait(
                    pending, num_returns=len(pending), timeout=self.config.poll_s
                )
                for ref in ready:
                    i = refs[ref]
                    for r in self._outcome(runner, tasks[i], keys[i], ref):
                        results[r.key] = r
                        running.pop(r.key, None)
                    last_write = time.monotonic()
                    done = f"{len(results)}/{total} points done"
                    on_progress(self._overall(results, running, total), keys[i][-1], done)
                latest = self._drain(tag, running, results)
                if latest is not None and time.monotonic() - last_write >= WRITE_EVERY_S:
                    last_write = time.monotonic()
                    on_progress(self._overall(results, running, total), *latest)
                if is_cancelled():
                    raise Cancelled("cancelled by the caller")
        finally:
            if pending:
                self._cancel(pending)  # on any way out: cancel, timeout, a lost task, an error
        for claim in runner.spec.claims:
            got = [results[p.key] for p in runner.points[claim.id] if p.key in results]
            runner.adopt(claim.id, got)
        return runner.run()

    def _outcome(
        self, runner: SpecRunner, task: Task, keys: list[str], ref: Any
    ) -> list[ClaimResult]:
        """One finished task's results; an exception it raised becomes error results."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        try:
            return [ClaimResult.model_validate(r) for r in ray.get(ref)]
        except RayTaskError as exc:  # the task's own exception: reported, not retried
            cause = exc.cause if exc.cause is not None else exc
            return error_results(runner, task, f"executor ray: {type(cause).__name__}: {cause}")
        except RayError as exc:  # the worker or node died, past the retries
            retries = self.config.retries
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise TaskLost(
                f"the Ray task of {', '.join(keys)} was lost after {retries} "
                f"retr{'y' if retries == 1 else 'ies'} (ray_task_retries = {retries}): "
                f"{type(exc).__name__}: {first}"
            ) from None

    def _drain(
        self, tag: str, running: dict[str, float], results: dict[str, ClaimResult]
    ) -> tuple[str, str] | None:
        """Read the inbox into ``running``; the latest ``(key, message)`` of this job, if any."""
        import ray
        from ray.exceptions import RayError

        try:
            items = ray.get(self._inbox.drain.remote(), timeout=30)
        except (RayError, TimeoutError) as exc:  # progress is lost, the job is not
            log.warning("progress inbox unreachable (%s); starting a new one", exc)
            self._inbox = ray.remote(num_cpus=0)(ProgressInbox).remote()
            return None
        latest = None
        for item_tag, key, fraction, message in items:
            if item_tag == tag and key not in results:
                running[key] = fraction
                latest = (key, message)
        return latest

    @staticmethod
    def _overall(results: dict[str, ClaimResult], running: dict[str, float], total: int) -> float:
        return min((len(results) + sum(running.values())) / total, 1.0)

    def _cancel(self, pending: list[Any]) -> None:
        """Cancel outstanding tasks and wait (bounded) until Ray has ended them.

        A running task is interrupted first (``KeyboardInterrupt`` in the task, so its worker
        stays warm for the next job); one still running ``stop_grace_s`` later is killed with
        its worker process.
        """
        import ray
        from ray.exceptions import RayError

        try:
            for ref in pending:
                ray.cancel(ref, force=False)
            _, left = ray.wait(pending, num_returns=len(pending), timeout=self.config.stop_grace_s)
            for ref in left:
                ray.cancel(ref, force=True)
            if left:
                ray.wait(left, num_returns=len(left), timeout=self.config.cancel_wait_s)
        except RayError as exc:  # the cluster did not answer; Ray ends a dead driver's tasks
            log.warning("could not cancel %d Ray tasks: %s", len(pending), exc)
            return
        log.warning(
            "cancelled %d outstanding Ray tasks (%d killed with their worker)",
            len(pending),
            len(left),
        )
