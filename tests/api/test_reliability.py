"""Faults against a real ``verifier serve`` process: a second server on the same data folder,
kill -9, a full disk, a removed data folder, and event streams that must end.

Every scenario ends with every accepted job accounted for: readable, and final (or still
queued or running where the scenario says so), never silently gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import TERMINAL, TOKEN, Server, free_port, long_spec, tiny_spec, wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}
YAML = {"Content-Type": "application/yaml", **AUTH}


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers=AUTH)


def _post(c: httpx.Client, text: str, reuse: bool = False) -> httpx.Response:
    return c.post("/v1/verifications", content=text, params={"reuse": reuse}, headers=YAML)


def _events(c: httpx.Client, job_id: str, last: int | None, limit_s: float) -> tuple[str, float]:
    """The whole body of an event stream and how long it took to end (fails past limit_s)."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    start = time.monotonic()
    body = ""
    with c.stream(
        "GET", f"/v1/verifications/{job_id}/events", headers=headers, timeout=limit_s
    ) as r:
        assert r.status_code == 200, r.read()
        for chunk in r.iter_text():
            body += chunk
            assert time.monotonic() - start < limit_s, f"the stream is still open: {body}"
    return body, time.monotonic() - start


def _ids(body: str) -> list[int]:
    return [int(line[4:]) for line in body.splitlines() if line.startswith("id: ")]


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[Server]:
    srv = Server(
        tmp_path / "data",
        workers=1,
        env={"VERIFIER_API_TOKEN": TOKEN, "VERIFIER_API_MAX_STREAMS": "2"},
    )
    try:
        yield srv.start()
    finally:
        srv.stop()


def test_a_resumed_stream_of_a_final_job_replays_the_rest_and_closes(one_worker: Server) -> None:
    with _client(one_worker) as c:
        job = _post(c, tiny_spec("stream-ends")).json()
        assert wait_for(c, job["id"], TERMINAL, timeout=120)["status"] == "passed"
        full, _ = _events(c, job["id"], None, 30)
        ids = _ids(full)
        assert "event: verdict" in full and len(ids) >= 3, full
        verdict = ids[-1]
        # what a browser's EventSource sends on reconnect: the verdict's own id
        rest, took = _events(c, job["id"], verdict, 30)
        assert _ids(rest) == [] and took < 10, (rest, took)
        rest, _ = _events(c, job["id"], ids[-2], 30)  # one event missed: the verdict, then done
        assert _ids(rest) == [verdict] and "event: verdict" in rest, rest
        rest, _ = _events(c, job["id"], ids[0], 30)
        assert _ids(rest) == ids[1:], rest


def test_open_streams_are_capped_with_503_and_retry_after(one_worker: Server) -> None:
    with _client(one_worker) as c, _client(one_worker) as c2, _client(one_worker) as c3:
        job = _post(c, long_spec("held-open", points=2)).json()
        url = f"/v1/verifications/{job['id']}/events"
        try:
            with c2.stream("GET", url) as first, c3.stream("GET", url) as second:
                chunks = first.iter_text(), second.iter_text()  # kept: dropped, they close
                for chunk in chunks:
                    next(chunk)  # both streams running
                third = c.get(url, timeout=10)
                assert third.status_code == 503, third.text
                assert "max_streams" in third.json()["message"]
                assert int(third.headers["Retry-After"]) >= 1
            deadline = time.monotonic() + 10  # closed streams free their places
            while time.monotonic() < deadline:
                with c.stream("GET", url, timeout=10) as again:
                    if again.status_code == 200:
                        break
                time.sleep(0.2)
            assert again.status_code == 200
        finally:
            c.delete(f"/v1/verifications/{job['id']}")
        assert wait_for(c, job["id"], TERMINAL, timeout=60)["status"] == "cancelled"


