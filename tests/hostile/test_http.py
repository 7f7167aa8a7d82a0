"""The hostile corpus through the HTTP door: every case against one live server.

Each case must get its status and phrase, as JSON with no traceback, within the per-case
limit; no response may be a 5xx; accepted specs must finish without an internal error; the
server must stay healthy; and it must write nothing outside its data folder.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.api.conftest import TERMINAL, TOKEN
from tests.hostile.conftest import BASIC, CASE_LIMIT_S, HostileServer
from tests.hostile.corpus import BASIC_PLACEHOLDER, CASES, JOB_PLACEHOLDER, Case

pytestmark = pytest.mark.integration

HTTP_CASES = [c for c in CASES if c.http is not None]


def _send(client: httpx.Client, case: Case, job_id: str) -> httpx.Response:
    headers = {k: v.replace(BASIC_PLACEHOLDER, BASIC) for k, v in case.headers.items()}
    if case.auth:
        headers["Authorization"] = f"Bearer {TOKEN}"
    if case.spec_case or case.body:
        headers["Content-Type"] = case.media
    path = case.path.replace(JOB_PLACEHOLDER, job_id)
    if case.spec_case and "?" not in path:
        path += "?reuse=false"
    return client.request(case.method, path, content=case.body or None, headers=headers)


def _problem(case: Case, r: httpx.Response) -> str | None:
    text = r.text
    if r.status_code >= 500 or "Traceback" in text or 'File "' in text:
        return f"{r.status_code}: {text[:300]}"
    if r.status_code != case.http:
        return f"status {r.status_code}, expected {case.http}: {text[:300]}"
    if r.status_code >= 400:
        if r.headers.get("content-type") != "application/json":
            return f"an error as {r.headers.get('content-type')}, expected application/json"
        text = r.json()["message"]
    phrase = case.http_phrase or case.phrase
    if r.status_code != 202 and phrase not in text:
        return f"{phrase!r} is not in {text[:300]!r}"
    return None


def test_corpus_through_the_http_door(hostile_server: HostileServer) -> None:
    assert len(HTTP_CASES) >= 120
    before = hostile_server.outside_data()
    failures: list[str] = []
    accepted: dict[str, Case] = {}
    slowest = (0.0, "")
    with httpx.Client(base_url=hostile_server.url, timeout=CASE_LIMIT_S) as client:
        for case in HTTP_CASES:
            start = time.monotonic()
            try:
                r = _send(client, case, hostile_server.job_id)
            except httpx.TimeoutException:
                failures.append(f"{case.id}: no answer within {CASE_LIMIT_S:g} s (a hang)")
                continue
            slowest = max(slowest, (time.monotonic() - start, case.id))
            if (problem := _problem(case, r)) is not None:
                failures.append(f"{case.id}: {problem}")
            elif r.status_code == 202:
                accepted[r.json()["id"]] = case
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 180
        for job_id, case in accepted.items():  # accepted specs run to a verdict, never a crash
            job: dict[str, object] = {}
            while time.monotonic() < deadline:
                job = client.get(f"/v1/verifications/{job_id}", headers=auth).json()
                if job["status"] in TERMINAL:
                    break
                time.sleep(0.2)
            if job.get("status") not in TERMINAL or "internal error" in str(job.get("message")):
                failures.append(f"{case.id}: the job ended {job.get('status')}: {job}")
            elif case.phrase not in str(job):
                failures.append(f"{case.id}: {case.phrase!r} is not in the finished job {job}")
        health = client.get("/healthz").json()
    print(f"{len(HTTP_CASES)} HTTP cases; slowest {slowest[1]} at {slowest[0]:.2f} s")
    assert not failures, "\n".join(failures)
    assert health["status"] == "ok" and health["workers_alive"] == 2, health
    assert hostile_server.outside_data() == before, "the server wrote outside its data folder"
