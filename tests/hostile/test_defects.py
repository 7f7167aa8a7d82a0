"""The eleven defects of the hostile review, one named regression test (or a few) each:
test_defect_NN_*.

Each fails on the code the review was made against. The hostile corpus (corpus.py) holds the
same inputs and many more, through both doors; these tests pin each defect where it lived.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.intake import spec_text_of, strict_json
from api.main import create_app
from api.settings import Settings
from api.store import Store
from api.workers import WorkerPool
from tests.api.conftest import TOKEN, free_port, long_spec, tiny_spec
from tests.hostile.conftest import HostileServer
from tests.hostile.corpus import BOUND, FEASIBILITY, GOOD, TRAINING, margin, replaced
from verifier.errors import FormulaError, SpecError
from verifier.limits import Limits
from verifier.spec import load_spec_text
from verifier.spec.formulas import parse_formula
from verifier.spec.yaml_lines import load_yaml

YAML = {"Content-Type": "application/yaml"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def spec_error(body: bytes | str) -> SpecError:
    """The SpecError a spec text raises (the test fails if it raises none)."""
    text = body.decode() if isinstance(body, bytes) else body
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "case.spec.yaml")
    return info.value


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app in-process, token set, validating in its thread pool, no workers."""
    settings = Settings(data_dir=tmp_path, workers=0, validators=0, token=TOKEN)
    with TestClient(create_app(settings, Limits())) as c:
        yield c


# --- 1: one formula froze the whole server ----------------------------------------------------


@pytest.mark.parametrize("formula", ["(2/3)**(10**8)", "(2/3)**(10**12)", "(2*N)**(10**8)"])
def test_defect_01_exponent_bomb_is_refused_in_milliseconds(formula: str) -> None:
    start = time.perf_counter()
    with pytest.raises(FormulaError, match=r"the exponent [0-9,]+ is too large"):
        parse_formula(formula)
    assert time.perf_counter() - start < 1.0  # it took minutes and gigabytes before


@pytest.mark.integration
def test_defect_01_formula_exponent_bomb_keeps_healthz_fast(hostile_server: HostileServer) -> None:
    bomb = margin(">= (2/3)**(10**8)")
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=hostile_server.url, timeout=30) as c:
            while not stop.is_set():
                start = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - start)
                time.sleep(0.02)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=hostile_server.url, timeout=30, headers=AUTH) as c:
            return c.post("/v1/verifications", content=bomb, headers=YAML)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(24)))
    finally:
        stop.set()
        prober.join(30)
    assert {r.status_code for r in answers} == {422}
    assert all("the exponent 100,000,000 is too large" in r.json()["message"] for r in answers)
    # /healthz stayed unanswered for ~100 s before; the bench records < 100 ms on an idle box
    assert len(latencies) >= 5 and max(latencies) < 2.0, sorted(latencies)[-5:]


# --- 2: uncaught exceptions -------------------------------------------------------------------


def test_defect_02_control_byte_in_a_comment_is_a_spec_error() -> None:
    err = spec_error(GOOD + "# a NUL \x00 in a comment\n")
    assert err.line == 8 and "U+0000" in err.message


def test_defect_02_integer_over_4300_digits_is_refused_in_yaml_and_json() -> None:
    err = spec_error(GOOD.replace("seed: 0", "seed: " + "9" * 5000))
    assert err.line == 2 and "an integer of 5,000 digits is out of range" in err.message
    with pytest.raises(SpecError, match="an integer of 5,000 digits is out of range"):
        strict_json('{"seed": ' + "9" * 5000 + "}")


def test_defect_02_formula_literal_1e309_is_refused() -> None:
    with pytest.raises(FormulaError, match="about 309 digits; expected at most 1e"):
        parse_formula("1" + "0" * 309)


def test_defect_02_one_third_to_1e5_is_refused_before_evaluation() -> None:
    err = spec_error(margin(">= (1/3)**(10**5)"))
    assert err.key == "claims.0.expect.margin" and "the exponent 100,000" in err.message


def test_defect_02_json_nested_400_deep_is_a_spec_error() -> None:
    body = '{"a": ' * 400 + "1" + "}" * 400
    with pytest.raises(SpecError, match="JSON nests"):
        spec_text_of(body.encode(), "application/json")


