"""Worker processes: they take jobs from the SQLite queue and run the engine on them.

Work never runs in the server's event loop. A :class:`WorkerPool` keeps ``workers`` spawned
processes alive; each polls the queue (:meth:`api.store.Store.claim`), runs
:class:`verifier.engine.runner.SpecRunner`, and writes progress and the verdict back. Cancellation
and the per-job wall-clock timeout reach a running claim through the runner's ``is_cancelled``
probe, which :meth:`verifier.checks.base.CheckContext.report` turns into ``Cancelled``; a worker
that does not stop within ``kill_grace_s`` is killed and replaced. A worker dies with the server
(``PR_SET_PDEATHSIG`` on Linux, and a parent check in the probe), so a killed server leaves no
orphan writing to the store. With a :class:`~api.ray_runner.RayConfig` the workers are Ray drivers:
a job's claim points run as Ray tasks (:mod:`api.ray_runner`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from typing import TYPE_CHECKING, Any

from api.ray_runner import RayConfig, RayJobRunner, TaskLost
from api.store import STORE_ERRORS, Job, JobStatus, Store, store_error_reason
from verifier.engine.report import Report
from verifier.errors import Cancelled, LimitExceeded, SpecError, VerifierError
from verifier.limits import Limits

if TYPE_CHECKING:
    from verifier.engine.runner import SpecRunner

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25  # at most one progress write per this interval (plus claim changes)


def execute_job(
    store: Store,
    job: Job,
    limits: Limits,
    timeout_s: float,
    poll_s: float = 0.1,
    parent_alive: Callable[[], bool] = lambda: True,
    ray: RayJobRunner | None = None,
    cache_dir: str | None = None,
) -> JobStatus | None:
    """Run one claimed job to its end and record the verdict.

    Args:
        store: the job store.
        job: a job this process has just claimed (it holds ``job.run_token``).
        limits: the engine's limits (the same the API checked before queueing).
        timeout_s: wall-clock limit; past it the job ends as ``error``.
        poll_s: how often the cancel flag is read from the store.
        parent_alive: False once the server is gone; the job is then abandoned unwritten.
        ray: run the claim points as Ray tasks through this connection (None: in this process).
        cache_dir: training checkpoints (None: no cache); with ``ray`` a folder every node reads.

    Returns:
        The status written, or None when nothing was written (the attempt was given up).
    """
    from verifier.engine.runner import SpecRunner  # heavy (torch): imported in the worker only
    from verifier.spec import load_spec_text

    token = job.run_token or ""
    started = time.monotonic()
    stop_reason: list[str] = []
    last_poll = [0.0]

    def is_cancelled() -> bool:
        if stop_reason:
            return True
        t = time.monotonic()
        if not parent_alive():
            stop_reason.append("parent")
        elif t - started > timeout_s:
            stop_reason.append("timeout")
        elif t - last_poll[0] >= poll_s:
            last_poll[0] = t
            try:
                if store.should_stop(job.id, token):
                    stop_reason.append("cancel")
            except STORE_ERRORS:  # the store is away: keep working, ask again next poll
                pass
        return bool(stop_reason)

    try:
        spec = load_spec_text(job.spec_text, file="<request>", max_bytes=limits.max_spec_bytes)
        runner = SpecRunner(spec, limits, is_cancelled=is_cancelled, cache_dir=cache_dir)
        runner.preflight()
        if ray is None:
            report = _run_here(store, job.id, token, runner)
        else:

            def progress(fraction: float, key: str, message: str) -> None:
                _progress(store, job.id, token, fraction, key, message)

            report = ray.run(runner, is_cancelled, progress)
    except TaskLost as exc:
        return _finish(store, job, token, "interrupted", str(exc))
    except Cancelled:
        if stop_reason and stop_reason[0] == "parent":
            return None
        if stop_reason and stop_reason[0] == "timeout":
            message = f"timed out after {timeout_s:g} s (the limit job_timeout_s)"
            return _finish(store, job, token, "error", message)
        return _finish(store, job, token, "cancelled", "cancelled by request")
    except (SpecError, LimitExceeded, VerifierError) as exc:
        text = exc.render() if isinstance(exc, SpecError) else str(exc)
        return _finish(store, job, token, "error", f"{type(exc).__name__}: {text}")
    except Exception as exc:  # a bug: keep the worker alive, the traceback goes to the log
        log.exception("internal error in job %s", job.id)
        return _finish(store, job, token, "error", f"internal error: {type(exc).__name__}")
    data = report.model_dump(mode="json")
    status: JobStatus = report.status
    message = f"{sum(r.ok for r in report.results)}/{len(report.results)} claims ok"
    reusable = status != "error"  # deterministic verdicts only (same spec, same report)
    if store.finish(job.id, token, status, message, data, reusable=reusable):
        return status
    return None


def _run_here(store: Store, job_id: str, token: str, runner: SpecRunner) -> Report:
    """Run every claim in this process, writing progress (throttled) as the claims report it."""
    index = {k: i for i, k in enumerate(runner.keys())}
    last_at, last_key = [0.0], [""]

    def progress(key: str, fraction: float, message: str) -> None:
        t = time.monotonic()
        if key == last_key[0] and t - last_at[0] < PROGRESS_EVERY_S:
            return
        last_at[0], last_key[0] = t, key
        overall = (index.get(key, 0) + fraction) / max(len(index), 1)
        _progress(store, job_id, token, overall, key, message)

    runner.progress = progress
    return runner.run()


def _progress(store: Store, job_id: str, token: str, fraction: float, key: str, msg: str) -> None:
    """Record progress; progress is advisory, so a store that cannot take it is skipped."""
    try:
        store.progress(job_id, token, fraction, key, msg)
    except STORE_ERRORS as exc:
        log.warning("job %s: progress not recorded (%s)", job_id, store_error_reason(exc))


def _finish(
    store: Store, job: Job, token: str, status: JobStatus, message: str
) -> JobStatus | None:
    return status if store.finish(job.id, token, status, message) else None


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent goes (no orphans after kill -9)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent check in is_cancelled remains
        pass


def worker_main(
    db_path: str,
    limits: dict[str, Any],
    timeout_s: float,
    poll_s: float,
    stop: EventType,
    threads: int = 1,
    ray: RayConfig | None = None,
    cache_dir: str | None = None,
) -> None:
    """Entry point of one worker process: claim, run, repeat until stopped or orphaned.

    ``threads``: torch/BLAS threads for this worker (the pool gives each ``cpus // workers``, so
    workers never oversubscribe the cores: OpenMP threads on a busy core spin, and a training
    step then runs ten times slower). With ``ray`` the worker joins the cluster before it claims
    anything (retrying every few seconds, so jobs wait queued while the cluster is away).
    """
    _die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s worker: %(message)s")
    parent = multiprocessing.parent_process()

    def parent_alive() -> bool:
        return parent is None or parent.is_alive()

    if not parent_alive():
        return
    from verifier.checks import REGISTRY
    from verifier.engine.executors import set_threads

    set_threads(threads)
    REGISTRY["construction"]  # load the engine and torch before the first job

    engine_limits = Limits(**limits)
    driver = None if ray is None else _join_cluster(ray, stop, parent_alive)
    store: Store | None = None
    faults = _Faults()
    while not stop.is_set() and parent_alive():
        job = None
        try:
            store = store or Store(db_path, create=False)  # never re-creates a removed store
            job = store.claim(os.getpid())
            if job is None:
                faults.cleared()
                stop.wait(poll_s)
                continue
            execute_job(
                store, job, engine_limits, timeout_s, poll_s, parent_alive, driver, cache_dir
            )
            faults.cleared()
        except STORE_ERRORS as exc:  # a full disk, a removed folder: wait for it, stay alive
            faults.seen(exc)
            if job is not None and store is not None:
                _give_back(store, job, stop, parent_alive, store_error_reason(exc))
            stop.wait(STORE_RETRY_S)


STORE_RETRY_S = 1.0  # a worker's wait before it tries a failing store again


class _Faults:
    """Logs a storage fault when it starts and when it changes, not twice a second."""

    def __init__(self) -> None:
        self.last: str | None = None

    def seen(self, exc: BaseException) -> None:
        reason = store_error_reason(exc)
        if reason != self.last:
            log.warning("%s; waiting for it", reason)
        self.last = reason

    def cleared(self) -> None:
        if self.last is not None:
            log.warning("the job store works again")
        self.last = None


def _give_back(
    store: Store, job: Job, stop: EventType, parent_alive: Callable[[], bool], reason: str
) -> None:
    """Re-queue a job whose verdict could not be written (its attempt given back: the store
    failed, not the job), retrying until the store takes it; never left ``running``."""
    while not stop.is_set() and parent_alive():
        try:
            store.requeue(job.id, job.run_token, f"the store failed during the run ({reason})")
            return
        except STORE_ERRORS:
            stop.wait(STORE_RETRY_S)


def _join_cluster(
    config: RayConfig, stop: EventType, parent_alive: Callable[[], bool]
) -> RayJobRunner | None:
    """Connect to the Ray cluster, retrying every 5 s until it answers or the worker stops."""
    driver = RayJobRunner(config)
    while not stop.is_set() and parent_alive():
        try:
            driver.connect()
            return driver
        except Exception as exc:  # no cluster yet: jobs stay queued, nothing is lost
            log.warning("cannot join the Ray cluster at %r (%s); retrying", config.address, exc)
            stop.wait(5.0)
    return None


class WorkerPool:
    """Keeps ``size`` worker processes alive and enforces cancel and timeout by force."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        size: int,
        timeout_s: float,
        kill_grace_s: float,
        max_attempts: int,
        poll_s: float,
        ray: RayConfig | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.size = size
        self.timeout_s = timeout_s
        self.kill_grace_s = kill_grace_s
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self.ray = ray  # None: jobs run in the workers; else the workers drive Ray tasks
        self.cache_dir = cache_dir
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._halt = threading.Event()
        self._procs: dict[int, BaseProcess] = {}
        self._cancel_seen: dict[str, float] = {}
        self._orphans: dict[int, int | None] = {}  # dead worker -> exit code, job not released
        self._faults = _Faults()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the supervisor thread, which spawns the workers.

        Workers are spawned from that one long-lived thread because ``PR_SET_PDEATHSIG``
        fires when the spawning *thread* ends.
        """
        self._thread = threading.Thread(target=self._supervise, name="worker-pool", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has been called (``verifier serve`` calls it once it listens)."""
        return self._thread is not None

    def alive(self) -> int:
        """Worker processes now alive."""
        with self._lock:
            return sum(p.is_alive() for p in self._procs.values())

    def pids(self) -> list[int]:
        """Worker process ids."""
        with self._lock:
            return list(self._procs)

    def _spawn(self) -> None:
        proc = self._ctx.Process(
            target=worker_main,
            args=(
                str(self.store.path),
                self.limits.model_dump(),
                self.timeout_s,
                self.poll_s,
                self._stop,
                max(1, (os.cpu_count() or 1) // max(1, self.size)) if self.ray is None else 1,
                self.ray,
                self.cache_dir,
            ),
            name="verifier-worker",
            daemon=True,
        )
        proc.start()
        if proc.pid is not None:
            with self._lock:
                self._procs[proc.pid] = proc

    def _supervise(self) -> None:
        for _ in range(self.size):
            self._spawn()
        while not self._halt.wait(0.5):
            try:
                self._check()
            except STORE_ERRORS as exc:  # a storage fault: said once, retried next round
                self._faults.seen(exc)
            except Exception:  # keep supervising; a failed round is retried
                log.exception("worker supervisor")
        self._shutdown()

    def _check(self) -> None:
        with self._lock:
            dead = {pid: p for pid, p in self._procs.items() if not p.is_alive()}
            for pid in dead:
                del self._procs[pid]
        for pid, proc in dead.items():  # respawn first: it needs no store
            self._orphans[pid] = proc.exitcode
            log.warning("worker %s died (exit code %s); starting another", pid, proc.exitcode)
            self._spawn()
        try:
            running = self.store.running()
        except STORE_ERRORS as exc:  # retried next round; the orphans' jobs wait for it
            self._faults.seen(exc)
            return
        self._faults.cleared()
        for pid, code in list(self._orphans.items()):
            for job in running:
                if job.worker_pid == pid:
                    status = self.store.release(
                        job.id,
                        job.run_token,
                        self.max_attempts,
                        f"worker process {pid} died (exit code {code})",
                    )
                    log.warning("job %s: worker %s died; now %s", job.id, pid, status)
            del self._orphans[pid]
        dead_pids = set(dead) | set(self._orphans)
        now = time.time()
        for job in running:
            if job.worker_pid in dead_pids or job.claimed_epoch is None:
                continue
            if job.cancel_requested:
                first = self._cancel_seen.setdefault(job.id, now)
                if now - first > self.kill_grace_s:
                    self._kill(
                        job,
                        "cancelled",
                        "cancelled by request (the worker was killed "
                        f"after not stopping within kill_grace_s = {self.kill_grace_s:g} s)",
                    )
            elif now - job.claimed_epoch > self.timeout_s + self.kill_grace_s:
                self._kill(
                    job,
                    "error",
                    f"timed out after {self.timeout_s:g} s (the limit "
                    "job_timeout_s); the worker was killed",
                )
        live = {j.id for j in running}
        for job_id in list(self._cancel_seen):
            if job_id not in live:
                del self._cancel_seen[job_id]

    def _kill(self, job: Job, status: JobStatus, message: str) -> None:
        if not self.store.finish(job.id, job.run_token, status, message):
            return
        with self._lock:
            proc = self._procs.get(job.worker_pid or -1)
        if proc is not None:
            proc.kill()
            log.warning("job %s: killed worker %s (%s)", job.id, job.worker_pid, status)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; jobs they were running go back to the queue."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _shutdown(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + 2.0
        with self._lock:
            procs = list(self._procs.items())
        for _, proc in procs:
            proc.join(max(deadline - time.monotonic(), 0.0))
        running = {j.worker_pid: j for j in self.store.running()}
        for pid, proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
            job = running.get(pid)
            if job is not None:  # a clean shutdown costs no attempt: re-queued, attempt given back
                self.store.requeue(job.id, job.run_token, "the server shut down")
