"""A real ``verifier serve`` on 127.0.0.1, driven with httpx: submit, poll, stream, cancel,
32 concurrent submissions, the token, and the report page (and a notebook ``Report``'s HTML,
the same table and plots) in a headless browser."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import httpx
import pytest

from api.deps import CHALLENGES
from tests.api.conftest import TERMINAL, TOKEN, Server, long_spec, submit, tiny_spec, wait_for
from verifier.engine.report import Report

pytestmark = pytest.mark.integration


def test_submit_poll_and_reuse(client: httpx.Client) -> None:
    text = tiny_spec("poll-me", n=48, seed=3)
    r = submit(client, text)
    assert r.status_code == 202
    job = r.json()
    assert r.headers["Location"] == f"/v1/verifications/{job['id']}"
    assert job["status"] == "queued" and job["report"] is None
    done = wait_for(client, job["id"], TERMINAL)
    assert done["status"] == "passed", done
    [result] = done["report"]["results"]
    assert result["measured"]["accuracy"] == 1.0 and result["measured"]["n_facts"] == 96
    assert done["progress"]["fraction"] == 1.0 and done["attempts"] == 1
    # the same spec again, with reuse: answered at once from the stored report
    again = submit(client, text, reuse=True)
    assert again.status_code == 200
    body = again.json()
    assert body["reused"] is True and body["status"] == "passed" and body["id"] != job["id"]
    assert body["report"] == done["report"]
    listed = client.get("/v1/verifications", params={"limit": 1}).json()
    assert listed["items"][0]["id"] == body["id"] and listed["next"] is not None
    page2 = client.get(listed["next"]).json()
    assert page2["items"][0]["id"] != body["id"]


def parse_sse(text: str) -> list[tuple[int | None, str, dict[str, object]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if ": " in line and not line.startswith(":")
        )
        if "event" in fields:
            events.append(
                (
                    int(fields["id"]) if "id" in fields else None,
                    fields["event"],
                    json.loads(fields["data"]),
                )
            )
    return events


def test_event_stream_ends_with_the_verdict(client: httpx.Client) -> None:
    spec = tiny_spec("stream-me", n=64, seed=5, code_dim="2")  # 4 sign patterns: recall fails
    job = submit(client, spec).json()
    with client.stream("GET", f"/v1/verifications/{job['id']}/events", timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = parse_sse(text)
    kinds = [e[1] for e in events]
    assert kinds[0] == "status" and kinds[-1] == "verdict" and kinds.count("verdict") == 1
    assert {"status": "running"} in [e[2] for e in events]
    assert "progress" in kinds
    ids = [e[0] for e in events]
    assert ids == sorted(ids)
    assert events[-1][2]["status"] == "failed"  # the expectation accuracy = 1 does not hold
    # resuming after the last event id gives nothing new before the stream times out: the
    # verdict was already sent, so resume from just before it
    with client.stream(
        "GET",
        f"/v1/verifications/{job['id']}/events",
        headers={"Last-Event-ID": str(ids[-2])},
        timeout=30,
    ) as r:
        resumed = parse_sse("".join(r.iter_text()))
    assert [e[1] for e in resumed] == ["verdict"]


def test_cancel_a_running_job_stops_within_seconds(client: httpx.Client) -> None:
    job = submit(client, long_spec("cancel-me")).json()
    wait_for(
        client, job["id"], {"running"}, timeout=60, pred=lambda j: j["progress"]["fraction"] > 0
    )
    start = time.monotonic()
    r = client.delete(f"/v1/verifications/{job['id']}")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    done = wait_for(client, job["id"], TERMINAL, timeout=25)
    elapsed = time.monotonic() - start
    assert done["status"] == "cancelled"
    # the worker stopped by itself (the kill after kill_grace_s = 30 s would say so)
    assert done["message"] == "cancelled by request", done["message"]
    assert elapsed < 25
    again = client.delete(f"/v1/verifications/{job['id']}")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_32_concurrent_submissions_all_finish_correctly(server: Server) -> None:
    # even i: the exact code search, which recalls every fact (passed); odd i: m = 2 codes
    # for 64 attributes, where recall must fail (failed)
    specs = [
        tiny_spec(f"many-{i}", n=64, seed=i, code_dim="auto" if i % 2 == 0 else "2")
        for i in range(32)
    ]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as ac:
            return await asyncio.gather(
                *[
                    ac.post(
                        "/v1/verifications",
                        content=s,
                        params={"reuse": False},
                        headers={"Content-Type": "application/yaml"},
                    )
                    for s in specs
                ]
            )

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [202] * 32
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 32
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as c:
        for i, job_id in enumerate(ids):
            done = wait_for(c, job_id, TERMINAL, timeout=90)
            accuracy = done["report"]["results"][0]["measured"]["accuracy"]
            if i % 2 == 0:
                assert done["status"] == "passed" and accuracy == 1.0, done
            else:
                assert done["status"] == "failed" and accuracy < 1.0, done
            assert done["spec_name"] == f"many-{i}"


def test_token_is_required_for_writes(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        r = anon.post(
            "/v1/verifications",
            content=tiny_spec("no-token"),
            headers={"Content-Type": "application/yaml"},
        )
        assert r.status_code == 401
        assert r.headers.get_list("WWW-Authenticate") == list(CHALLENGES)
        assert r.json() == {
            "error": "unauthorized",
            "message": "expected Authorization: Bearer <token> (or Basic, with the token as "
            "password), got no Authorization header",
            "line": None,
            "key": None,
            "limit": None,
        }
        wrong = anon.post(
            "/v1/verifications",
            content=tiny_spec("bad-token"),
            headers={"Content-Type": "application/yaml", "Authorization": "Bearer nope"},
        )
        assert wrong.status_code == 401
        assert "wrong or malformed token" in wrong.json()["message"]
        assert anon.delete(f"/v1/verifications/{'0' * 32}").status_code == 401
        # reads need it too (hardening defect 9); only /healthz is open
        assert anon.get("/v1/verifications").status_code == 401
        assert anon.get("/healthz").json()["status"] == "ok"


def _browser() -> tuple[object, str] | None:
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        return None
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        return None
    return binary, driver


def test_report_page_in_a_headless_browser(client: httpx.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    found = _browser()
    if found is None:
        print("skipping: chromium, chromedriver or selenium is not installed")
        pytest.skip("chromium, chromedriver or selenium is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    sweep = (
        tiny_spec("page-me", n=32, seed=1)
        .replace("    expect:", "    sweep: {N: [32, 64, 128]}\n    expect:")
        .replace("{accuracy: 1.0}", '{accuracy: 1.0, code_dim: "<= 16*log(N)"}')
    )
    done = wait_for(client, submit(client, sweep).json()["id"], TERMINAL)
    assert done["status"] == "passed", done
    binary, driver_path = found  # type: ignore[misc]
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.set_page_load_timeout(30)
        # Basic authentication, the browser's way to send the token (user name: anything)
        base = str(client.base_url).replace("http://", f"http://anyone:{TOKEN}@")
        browser.get(f"{base}/v1/verifications/{done['id']}/report")
        assert browser.title == "Verification page-me: passed"
        assert browser.find_element(By.ID, "status").text == "passed"
        rows = browser.find_elements(By.CSS_SELECTOR, "#results tr.result")
        assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == [
            "exact[N=32]",
            "exact[N=64]",
            "exact[N=128]",
        ]
        images = browser.find_elements(By.CSS_SELECTOR, "img.plot")
        assert len(images) == 1
        sizes = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
        )
        assert all(complete and width > 100 for complete, width in sizes), sizes
        assert "code_dim" in images[0].get_attribute("alt")
        # the same report as a notebook shows it (Report._repr_html_), opened from a file
        notebook = tmp_path / "notebook.html"
        html = Report.model_validate(done["report"])._repr_html_()
        notebook.write_text(f"<!doctype html><meta charset='utf-8'><title>nb</title>{html}")
        browser.get(notebook.as_uri())
        assert browser.find_element(By.CSS_SELECTOR, ".report-status").text == "passed"
        rows = browser.find_elements(By.CSS_SELECTOR, ".verifier-report #results tr.result")
        assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == [
            "exact[N=32]",
            "exact[N=64]",
            "exact[N=128]",
        ]
        sizes = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
        )
        assert len(sizes) == 1 and all(c and w > 100 for c, w in sizes), sizes
    finally:
        browser.quit()
