"""The service on Ray: a local Ray head (2 CPUs, started here) and a real ``verifier serve
--executor ray`` against it.

The same specs through the local service (the session's ``server``) give the reference: the
Ray path must give the same reports and the same figures. Then the faults: a ``DELETE``
mid-sweep cancels the job's Ray tasks (the cluster's CPUs come back), a Ray worker killed with
SIGKILL is retried, a task killed past its retries ends the job ``interrupted`` with the
reason, and a killed server's job is re-queued by the next one and completes. Every Ray
process here descends from this test process (``ray.init`` started the head), so killing one
never touches another session's cluster, and the head goes down with ``ray.shutdown``.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import TERMINAL, TOKEN, Server, long_spec, submit, tiny_spec, wait_for
from tests.api.test_integration import parse_sse
from tests.conftest import ROOT
from tests.verifier.test_executors import SPEC as SWEEP_SPEC

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'verifier[ray]')")

pytestmark = pytest.mark.integration

TRAINING_SPEC = (ROOT / "specs" / "training" / "multi_hop.spec.yaml").read_text()
TASK_TITLE = b"ray::verify_task"  # the process title of a Ray worker running a task
RETRIES = 1


def retry_spec(name: str, steps: int = 600) -> str:
    """One training point that cannot stop early: seconds of SGD steps (a few on a fast idle
    machine, 10 on a busy one), so a test can find its Ray worker and kill it mid-task."""
    return long_spec(name, points=1).replace("steps: 3000", f"steps: {steps}")


def comparable(job: dict[str, Any]) -> dict[str, Any]:
    """A job's report without wall times, the one field allowed to differ between executors."""
    report = dict(job["report"])
    report.pop("duration_s")
    report["results"] = [
        {k: v for k, v in r.items() if k != "duration_s"} for r in report["results"]
    ]
    return report


def figures(client: httpx.Client, job_id: str) -> list[str]:
    """The plots of a job's report page (base64 PNGs with their captions)."""
    page = client.get(f"/v1/verifications/{job_id}/report").text
    return re.findall(r"<figure>.*?</figure>", page, re.S)


def descends_from_me(pid: int) -> bool:
    """Whether ``pid`` is a descendant of this test process."""
    me = os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(") ", 1)[1].split()[1])
        if pid == me:
            return True
    return False


