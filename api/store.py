"""The durable job store: jobs, their events and finished reports in one SQLite file (WAL).

Every state change is one short transaction, so a crash at any instant leaves each job in a
state the next server start can read. A running job carries the ``run_token`` of the attempt
that claimed it; a worker's writes are conditioned on it, so an attempt that was given up
(a killed server's orphan, a timed-out worker) can never overwrite a later one.

Job states: ``queued -> running -> passed | failed | error | cancelled``; after a crash a
running job goes back to ``queued`` (if it has attempts left) or to ``interrupted`` with a
reason; a clean shutdown re-queues it and gives its attempt back. Nothing accepted is ever
deleted. :meth:`Store.submit` answers a spec from a stored report, joins an identical job
already queued or running, or queues a new one, in one transaction, so 32 identical
submissions run once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from verifier.engine.report import Report

JobStatus = Literal["queued", "running", "passed", "failed", "error", "cancelled", "interrupted"]
Submitted = Literal["queued", "joined", "reused"]  # how Store.submit answered
TERMINAL: frozenset[str] = frozenset({"passed", "failed", "error", "cancelled", "interrupted"})
EventType = Literal["status", "progress", "verdict"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    spec_name TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    verifier_version TEXT NOT NULL,
    spec_text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    progress REAL NOT NULL DEFAULT 0,
    progress_key TEXT NOT NULL DEFAULT '',
    progress_message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    reused INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    report TEXT,
    worker_pid INTEGER,
    run_token TEXT,
    claimed_epoch REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, id);
CREATE TABLE IF NOT EXISTS probe (x BLOB);
CREATE TABLE IF NOT EXISTS reports (
    spec_hash TEXT NOT NULL,
    verifier_version TEXT NOT NULL,
    report TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (spec_hash, verifier_version)
);
"""


def now() -> str:
    """UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class QueueFull(Exception):
    """More jobs are queued than the configured bound."""


@dataclass(frozen=True)
class Job:
    """One row of ``jobs``."""

    seq: int
    id: str
    status: JobStatus
    spec_name: str
    spec_hash: str
    verifier_version: str
    spec_text: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: float
    progress_key: str
    progress_message: str
    attempts: int
    cancel_requested: bool
    reused: bool
    message: str
    report: dict[str, Any] | None
    worker_pid: int | None
    run_token: str | None
    claimed_epoch: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """Decode a row (booleans, the report's JSON)."""
        data = dict(row)
        data["cancel_requested"] = bool(data["cancel_requested"])
        data["reused"] = bool(data["reused"])
        data["report"] = json.loads(data["report"]) if data["report"] else None
        return cls(**data)


@dataclass(frozen=True)
class Event:
    """One row of ``events``: ``status``, ``progress`` or the final ``verdict``."""

    id: int
    job_id: str
    at: str
    type: EventType
    data: dict[str, Any]


class StoreUnavailable(Exception):
    """The store's file cannot be used: removed, replaced, unreadable, or the disk is full."""


STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, StoreUnavailable, OSError)


def store_error_reason(exc: BaseException, path: Path | None = None) -> str:
    """A storage error in words, for a 503 and ``/healthz``; with the store's ``path``, a full
    disk under it is named (SQLite may call it a "disk I/O error")."""
    if isinstance(exc, StoreUnavailable):
        return str(exc)
    if isinstance(exc, OSError):
        reason = f"the job store cannot be used: {exc.strerror or exc}"
    else:
        reason = f"the job store cannot be read or written: {exc}"
    if path is not None:
        try:
            st = os.statvfs(path.parent)
        except OSError:
            return reason
        free = st.f_bavail * st.f_frsize
        if free < FULL_BELOW_BYTES:
            reason += f" (the disk holding {path.parent} is full: {free:,} bytes free)"
    return reason


FULL_BELOW_BYTES = 1 << 20  # free space under which a failing store's disk is called full