def test_defect_02_cursor_and_event_id_above_int64_are_422(app_client: TestClient) -> None:
    job = app_client.post(
        "/v1/verifications", content=tiny_spec("cursor"), headers={**YAML, **AUTH}
    )
    r = app_client.get("/v1/verifications", params={"before": 2**63}, headers=AUTH)
    assert r.status_code == 422 and "less than or equal to 9223372036854775807" in r.text
    events = f"/v1/verifications/{job.json()['id']}/events"
    r = app_client.get(events, headers={**AUTH, "Last-Event-ID": str(2**63)})
    assert r.status_code == 422 and "Last-Event-ID" in r.json()["message"]


def _keep_alive_server(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return server, thread, port


def _exchange(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return head  # the server closed the connection
        head += chunk
    header, _, body = head.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in header.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return header + b"\r\n\r\n" + body


def test_defect_02_keep_alive_survives_an_internal_error(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, workers=0, validators=0))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    server, thread, port = _keep_alive_server(app)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            first = _exchange(sock, "/boom")
            assert first.startswith(b"HTTP/1.1 500") and b'"error":"internal"' in first
            assert b"Traceback" not in first and b"connection: close" not in first.lower()
            second = _exchange(sock, "/healthz")  # the same connection: no reset
            assert second.startswith(b"HTTP/1.1 200"), second
    finally:
        server.should_exit = True
        thread.join(30)


# --- 3: non-finite numbers were accepted ------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "old", "new", "key", "line"),
    [
        (TRAINING, "lr: 3e-3", "lr: .inf", "claims.0.optim.lr", 7),
        (TRAINING, "weight_decay: 0.0", "weight_decay: .inf", "claims.0.optim.weight_decay", 7),
        (TRAINING, "init_scale: 1.0", "init_scale: .inf", "claims.0.model.init_scale", 6),
        (FEASIBILITY, "min_margin: 0.001", "box: .inf", "claims.0.box", 8),
        (BOUND, "code_dim: 8", "code_dim: .nan", "claims.0.given.code_dim", 7),
    ],
)
def test_defect_03_non_finite_numbers_are_refused_naming_key_and_line(
    base: str, old: str, new: str, key: str, line: int
) -> None:
    err = spec_error(replaced(base, old, new))
    assert (err.key, err.line) == (key, line)
    assert err.message.startswith("expected a finite number, got")


def test_defect_03_non_finite_spec_is_refused_over_http(app_client: TestClient) -> None:
    r = app_client.post(
        "/v1/verifications",
        content=replaced(TRAINING, "lr: 3e-3", "lr: .inf"),
        headers={**YAML, **AUTH},
    )
    assert r.status_code == 422 and r.json()["key"] == "claims.0.optim.lr"  # it was 202


# --- 4: vacuous passes ------------------------------------------------------------------------


def test_defect_04_empty_sweep_is_refused() -> None:
    err = spec_error(replaced(GOOD, "    expect:", "    sweep: {N: []}\n    expect:"))
    assert err.key == "claims.0.sweep.N" and "expected at least one value" in err.message


@pytest.mark.parametrize(
    ("expect", "fragment"),
    [
        ("{value: 0, tol: .inf}", "tol: expected a finite number >= 0, got inf"),
        ("{value: 1, tol: .nan}", "tol: expected a finite number >= 0, got nan"),
        ("{value: 1, tol: -0.5}", "tol: expected a finite number >= 0, got -0.5"),
        ("{value: .nan}", "value: expected a finite number, got nan"),
        (".nan", "expected a finite number, got nan"),
    ],
)
def test_defect_04_tolerances_and_values_are_finite(expect: str, fragment: str) -> None:
    err = spec_error(replaced(GOOD, "accuracy: 1.0", f"accuracy: {expect}"))
    assert err.key == "claims.0.expect.accuracy" and fragment in err.message