def task_pids() -> set[int]:
    """Ray worker processes of this test's cluster that are running a verification task."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(TASK_TITLE) and descends_from_me(int(entry.name)):
            found.add(int(entry.name))
    return found


def wait_until(pred: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``pred`` until it returns something true, bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not {what} after {timeout} s")


def free_cpus() -> float:
    """CPUs of the cluster no task holds."""
    return float(ray.available_resources().get("CPU", 0.0))


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A local Ray head with 2 CPUs, owned by this process; its GCS address.

    Its workers run at the priority of every other process here (Ray's default is nice 15),
    so that on a machine shared with other work the tasks are not starved.
    """
    if ray.is_initialized():
        ray.shutdown()
    context = ray.init(
        address="local",  # a new head, never another one found on this machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 2**20,
        _system_config={"worker_niceness": 0},
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def ray_server_for(data_dir: Path, address: str, cache_dir: Path) -> Server:
    return Server(
        data_dir,
        workers=1,
        env={
            "VERIFIER_API_RAY_TASK_RETRIES": str(RETRIES),
            "VERIFIER_API_KILL_GRACE_S": "30",
            "VERIFIER_MAX_ENTITIES": "4096",  # the API's own limit (the nodes have the default)
        },
        args=("--executor", "ray", "--ray-address", address, "--cache-dir", str(cache_dir)),
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifacts folder every Ray node reads (here one node, so any local folder)."""
    return tmp_path_factory.mktemp("shared-artifacts")


@pytest.fixture(scope="module")
def ray_server(
    ray_head: str, shared: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = ray_server_for(tmp_path_factory.mktemp("ray-api"), ray_head, shared)
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture
def rc(ray_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ray_server.url, timeout=30) as c:
        yield c


SPECS = {
    "sweep": SWEEP_SPEC,
    "training": TRAINING_SPEC,
    "retry": retry_spec("ray-retry"),
    "restart": retry_spec("ray-restart", steps=700),  # its own checkpoint key
}
Reference = Callable[[str], tuple[dict[str, Any], list[str]]]


@pytest.fixture(scope="module")
def local(server: Server) -> Iterator[Reference]:
    """The reference: every spec through the local service, submitted at once; ``local(name)``
    waits for one and gives its job and figures."""
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as c:
        ids = {name: submit(c, text).json()["id"] for name, text in SPECS.items()}
        done: dict[str, tuple[dict[str, Any], list[str]]] = {}

        def reference(name: str) -> tuple[dict[str, Any], list[str]]:
            if name not in done:
                job = wait_for(c, ids[name], TERMINAL, timeout=180)
                done[name] = job, figures(c, ids[name])
            return done[name]

        yield reference


def test_sweep_and_training_on_ray_match_the_local_service(
    rc: httpx.Client, local: Reference, shared: Path, ray_server: Server
) -> None:
    for name in ("sweep", "training"):
        job = submit(rc, SPECS[name]).json()
        with rc.stream("GET", f"/v1/verifications/{job['id']}/events", timeout=180) as r:
            events = parse_sse("".join(r.iter_text()))
        done = rc.get(f"/v1/verifications/{job['id']}").json()
        ref, ref_figures = local(name)
        assert done["status"] == ref["status"] != "error", done["message"]
        assert comparable(done) == comparable(ref), name
        assert figures(rc, job["id"]) == ref_figures, name
        assert ref_figures or name == "training"  # a sweep over a flag has nothing to plot
        # progress streamed from the Ray tasks: each point's completion, and (training) what the
        # check reported while it ran inside its task
        progress = [e[2] for e in events if e[1] == "progress"]
        keys = [r["key"] for r in done["report"]["results"] if not r["key"].endswith("[growth]")]
        n = len(keys)
        assert [p["message"] for p in progress if "points done" in p["message"]] == [
            f"{i}/{n} points done" for i in range(1, n + 1)
        ]
        assert {p["key"] for p in progress} <= set(keys)
        assert progress[-1]["progress"] == 1.0
        if name == "training":
            inside = [p for p in progress if "points done" not in p["message"]]
            assert inside and all(p["key"] in keys for p in inside), progress
            # the checkpoints went to the configured shared folder, not the API's disk
            for r in done["report"]["results"]:
                assert (shared / "training" / f"{r['evidence']['checkpoint']}.pt").is_file()
            assert not list(ray_server.data_dir.rglob("*.pt"))
    wait_until(lambda: not task_pids(), "the task workers idle", timeout=10)


def test_an_oversized_spec_is_refused_in_the_api(rc: httpx.Client) -> None:
    before = rc.get("/v1/verifications").json()["total"]
    r = submit(rc, tiny_spec("too-big", n=8192))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "limit_exceeded" and body["limit"] == "max_entities", body
    assert "4,096" in body["message"]
    # nothing was queued, so nothing reached the cluster
    assert rc.get("/v1/verifications").json()["total"] == before
    assert not task_pids() and free_cpus() == 2


def kill_running_task(seen: set[int]) -> int:
    """SIGKILL the Ray worker running a task (the one task of this job, its worker not in
    ``seen``) as soon as it runs: its process title says so."""
    [pid] = wait_until(lambda: task_pids() - seen, "a task running")
    os.kill(pid, signal.SIGKILL)
    seen.add(pid)
    return pid


def test_a_killed_ray_worker_is_retried_and_the_job_completes(
    rc: httpx.Client, local: Reference
) -> None:
    job = submit(rc, SPECS["retry"]).json()
    seen: set[int] = set()
    kill_running_task(seen)
    wait_until(lambda: task_pids() - seen, "the task retried on another worker")
    done = wait_for(rc, job["id"], TERMINAL, timeout=120)
    assert done["attempts"] == 1  # Ray re-ran the task; the job itself was never re-queued
    assert comparable(done) == comparable(local("retry")[0])


def test_a_task_killed_past_its_retries_interrupts_the_job(rc: httpx.Client) -> None:
    job = submit(rc, retry_spec("ray-lost", steps=3000)).json()
    seen: set[int] = set()
    for _ in range(RETRIES + 1):
        kill_running_task(seen)
    done = wait_for(rc, job["id"], TERMINAL, timeout=60)
    assert done["status"] == "interrupted", done
    assert done["message"].startswith(
        "the Ray task of slow-training[seed=0] was lost after 1 retry (ray_task_retries = 1): "
        "WorkerCrashedError: "
    ), done["message"]
    assert done["report"] is None
    wait_until(lambda: free_cpus() == 2, "the cluster idle")


def test_delete_mid_sweep_cancels_the_outstanding_ray_tasks(rc: httpx.Client) -> None:
    job = submit(rc, long_spec("ray-cancel-me", points=4)).json()  # minutes of training
    wait_for(rc, job["id"], {"running"}, pred=lambda j: j["progress"]["fraction"] > 0)
    running = wait_until(lambda: task_pids() if free_cpus() == 0 else None, "2 tasks running")
    assert len(running) == 2  # 2 of the 4 points run, 2 wait for a CPU
    assert rc.delete(f"/v1/verifications/{job['id']}").status_code == 202
    done = wait_for(rc, job["id"], TERMINAL, timeout=30)
    assert done["status"] == "cancelled" and done["message"] == "cancelled by request"
    assert done["report"] is None
    wait_until(lambda: free_cpus() == 2 and not task_pids(), "every task ended", timeout=20)


def test_a_killed_server_leaves_no_ray_task_and_its_job_is_requeued(
    ray_server: Server, ray_head: str, shared: Path, local: Reference
) -> None:
    """Runs last: it kills the module's server, then a new one takes over its data folder."""
    with httpx.Client(base_url=ray_server.url, timeout=30) as c:
        job = submit(c, SPECS["restart"]).json()
        # a new Ray worker process for the task: seconds idle, more on a loaded 2-core machine
        wait_until(task_pids, "the job's task running on the cluster", timeout=180)
        accepted = {
            j["id"] for j in c.get("/v1/verifications", params={"limit": 100}).json()["items"]
        }
    ray_server.kill9()
    wait_until(lambda: free_cpus() == 2 and not task_pids(), "the dead driver's tasks ended")
    second = ray_server_for(ray_server.data_dir, ray_head, shared)
    try:
        second.start()
        with httpx.Client(base_url=second.url, timeout=30) as c:
            after = c.get(f"/v1/verifications/{job['id']}").json()
            assert after["status"] in ("queued", "running"), after
            done = wait_for(c, job["id"], TERMINAL, timeout=120)
            jobs = c.get("/v1/verifications", params={"limit": 100}).json()["items"]
        assert done["attempts"] == 2
        assert comparable(done) == comparable(local("restart")[0])
        # no accepted job was lost: every job of the data folder is there, and finished
        assert {j["id"] for j in jobs} == accepted and {j["status"] for j in jobs} <= TERMINAL
    finally:
        second.stop()
