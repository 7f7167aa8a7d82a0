"""kill -9 of the server while a long job runs, then a restart: the job is re-queued (or
``interrupted`` with a reason once out of attempts), never lost, and no orphan worker lives on."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import TERMINAL, Server, long_spec, submit, wait_for

pytestmark = pytest.mark.integration


def worker_pid(data_dir: Path, job_id: str) -> int:
    with sqlite3.connect(data_dir / "jobs.sqlite3") as conn:
        (pid,) = conn.execute("SELECT worker_pid FROM jobs WHERE id=?", (job_id,)).fetchone()
    return int(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return True


def test_kill_9_then_restart_requeues_the_running_job(tmp_path: Path) -> None:
    env = {"VERIFIER_API_MAX_ATTEMPTS": "2", "VERIFIER_API_KILL_GRACE_S": "30"}
    first = Server(tmp_path / "data", workers=1, env=env)
    second = Server(tmp_path / "data", workers=1, env=env)
    try:
        first.start()
        with httpx.Client(base_url=first.url, timeout=30) as c:
            job = submit(c, long_spec("survive-me")).json()
            wait_for(
                c, job["id"], {"running"}, timeout=60, pred=lambda j: j["progress"]["fraction"] > 0
            )
        pid = worker_pid(tmp_path / "data", job["id"])
        first.kill9()
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(pid), "the worker outlived its killed server"

        second.start()
        with httpx.Client(base_url=second.url, timeout=30) as c:
            after = c.get(f"/v1/verifications/{job['id']}").json()
            assert after["status"] in ("queued", "running"), after
            assert (
                after["message"] == ("re-queued: the server stopped while the job was running")
                or after["status"] == "running"
            )
            # the new worker picks it up again: attempt 2
            again = wait_for(
                c, job["id"], {"running"}, timeout=60, pred=lambda j: j["attempts"] == 2
            )
            assert again["spec_name"] == "survive-me"
            with c.stream("GET", f"/v1/verifications/{job['id']}/events", timeout=10) as r:
                first_event = next(r.iter_text())  # the history survived the restart
            assert first_event.startswith("id: ") and '"status": "queued"' in first_event
            assert c.delete(f"/v1/verifications/{job['id']}").status_code == 202
            assert wait_for(c, job["id"], TERMINAL, timeout=25)["status"] == "cancelled"
    finally:
        first.stop()
        second.stop()
