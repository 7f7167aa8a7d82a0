"""Validator processes: submitted specs are parsed and preflighted here, never on the event loop.

Each :class:`Validator` is one spawned process that imports the engine (torch, cvxpy: the
check kinds' preflights live beside their runs) once, at server start and behind it (the
server answers ``/healthz`` at once), and then answers one body at a time over a pipe with what
:func:`api.intake.prepare` made of it. So the API process imports neither torch nor cvxpy,
several bodies are validated at once (one per process), the event loop and its GIL stay free
while a hostile spec is being refused, and a validation that
overruns ``validate_timeout_s`` costs its process (killed and restarted), not the server.
With ``validators: 0`` bodies are validated in the API's thread pool instead (in-process tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from api.intake import FILE, Prepared, prepare
from verifier.errors import LimitExceeded, SpecError
from verifier.limits import Limits

log = logging.getLogger(__name__)

START_TIMEOUT_S = 300.0  # a cold process imports torch and cvxpy; a loaded 2-core box is slow

# ("ok", name, hash, text, estimate) | ("spec", message, file, line, key) | ("limit", exc)
# | ("bug", text)
Answer = tuple[Any, ...]


def _serve(conn: Connection, limits: dict[str, Any]) -> None:
    """The validator process: import every check kind, then answer bodies until told to stop."""
    from verifier.checks.base import BUILTIN_KINDS, REGISTRY

    engine_limits = Limits(**limits)
    for tag in BUILTIN_KINDS:  # each kind's preflight module, now rather than on a first POST
        REGISTRY[tag]
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if request is None:
            return
        body, media_type = request
        conn.send(_answer(body, media_type, engine_limits))


def _answer(body: bytes, media_type: str, limits: Limits) -> Answer:
    try:
        spec = prepare(body, media_type, limits)
    except SpecError as exc:
        return ("spec", exc.message, exc.file, exc.line, exc.key)
    except LimitExceeded as exc:
        return ("limit", exc)
    except Exception as exc:  # a bug: the API answers 500; the traceback is in this log
        log.exception("internal error validating a spec")
        return ("bug", f"{type(exc).__name__}: {exc}")
    return ("ok", spec.name, spec.spec_hash, spec.text, spec.estimate)


def _result(answer: Answer) -> Prepared:
    kind = answer[0]
    if kind == "ok":
        return Prepared(name=answer[1], spec_hash=answer[2], text=answer[3], estimate=answer[4])
    if kind == "spec":
        raise SpecError(answer[1], file=answer[2], line=answer[3], key=answer[4])
    if kind == "limit":
        raise answer[1]  # the LimitExceeded itself: it pickles by its fields
    raise RuntimeError(f"the validator failed: {answer[1]}")


class Validator:
    """One validator process and its pipe; :meth:`validate` is blocking (call it in a thread)."""

    def __init__(self, limits: Limits, timeout_s: float) -> None:
        self.limits = limits
        self.timeout_s = timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        """Spawn the process and wait until it has imported the engine.

        Raises:
            RuntimeError: the process died or did not get ready within ``START_TIMEOUT_S``.
        """
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_serve,
            args=(child, self.limits.model_dump()),
            name="verifier-validator",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        try:
            ready = parent.poll(START_TIMEOUT_S) and parent.recv() == ("ready",)
        except EOFError:
            ready = False
        if not ready:
            self.stop()
            raise RuntimeError(f"the validator process did not start (exit code {proc.exitcode})")

    def validate(self, body: bytes, media_type: str) -> Prepared:
        """Validate and preflight one body in the process.

        Raises:
            SpecError: a bad spec, or one whose validation overran ``validate_timeout_s``.
            LimitExceeded: work over a limit.
            ApiError: 503 when the process died; it is restarted for the next body.
        """
        if self._conn is None:
            self.start()
        assert self._conn is not None
        try:
            self._conn.send((body, media_type))
            if not self._conn.poll(self.timeout_s):
                self._restart()
                raise SpecError(
                    f"validating this spec took over {self.timeout_s:g} s (the limit "
                    "validate_timeout_s); expected a spec that is quicker to read",
                    file=FILE,
                )
            answer = self._conn.recv()
        except (EOFError, OSError):  # BrokenPipeError is an OSError
            code = self._proc.exitcode if self._proc is not None else None
            log.error("the validator process died (exit code %s); restarting it", code)
            self._restart()
            raise ApiError(
                503,
                "validator_unavailable",
                f"the validator process died (exit code {code}) and was restarted; retry",
                headers={"Retry-After": "5"},
            ) from None
        return _result(answer)

    def _restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        """Ask the process to exit, then make sure it has."""
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            with contextlib.suppress(OSError):  # BrokenPipeError included: it may be gone
                conn.send(None)
            conn.close()
        if proc is not None:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)


class Validators:
    """``size`` validator processes shared by the requests (or the thread pool when 0).

    They start behind the server: :meth:`start` returns at once, so ``/healthz`` answers
    while they import the engine; each joins the pool as soon as it is ready, and a body that
    arrives before any is ready waits up to ``ready_wait_s``, then gets 503 with Retry-After.
    """

    def __init__(
        self, size: int, limits: Limits, timeout_s: float, ready_wait_s: float = 60.0
    ) -> None:
        self.size = size
        self.limits = limits
        self.ready_wait_s = ready_wait_s
        self._all = [Validator(limits, timeout_s) for _ in range(size)]
        # a body waits here for a ready process, even one that arrives before start()
        self._idle: asyncio.Queue[Validator] | None = asyncio.Queue() if size else None
        self._starting: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        """Start every process in the background; each serves once it has imported the engine."""
        idle = self._idle
        if idle is None:
            return  # size 0: validate in the thread pool

        async def one(v: Validator) -> None:
            try:
                await run_in_threadpool(v.start)
            except RuntimeError as exc:  # it starts again on its first body (Validator.validate)
                log.error("%s", exc)
            idle.put_nowait(v)

        self._starting = [asyncio.ensure_future(one(v)) for v in self._all]

    @property
    def ready(self) -> int:
        """Validator processes that have started."""
        return sum(f.done() for f in self._starting) if self._all else 0

    async def prepare(self, body: bytes, media_type: str) -> Prepared:
        """Validate and preflight a body off the event loop (see :func:`api.intake.prepare`).

        Raises:
            ApiError: 503 when no validator got ready within ``ready_wait_s``.
        """
        if self._idle is None:
            return await run_in_threadpool(prepare, body, media_type, self.limits)
        idle = self._idle
        try:
            validator = await asyncio.wait_for(idle.get(), self.ready_wait_s)
        except TimeoutError:
            what = "busy" if self.ready else "still starting (importing the engine)"
            raise ApiError(
                503,
                "validator_unavailable",
                f"every validator process is {what} after {self.ready_wait_s:g} s; retry",
                headers={"Retry-After": "5"},
            ) from None
        loop = asyncio.get_running_loop()

        def run() -> Prepared:
            try:
                return validator.validate(body, media_type)
            finally:  # back to the queue only once its pipe is free again
                loop.call_soon_threadsafe(idle.put_nowait, validator)

        return await run_in_threadpool(run)

    async def stop(self) -> None:
        """Stop every process (one still starting is stopped once its start returns)."""
        await asyncio.gather(*self._starting, return_exceptions=True)
        await asyncio.gather(*(run_in_threadpool(v.stop) for v in self._all))