def test_defect_04_a_run_that_verifies_nothing_exits_5(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from verifier.cli import app

    spec = tmp_path / "one.spec.yaml"
    spec.write_text(GOOD)
    empty = tmp_path / "empty"
    empty.mkdir()
    runner = CliRunner()
    selected = runner.invoke(app, ["check", str(spec), "-k", "no-such-claim"])
    assert selected.exit_code == 5 and "-k selected no claim" in selected.stderr
    nothing = runner.invoke(app, ["check", str(empty)])
    assert nothing.exit_code == 5 and "no *.spec.yaml file was found" in nothing.stderr


# --- 5: a graceful shutdown used up an attempt ------------------------------------------------


def test_defect_05_sigterm_then_kill_9_still_requeues(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite3")
    job = store.create_job("s", "h", "0.1.0", tiny_spec("s"), max_queued=10)
    first = store.claim(worker_pid=1)
    assert first is not None and first.attempts == 1
    assert store.requeue(job.id, first.run_token, "the server shut down")  # SIGTERM
    again = store.claim(worker_pid=2)
    assert again is not None and again.attempts == 1  # the clean stop cost nothing
    assert store.recover(max_attempts=2, reason="crash") == {job.id: "queued"}  # kill -9


@pytest.mark.integration
def test_defect_05_pool_shutdown_gives_the_attempt_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite3")
    job = store.create_job("slow", "h", "0.1.0", long_spec("slow", points=1), max_queued=10)
    pool = WorkerPool(store, Limits(), 1, 3600, 10, 2, 0.1)
    pool.start()
    try:
        deadline = time.monotonic() + 120
        while (current := store.get(job.id)) is not None and current.status != "running":
            assert time.monotonic() < deadline, "the worker never took the job"
            time.sleep(0.2)
    finally:
        pool.stop(timeout=60)
    after = store.get(job.id)
    assert after is not None and (after.status, after.attempts) == ("queued", 0), after
    assert after.message == "re-queued: the server shut down"


# --- 6: duplicate JSON keys were accepted ------------------------------------------------------


def test_defect_06_duplicate_json_keys_are_refused_like_yaml() -> None:
    json_body = b'{"name": "a",\n "name": "b"}'
    with pytest.raises(SpecError) as from_json:
        spec_text_of(json_body, "application/json")
    with pytest.raises(SpecError) as from_yaml:
        load_yaml(json_body.decode(), "<request>")
    assert (
        from_json.value.message
        == from_yaml.value.message
        == ("duplicate key 'name' (first at line 1)")
    )
    assert from_json.value.line == 2


# --- 7: errors that did not name the key ------------------------------------------------------


def test_defect_07_misspelt_and_missing_keys_are_named() -> None:
    err = spec_error(replaced(GOOD, "entities", "entites"))
    assert (err.key, err.line) == ("instance.entites", 2)
    assert err.message == (
        "unknown key 'entites' (did you mean 'entities'?); "
        "line 2: instance.entities: required key 'entities' is missing"
    )


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("n\u0430me", "U+0430 CYRILLIC SMALL LETTER A"),
        ("na\u200bme", "U+200B ZERO WIDTH SPACE"),
    ],
)
def test_defect_07_lookalike_keys_show_their_code_points(
    app_client: TestClient, key: str, shown: str
) -> None:
    err = spec_error(replaced(GOOD, "name: hostile", f"{key}: hostile"))
    assert shown in err.message and "(did you mean 'name'?)" in err.message
    r = app_client.post(
        "/v1/verifications",
        content=replaced(GOOD, "name: hostile", f"{key}: hostile"),
        headers={**YAML, **AUTH},
    )
    assert r.status_code == 422 and r.json()["key"] == key and r.json()["line"] == 1


def test_defect_07_block_nesting_error_has_a_line() -> None:
    deep = "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 100))
    err = spec_error(deep)
    assert err.line == 100 and "YAML nested too deeply" in err.message


# --- 8: OpenAPI and HTTP conformance ----------------------------------------------------------


