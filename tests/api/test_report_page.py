"""The report page and its downloads, the job list at ``/``, and the offline API docs, with the
app in-process (TestClient, no worker processes; jobs finished through the store)."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from api.store import Store
from tests.api.conftest import tiny_spec
from tests.verifier.test_report_render import training_report
from verifier.limits import Limits

TOKEN = "page-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    settings = Settings(data_dir=tmp_path, workers=0, validators=0, token=TOKEN)
    with TestClient(create_app(settings, Limits()), headers=AUTH) as c:
        yield c, Store(settings.db_path)


def _finished(store: Store, name: str) -> str:
    """A job run to the end through the store, with the training report of the render tests."""
    job = store.create_job(name, "h" * 64, "0.1.0", tiny_spec(name), max_queued=100)
    claimed = store.claim(worker_pid=0)
    assert claimed is not None and claimed.id == job.id
    report = training_report().model_dump(mode="json")
    assert store.finish(job.id, claimed.run_token, "passed", "3/3 claims ok", report)
    return job.id


def test_the_page_links_downloads_times_provenance_and_curves(
    app: tuple[TestClient, Store],
) -> None:
    client, store = app
    job_id = _finished(store, "page<&>")
    page = client.get(f"/v1/verifications/{job_id}/report")
    assert page.status_code == 200
    html = page.text
    for anchor, what in (("json", "report.json"), ("junit", "junit.xml"), ("spec", "spec.yaml")):
        assert f"<a id='download-{anchor}' href='/v1/verifications/{job_id}/{what}'>" in html
    assert re.search(r"<time id='created'>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", html)
    assert re.search(r"<time id='finished'>[^<]+ UTC</time> \(\d+\.\d s\)", html)
    assert "<section id='provenance'>" in html and "<th>train_threads</th><td>1</td>" in html
    assert "<figure id='curves-gd-finds-it'><img class='plot curves'" in html
    assert "<a class='from' href='#claim-gd-finds-it'>" in html and "id='claim-gd-finds-it'" in html
    assert "<section id='legend'>" in html and "<a href='/'>all verifications</a>" in html
    assert "page&lt;&amp;&gt;" in html and "page<&>" not in html


def test_the_downloads(app: tuple[TestClient, Store]) -> None:
    client, store = app
    job_id = _finished(store, "gd geometric")
    r = client.get(f"/v1/verifications/{job_id}/report.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"] == 'attachment; filename="gd-geometric.report.json"'
    assert r.json() == training_report().model_dump(mode="json")
    r = client.get(f"/v1/verifications/{job_id}/junit.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    suite = ET.fromstring(r.text).find("testsuite")
    assert suite is not None and suite.get("name") == "gd-geometric"
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == ["gd-finds-it", "hard-gating", "probe-transfer"]
    r = client.get(f"/v1/verifications/{job_id}/spec.yaml")
    assert r.status_code == 200 and r.text == tiny_spec("gd geometric")
    assert r.headers["content-disposition"] == 'attachment; filename="gd-geometric.spec.yaml"'


def test_a_queued_job_has_its_spec_but_no_report_yet(app: tuple[TestClient, Store]) -> None:
    client, store = app
    job = store.create_job("waiting", "h" * 64, "0.1.0", tiny_spec("waiting"), max_queued=100)
    html = client.get(f"/v1/verifications/{job.id}/report").text
    assert (
        "download-spec" in html
        and "download-json" not in html
        and "<time id='finished'>" not in html
    )
    for what in ("report.json", "junit.xml"):
        r = client.get(f"/v1/verifications/{job.id}/{what}")
        assert r.status_code == 409 and r.json()["error"] == "conflict", what
        assert "expected a finished verification with a report, got queued" in r.json()["message"]
    assert client.get(f"/v1/verifications/{job.id}/spec.yaml").status_code == 200
    assert client.get(f"/v1/verifications/{'0' * 32}/report.json").status_code == 404


def test_the_job_list_newest_first_a_page_at_a_time(app: tuple[TestClient, Store]) -> None:
    client, store = app
    assert "No verifications yet" in client.get("/").text
    ids = [_finished(store, f"spec-{i}") for i in range(3)]
    page = client.get("/", params={"limit": 2})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = re.findall(r"<a href='/v1/verifications/([0-9a-f]{32})/report'>", page.text)
    assert links == [ids[2], ids[1]]
    assert "3 in all, newest first" in page.text and "class='passed'>passed<" in page.text
    [older] = re.findall(r"<a id='next' href='([^']+)'>", page.text)
    rest = client.get(older.replace("&amp;", "&")).text
    assert re.findall(r"/v1/verifications/([0-9a-f]{32})/report", rest) == [ids[0]]
    assert "id='next'" not in rest
    assert client.get("/", params={"status": "failed"}).text.count("class='job'") == 0
    assert client.get("/", params={"limit": 0}).status_code == 422
    assert "<dt class='interrupted'>interrupted</dt>" in page.text  # the legend


def test_docs_and_redoc_need_no_network(app: tuple[TestClient, Store]) -> None:
    client, _ = app
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        sources = re.findall(r"(?:src|href)=\"([^\"]+)\"", html) + re.findall(
            r"(?:src|href)='([^']+)'", html
        )
        assert sources and all(s.startswith("/docs/static/") for s in sources), sources
        assert "https://" not in html.replace("https://fastapi.tiangolo.com", ""), path
        for source in sources:
            asset = client.get(source)
            assert asset.status_code == 200 and len(asset.content) > 1000, source
    assert client.get("/docs/static/../settings.py").status_code == 404
    assert client.get("/docs/static/nope.js").json()["error"] == "not_found"


def test_pages_and_downloads_need_the_token(app: tuple[TestClient, Store]) -> None:
    client, store = app
    job_id = _finished(store, "guarded")
    paths = ["/", "/redoc", "/docs/static/swagger-ui.css"] + [
        f"/v1/verifications/{job_id}/{what}" for what in ("report.json", "junit.xml", "spec.yaml")
    ]
    basic = "Basic " + base64.b64encode(f"me:{TOKEN}".encode()).decode()
    for path in paths:
        assert client.get(path, headers={"Authorization": ""}).status_code == 401, path
        assert client.get(path, headers={"Authorization": basic}).status_code == 200, path


def test_the_new_routes_are_in_the_openapi_document(app: tuple[TestClient, Store]) -> None:
    client, _ = app
    paths = client.get("/openapi.json").json()["paths"]
    for what in ("report.json", "junit.xml", "spec.yaml"):
        assert f"/v1/verifications/{{verification_id}}/{what}" in paths
    assert "/" not in paths  # a page for a browser, like /docs