class Store:
    """Jobs, events and reports in SQLite; safe to use from several threads and processes.

    Only the opening that creates it (``create=True``, the server's) may create the file;
    every later connection opens it read-write without creating, and checks it is the same
    file, so a removed data folder is an error (``StoreUnavailable``), never an empty new store
    that silently lost the accepted jobs.
    """

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(self.path).close()  # the one place the file may be created
        self._identity = self._stat()
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _stat(self) -> tuple[int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreUnavailable(
                f"the job store {self.path} is gone (its data folder was removed?); the jobs "
                "it held cannot be read until it is restored"
            ) from None
        return st.st_dev, st.st_ino

    def health(self) -> str | None:
        """Why the store cannot take a write now, or None: a write of one page, rolled back."""
        try:
            with self.connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("INSERT INTO probe (x) VALUES (randomblob(8192))")
                finally:
                    conn.execute("ROLLBACK")
        except STORE_ERRORS as exc:
            return store_error_reason(exc, self.path)
        return None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived autocommit connection (one per operation, any thread).

        Raises:
            StoreUnavailable: the file was removed or replaced since the store opened it.
        """
        if self._stat() != self._identity:
            raise StoreUnavailable(
                f"the job store {self.path} was replaced by another file; restore the "
                "original or restart the server"
            )
        conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=rw", timeout=30.0, isolation_level=None, uri=True
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- writes from the API ------------------------------------------------------------------

    def submit(
        self,
        spec_name: str,
        spec_hash: str,
        verifier_version: str,
        spec_text: str,
        max_queued: int,
        reuse: bool,
    ) -> tuple[Job, Submitted]:
        """Answer a validated spec: a stored report, an identical job in flight, or a new job.

        With ``reuse``, a stored report of the same spec hash and version answers at once (a
        finished job is recorded), and a job of the same hash and version already queued or
        running (and not being cancelled) is joined: the answer is that job. Otherwise, or
        without ``reuse``, a new job is queued. One transaction, so concurrent identical
        submissions cannot all miss each other.

        Raises:
            QueueFull: a new job was needed and ``max_queued`` jobs are already waiting.
        """
        with self.transaction() as conn:
            if reuse:
                row = conn.execute(
                    "SELECT report FROM reports WHERE spec_hash=? AND verifier_version=?",
                    (spec_hash, verifier_version),
                ).fetchone()
                if row is not None:
                    report = json.loads(row["report"])
                    job_id = _insert_reused(conn, spec_name, spec_text, report)
                    return self._get_in(conn, job_id), "reused"
                row = conn.execute(
                    "SELECT id FROM jobs WHERE spec_hash=? AND verifier_version=?"
                    " AND status IN ('queued', 'running') AND cancel_requested=0"
                    " ORDER BY seq LIMIT 1",
                    (spec_hash, verifier_version),
                ).fetchone()
                if row is not None:
                    return self._get_in(conn, row["id"]), "joined"
            job_id = _insert_queued(
                conn, spec_name, spec_hash, verifier_version, spec_text, max_queued
            )
            return self._get_in(conn, job_id), "queued"

    def create_job(
        self,
        spec_name: str,
        spec_hash: str,
        verifier_version: str,
        spec_text: str,
        max_queued: int,
    ) -> Job:
        """Queue a new job (never joined to another).

        Raises:
            QueueFull: ``max_queued`` jobs are already waiting.
        """
        with self.transaction() as conn:
            job_id = _insert_queued(
                conn, spec_name, spec_hash, verifier_version, spec_text, max_queued
            )
        return self._must_get(job_id)

    @staticmethod
    def _get_in(conn: sqlite3.Connection, job_id: str) -> Job:
        return Job.from_row(conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job now, or ask its worker to stop a running one."""
        with self.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["status"] == "queued":
                conn.execute(
                    "UPDATE jobs SET status='cancelled', cancel_requested=1, finished_at=?,"
                    " message='cancelled before it started' WHERE id=?",
                    (now(), job_id),
                )
                _event(conn, job_id, "verdict", {"status": "cancelled"})
            elif row["status"] == "running":
                conn.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
                _event(conn, job_id, "status", {"status": "running", "cancel_requested": True})
        return self.get(job_id)

    # --- reads --------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.from_row(row) if row is not None else None

    def _must_get(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:  # internal invariant: just written
            raise RuntimeError(f"job {job_id} vanished")
        return job

    def list_jobs(
        self, limit: int, before: int | None = None, status: str | None = None
    ) -> tuple[list[Job], int]:
        """Newest first: up to ``limit`` jobs with ``seq < before``, and the total count."""
        where, args = [], []
        if status is not None:
            where.append("status=?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        page_where = [*where, "seq<?"] if before is not None else where
        page_args = [*args, before] if before is not None else args
        page_clause = f"WHERE {' AND '.join(page_where)}" if page_where else ""
        with self.connect() as conn:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM jobs {clause}", args).fetchone()
            rows = conn.execute(
                f"SELECT * FROM jobs {page_clause} ORDER BY seq DESC LIMIT ?", [*page_args, limit]
            ).fetchall()
        return [Job.from_row(r) for r in rows], int(total)

    def events_after(self, job_id: str, after: int, limit: int = 500) -> list[Event]:
        """Events of a job with ``id > after``, oldest first."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE job_id=? AND id>? ORDER BY id LIMIT ?",
                (job_id, after, limit),
            ).fetchall()
        return [
            Event(r["id"], r["job_id"], r["at"], r["type"], json.loads(r["data"])) for r in rows
        ]

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state."""
        with self.connect() as conn:
            rows = conn.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            return {r["status"]: int(r["n"]) for r in rows}

    def running(self) -> list[Job]:
        """Jobs now running."""
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE status='running'").fetchall()
        return [Job.from_row(r) for r in rows]

    # --- writes from workers ------------------------------------------------------------------

    def claim(self, worker_pid: int) -> Job | None:
        """Take the oldest queued job for this worker (atomic across processes)."""
        token = uuid.uuid4().hex
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM jobs WHERE status='queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status='running', started_at=?, attempts=attempts+1,"
                " worker_pid=?, run_token=?, claimed_epoch=?, progress=0, progress_key='',"
                " progress_message='' WHERE id=?",
                (now(), worker_pid, token, time.time(), row["id"]),
            )
            _event(conn, row["id"], "status", {"status": "running"})
        return self._must_get(row["id"])

    def progress(self, job_id: str, token: str, fraction: float, key: str, message: str) -> None:
        """Record progress of the attempt holding ``token``."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE jobs SET progress=?, progress_key=?, progress_message=?"
                " WHERE id=? AND run_token=? AND status='running'",
                (fraction, key, message, job_id, token),
            )
            if cur.rowcount:
                _event(
                    conn,
                    job_id,
                    "progress",
                    {"progress": round(fraction, 4), "key": key, "message": message},
                )

    def should_stop(self, job_id: str, token: str) -> bool:
        """True when the job was cancelled or is no longer this attempt's."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT cancel_requested, status, run_token FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
        return (
            row is None
            or bool(row["cancel_requested"])
            or row["status"] != "running"
            or row["run_token"] != token
        )

    def finish(
        self,
        job_id: str,
        token: str | None,
        status: JobStatus,
        message: str = "",
        report: dict[str, Any] | None = None,
        reusable: bool = False,
    ) -> bool:
        """Close a running job (only the attempt holding ``token``, or any if None).

        A ``reusable`` report is also stored under its spec hash and verifier version.
        Returns whether this call closed the job.
        """
        with self.transaction() as conn:
            sql = (
                "UPDATE jobs SET status=?, finished_at=?, message=?, report=?,"
                " progress=CASE WHEN ? THEN 1 ELSE progress END"
                " WHERE id=? AND status='running'"
            )
            args: list[Any] = [
                status,
                now(),
                message,
                json.dumps(report) if report is not None else None,
                report is not None,
                job_id,
            ]
            if token is not None:
                sql += " AND run_token=?"
                args.append(token)
            if not conn.execute(sql, args).rowcount:
                return False
            if reusable and report is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?)",
                    (report["spec_hash"], report["verifier_version"], json.dumps(report), now()),
                )
            _event(conn, job_id, "verdict", {"status": status, "message": message})
        return True

    def release(self, job_id: str, token: str | None, max_attempts: int, reason: str) -> str | None:
        """A running attempt was lost (its worker died): re-queue the job or mark it interrupted.

        Returns the new status, or None if the job was not running under ``token``.
        """
        with self.transaction() as conn:
            row = _running(conn, job_id, token)
            return None if row is None else _release(conn, job_id, row, max_attempts, reason)

    def requeue(self, job_id: str, token: str | None, reason: str) -> bool:
        """A running attempt was stopped cleanly (server shutdown): re-queue the job and give
        its attempt back, so a clean stop never counts towards ``max_attempts``.

        Returns whether the job was running under ``token`` (and so was re-queued).
        """
        with self.transaction() as conn:
            row = _running(conn, job_id, token)
            if row is None:
                return False
            conn.execute(
                "UPDATE jobs SET attempts=MAX(attempts - 1, 0) WHERE id=?",
                (job_id,),
            )
            _release(conn, job_id, row, max_attempts=1 << 62, reason=reason)
        return True

    def recover(self, max_attempts: int, reason: str) -> dict[str, str]:
        """At startup: every job left running by a dead server is re-queued or interrupted."""
        changed: dict[str, str] = {}
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT id, attempts, cancel_requested FROM jobs WHERE status='running'"
            ).fetchall()
            for row in rows:
                changed[row["id"]] = _release(conn, row["id"], row, max_attempts, reason)
        return changed