def test_a_second_server_refuses_the_folder_then_kill_9_loses_no_job(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"VERIFIER_API_TOKEN": TOKEN, "VERIFIER_API_MAX_ATTEMPTS": "3"}
    first, third = Server(data, workers=1, env=env), Server(data, workers=1, env=env)
    try:
        first.start()
        assert first.proc is not None
        with _client(first) as c:
            slow = _post(c, long_spec("keep-running", points=2)).json()
            queued = [_post(c, tiny_spec(f"queued-{i}", seed=i)).json() for i in range(3)]
            wait_for(c, slow["id"], {"running"}, timeout=120)
            second = subprocess.run(  # the same folder: refused, naming the first server
                [
                    sys.executable,
                    "-c",
                    "from verifier.cli_entry import main; main()",
                    "serve",
                    "--port",
                    str(free_port()),
                    "--data-dir",
                    str(data),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                env={k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_API_")},
            )
            said = " ".join((second.stdout + second.stderr).split())
            assert second.returncode == 2, said
            assert f"in use by another server (pid {first.proc.pid}" in said, said
            assert "Traceback" not in said
            time.sleep(1.0)  # the first server's running job was not touched
            job = c.get(f"/v1/verifications/{slow['id']}").json()
            assert job["status"] == "running" and job["attempts"] == 1, job
            assert "stopped" not in job["message"], job
        first.kill9()
        third.start()  # the lock died with the first server: a restart is not refused
        with _client(third) as c:
            job = c.get(f"/v1/verifications/{slow['id']}").json()
            assert job["status"] in ("queued", "running"), job  # re-queued, not lost
            c.delete(f"/v1/verifications/{slow['id']}")  # first in line: out of the way
            assert wait_for(c, slow["id"], TERMINAL, timeout=60)["status"] == "cancelled"
            for q in queued:  # every accepted job is there and runs to its verdict
                assert wait_for(c, q["id"], TERMINAL, timeout=300)["status"] == "passed"
    finally:
        first.stop()
        third.stop()


def _health(c: httpx.Client) -> dict[str, Any]:
    r = c.get("/healthz")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _until_health(c: httpx.Client, status: str, limit_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    health = _health(c)
    while health["status"] != status and time.monotonic() < deadline:
        time.sleep(0.2)
        health = _health(c)
    assert health["status"] == status, health
    return health


def test_a_removed_data_folder_is_503_and_degraded_never_an_empty_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = Server(data, workers=1, env={"VERIFIER_API_TOKEN": TOKEN})
    srv.log = tmp_path / "server.log"  # outside the folder that goes away
    try:
        srv.start()
        with _client(srv) as c:
            done = _post(c, tiny_spec("before-removal")).json()
            assert wait_for(c, done["id"], TERMINAL, timeout=120)["status"] == "passed"
            shutil.rmtree(data)
            r = c.get(f"/v1/verifications/{done['id']}")
            assert r.status_code == 503 and "gone" in r.json()["message"], r.text
            assert "Retry-After" in r.headers
            post = _post(c, tiny_spec("after-removal"))
            assert post.status_code == 503, post.text  # not accepted, so it cannot be lost
            health = _until_health(c, "degraded")
            assert any("gone" in why for why in health["reasons"]), health
            time.sleep(2.0)  # the worker waits for the store; nothing re-creates it
            assert not (data / "jobs.sqlite3").exists()
        log = srv.log.read_text()
        assert "Traceback" not in log, log[-2000:]
        assert log.count("is gone") < 10, log[-2000:]  # said when it starts, not twice a second
    finally:
        srv.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a disk that fills (skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Fill the disk under ``folder``; returns the filler file."""
    filler = folder / f"filler-{uuid.uuid4().hex}"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_503_and_degraded_and_every_accepted_job_survives(
    tmp_path: Path, small_disk: Path
) -> None:
    srv = Server(small_disk / "data", workers=1, env={"VERIFIER_API_TOKEN": TOKEN})
    srv.log = tmp_path / "server.log"  # the log must not be what fills the disk
    accepted: list[str] = []
    try:
        srv.start()
        with _client(srv) as c:
            first = _post(c, tiny_spec("disk")).json()
            accepted.append(first["id"])
            assert wait_for(c, first["id"], TERMINAL, timeout=120)["status"] == "passed"
            filler = _fill(small_disk)
            refused = None
            padded = tiny_spec("disk") + "#" + "x" * 40_000 + "\n"  # each job row ~40 kB
            for i in range(400):  # WAL space already allocated absorbs a few writes first
                r = _post(c, padded.replace("name: disk", f"name: disk-{i}"))
                if r.status_code in (200, 202):
                    accepted.append(r.json()["id"])
                    continue
                refused = r
                break
            assert refused is not None and refused.status_code == 503, refused
            assert "full" in refused.json()["message"], refused.text
            assert "Retry-After" in refused.headers
            health = _until_health(c, "degraded")
            assert any("full" in why for why in health["reasons"]), health
            filler.unlink()  # space again: the store and the workers carry on
            _until_health(c, "ok", limit_s=60)
            assert _health(c)["workers_alive"] == 1
            for job_id in accepted:
                job = wait_for(c, job_id, TERMINAL, timeout=300)
                assert job["status"] == "passed", job
        assert "Traceback" not in srv.log.read_text()
    finally:
        srv.stop()