def test_defect_08_openapi_and_http_conformance(app_client: TestClient) -> None:
    doc = app_client.get("/openapi.json", headers=AUTH).json()
    job_path = doc["paths"]["/v1/verifications/{verification_id}"]["get"]
    assert job_path["parameters"][0]["schema"]["pattern"] == "^[0-9a-f]{32}$"
    report = doc["paths"]["/v1/verifications/{verification_id}/report"]["get"]["responses"]
    assert set(report["404"]["content"]) == {"application/json"}
    assert set(report["200"]["content"]) == {"text/html"}
    events = doc["paths"]["/v1/verifications/{verification_id}/events"]["get"]
    [header] = [p for p in events["parameters"] if p["in"] == "header"]
    assert header["schema"]["type"] == "string" and "anyOf" not in header["schema"]
    r = app_client.patch("/v1/verifications", headers=AUTH)
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    job = app_client.post("/v1/verifications", content=tiny_spec("sse"), headers={**YAML, **AUTH})
    events_url = f"/v1/verifications/{job.json()['id']}/events"
    r = app_client.get(events_url, headers={**AUTH, "Last-Event-ID": "null"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"


# --- 9: reads were open when a token was set --------------------------------------------------


def test_defect_09_every_route_but_healthz_needs_the_token(app_client: TestClient) -> None:
    job = app_client.post("/v1/verifications", content=tiny_spec("t"), headers={**YAML, **AUTH})
    jid = job.json()["id"]
    reads = [
        "/v1/verifications",
        f"/v1/verifications/{jid}",
        f"/v1/verifications/{jid}/report",
        f"/v1/verifications/{jid}/events",
        "/v1/schema",
        "/v1/theorems",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/docs/static/swagger-ui-bundle.js",
        "/",
        f"/v1/verifications/{jid}/spec.yaml",
    ]
    for path in reads:
        assert app_client.get(path).status_code == 401, path
    basic = "Basic " + base64.b64encode(f"me:{TOKEN}".encode()).decode()
    for path in reads[:3] + reads[4:]:  # the event stream would wait for a verdict
        assert app_client.get(path, headers=AUTH).status_code == 200, path
        assert app_client.get(path, headers={"Authorization": basic}).status_code == 200, path
    assert app_client.get("/healthz").status_code == 200
    challenges = app_client.get("/v1/verifications").headers.get_list("www-authenticate")
    assert challenges[0].startswith('Basic realm="verifier"')  # so a browser asks for it


# --- 10: cold start imported torch into the API process ---------------------------------------


@pytest.mark.integration
def test_defect_10_validating_and_queueing_imports_no_torch(hostile_server: HostileServer) -> None:
    with httpx.Client(base_url=hostile_server.url, timeout=30, headers=AUTH) as c:
        for i in range(3):  # validate and queue a construction, a training and a convex spec
            for text in (GOOD, TRAINING, FEASIBILITY):
                body = text.replace("seed: 0}", f"seed: {i}}}")
                r = c.post("/v1/verifications?reuse=false", content=body, headers=YAML)
                assert r.status_code == 202, r.text
        for path in ("/v1/schema", "/v1/theorems"):  # served by the API process too
            assert c.get(path).status_code == 200
    heavy = {
        lib
        for lib in hostile_server.api_libraries()
        for m in ("torch", "cvxpy", "matplotlib")
        if f"/{m}/" in lib
    }
    assert not heavy, sorted(heavy)[:5]
    # the first POST on a fresh server took 5.8 s; the bench records it on an idle machine
    assert hostile_server.first_post_s < 2.0


# --- 11: identical in-flight submissions were not merged -------------------------------------


def test_defect_11_identical_in_flight_submissions_run_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite3")

    def submit(_: int) -> tuple[str, str]:
        job, how = store.submit("same", "h" * 64, "0.1.0", "text", 256, reuse=True)
        return job.id, how

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(32)))
    assert len({job_id for job_id, _ in answers}) == 1
    assert sorted(how for _, how in answers) == ["joined"] * 31 + ["queued"]
    assert store.counts() == {"queued": 1}
    fresh, how = store.submit("same", "h" * 64, "0.1.0", "text", 256, reuse=False)
    assert how == "queued" and fresh.id != answers[0][0]  # reuse off: always a new run


def test_defect_11_the_api_joins_the_job_in_flight(app_client: TestClient) -> None:
    ids = {
        app_client.post(
            "/v1/verifications", content=tiny_spec("join"), headers={**YAML, **AUTH}
        ).json()["id"]
        for _ in range(5)
    }
    assert len(ids) == 1