def _running(conn: sqlite3.Connection, job_id: str, token: str | None) -> sqlite3.Row | None:
    """The job's row if it is running under ``token`` (any attempt when ``token`` is None)."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT attempts, cancel_requested, run_token FROM jobs WHERE id=? AND status='running'",
        (job_id,),
    ).fetchone()
    if row is None or (token is not None and row["run_token"] != token):
        return None
    return row


def _release(
    conn: sqlite3.Connection, job_id: str, row: sqlite3.Row, max_attempts: int, reason: str
) -> str:
    if row["cancel_requested"]:
        status, message = "cancelled", f"cancelled ({reason})"
    elif row["attempts"] < max_attempts:
        status, message = "queued", f"re-queued: {reason}"
    else:
        status = "interrupted"
        message = f"{reason}; not re-queued after {row['attempts']} attempts (max_attempts)"
    finished = None if status == "queued" else now()
    conn.execute(
        "UPDATE jobs SET status=?, message=?, finished_at=?, run_token=NULL, worker_pid=NULL"
        " WHERE id=?",
        (status, message, finished, job_id),
    )
    kind: EventType = "status" if status == "queued" else "verdict"
    _event(conn, job_id, kind, {"status": status, "message": message})
    return status


def _insert_queued(
    conn: sqlite3.Connection,
    spec_name: str,
    spec_hash: str,
    verifier_version: str,
    spec_text: str,
    max_queued: int,
) -> str:
    (queued,) = conn.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()
    if queued >= max_queued:
        raise QueueFull(f"{queued} jobs are queued, the limit max_queued is {max_queued}")
    job_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO jobs (id, status, spec_name, spec_hash, verifier_version, spec_text,"
        " created_at) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
        (job_id, spec_name, spec_hash, verifier_version, spec_text, now()),
    )
    _event(conn, job_id, "status", {"status": "queued"})
    return job_id


def _insert_reused(
    conn: sqlite3.Connection, spec_name: str, spec_text: str, report: dict[str, Any]
) -> str:
    """A finished job answered from a stored report; its status is the report's."""
    job_id, at = uuid.uuid4().hex, now()
    status = Report.model_validate(report).status
    conn.execute(
        "INSERT INTO jobs (id, status, spec_name, spec_hash, verifier_version, spec_text,"
        " created_at, started_at, finished_at, progress, reused, report, message)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, ?, ?)",
        (
            job_id,
            status,
            spec_name,
            report["spec_hash"],
            report["verifier_version"],
            spec_text,
            at,
            at,
            at,
            json.dumps(report),
            "reused a stored report",
        ),
    )
    _event(conn, job_id, "verdict", {"status": status, "reused": True})
    return job_id


def _event(conn: sqlite3.Connection, job_id: str, kind: EventType, data: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO events (job_id, at, type, data) VALUES (?, ?, ?, ?)",
        (job_id, now(), kind, json.dumps(data)),
    )
