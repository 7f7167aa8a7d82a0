"""The app in-process (TestClient, no worker processes): exact JSON of each route, the
store's recovery rules, and one job run through the worker's own code path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from api.store import Store
from api.workers import execute_job
from tests.api.conftest import long_spec, tiny_spec
from verifier.limits import Limits

YAML = {"Content-Type": "application/yaml"}
VOLATILE = ("id", "created_at", "started_at", "finished_at", "spec_hash", "links")


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, workers=0, validators=0, max_queued=3, retry_after_s=7)
    with TestClient(create_app(settings, Limits())) as c:
        yield c


def stable(body: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in body.items() if k not in VOLATILE}


def test_healthz(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {
        "status": "ok",
        "verifier_version": "0.1.0",
        "workers": 0,
        "workers_alive": 0,
        "jobs": {},
        "reasons": [],
        "validators": 0,
        "validators_ready": 0,
    }


def test_submit_get_list_cancel(app_client: TestClient) -> None:
    r = app_client.post("/v1/verifications", content=tiny_spec("unit"), headers=YAML)
    assert r.status_code == 202
    body = r.json()
    assert r.headers["location"] == f"/v1/verifications/{body['id']}"
    assert len(body["spec_hash"]) == 64
    assert body["links"] == {
        "url": f"/v1/verifications/{body['id']}",
        "events": f"/v1/verifications/{body['id']}/events",
        "report": f"/v1/verifications/{body['id']}/report",
    }
    assert stable(body) == {
        "status": "queued",
        "spec_name": "unit",
        "verifier_version": "0.1.0",
        "attempts": 0,
        "reused": False,
        "cancel_requested": False,
        "message": "",
        "progress": {"fraction": 0.0, "key": "", "message": ""},
        "report": None,
    }
    assert app_client.get(body["links"]["url"]).json() == body
    listed = app_client.get("/v1/verifications").json()
    assert listed["total"] == 1 and listed["next"] is None
    assert listed["items"] == [{k: v for k, v in body.items() if k != "report"}]
    r = app_client.delete(body["links"]["url"])
    assert r.status_code == 202
    assert stable(r.json()) == {
        **stable(body),
        "status": "cancelled",
        "cancel_requested": True,
        "message": "cancelled before it started",
    }
    assert app_client.delete(body["links"]["url"]).json() == {
        "error": "conflict",
        "message": "expected a queued or running verification, got one already cancelled",
        "line": None,
        "key": None,
        "limit": None,
    }


def test_json_body_equals_yaml_body(app_client: TestClient) -> None:
    import yaml

    text = tiny_spec("same")
    a = app_client.post("/v1/verifications", content=text, headers=YAML).json()
    b = app_client.post("/v1/verifications", json=yaml.safe_load(text)).json()
    assert a["spec_hash"] == b["spec_hash"] and a["id"] == b["id"]  # the same job: joined


def test_queue_bound_answers_429(app_client: TestClient) -> None:
    for i in range(3):
        assert (
            app_client.post(
                "/v1/verifications", content=tiny_spec(f"q{i}"), headers=YAML
            ).status_code
            == 202
        )
    r = app_client.post("/v1/verifications", content=tiny_spec("q3"), headers=YAML)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json() == {
        "error": "queue_full",
        "message": "3 jobs are queued, the limit max_queued is 3; retry later",
        "line": None,
        "key": None,
        "limit": None,
    }


def test_limit_is_named_before_queueing(app_client: TestClient) -> None:
    r = app_client.post("/v1/verifications", content=tiny_spec("big", n=2_000_000), headers=YAML)
    assert r.status_code == 422
    assert r.json() == {
        "error": "limit_exceeded",
        "message": "claim 'exact': N is 2,000,000, over the limit max_entities = 1,000,000 "
        "(set VERIFIER_MAX_ENTITIES to change it)",
        "line": None,
        "key": None,
        "limit": "max_entities",
    }
    assert app_client.get("/v1/verifications").json()["total"] == 0


def test_not_found_and_bad_id(app_client: TestClient) -> None:
    assert app_client.get("/v1/verifications/" + "ab" * 16).json() == {
        "error": "not_found",
        "message": f"no verification with id {'ab' * 16}",
        "line": None,
        "key": None,
        "limit": None,
    }
    assert app_client.get("/v1/verifications/x.y").status_code == 400
    assert app_client.get("/nowhere").json()["error"] == "not_found"


def test_schema_theorems_and_openapi(app_client: TestClient) -> None:
    schema = app_client.get("/v1/schema").json()
    assert "instance" in schema["properties"] and "claims" in schema["properties"]
    theorems = app_client.get("/v1/theorems")
    assert theorems.status_code in (200, 404)
    openapi = app_client.get("/openapi.json").json()
    models = openapi["components"]["schemas"]
    for name in (
        "Verification",
        "VerificationSummary",
        "VerificationPage",
        "ErrorOut",
        "Health",
        "Report",
        "ClaimResult",
    ):
        assert name in models, name
    for name in ("VerificationSummary", "ErrorOut", "Health"):
        assert models[name]["examples"], name
    post = openapi["paths"]["/v1/verifications"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/yaml", "application/json"}
    assert {"202", "200", "413", "422", "429"} <= set(post["responses"])


def test_recovery_requeues_then_interrupts(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite3")
    job = store.create_job("s", "h", "0.1.0", tiny_spec("s"), max_queued=10)
    assert store.claim(worker_pid=1) is not None
    assert store.recover(max_attempts=2, reason="crash") == {job.id: "queued"}
    assert store.get(job.id).message == "re-queued: crash"  # type: ignore[union-attr]
    claimed = store.claim(worker_pid=2)
    assert claimed is not None and claimed.attempts == 2
    assert store.recover(max_attempts=2, reason="crash") == {job.id: "interrupted"}
    lost = store.get(job.id)
    assert lost is not None and lost.status == "interrupted"
    assert lost.message == "crash; not re-queued after 2 attempts (max_attempts)"
    # the old attempt's token no longer writes
    assert not store.finish(job.id, claimed.run_token, "passed", "late")


def test_worker_code_path_and_reuse(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, workers=0, validators=0)
    with TestClient(create_app(settings, Limits())) as c:
        text = tiny_spec("inline", n=32, seed=2)
        job = c.post("/v1/verifications", content=text, headers=YAML).json()
        store = Store(settings.db_path)
        claimed = store.claim(worker_pid=0)
        assert claimed is not None and claimed.id == job["id"]
        assert execute_job(store, claimed, Limits(), timeout_s=60) == "passed"
        done = c.get(f"/v1/verifications/{job['id']}").json()
        assert done["status"] == "passed" and done["message"] == "1/1 claims ok"
        assert done["report"]["results"][0]["measured"]["accuracy"] == 1.0
        reused = c.post("/v1/verifications", content=text, headers=YAML)
        assert reused.status_code == 200 and reused.json()["reused"] is True
        assert reused.json()["report"] == done["report"]
        fresh = c.post("/v1/verifications", content=text, headers=YAML, params={"reuse": False})
        assert fresh.status_code == 202
        page = c.get(f"/v1/verifications/{job['id']}/report")
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>Verification inline: passed</title>" in page.text
        assert "img-src data:" in page.headers["content-security-policy"]


def test_wall_clock_timeout(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite3")
    store.create_job("slow", "h", "0.1.0", long_spec("slow", points=2), max_queued=10)
    claimed = store.claim(worker_pid=0)
    assert claimed is not None
    assert execute_job(store, claimed, Limits(), timeout_s=0.5) == "error"
    done = store.get(claimed.id)
    assert done is not None and done.status == "error"
    assert done.message == "timed out after 0.5 s (the limit job_timeout_s)"
