"""Fixtures for the API tests: spec texts, and a real ``verifier serve`` on 127.0.0.1.

Server subprocesses are always killed (``finally``), and every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TOKEN = "test-token-7f3a"
TERMINAL = {"passed", "failed", "error", "cancelled", "interrupted"}


def tiny_spec(
    name: str, n: int = 32, seed: int = 0, code_dim: str = "auto", expect: str = "{accuracy: 1.0}"
) -> str:
    """A construction spec that runs in well under a second."""
    return (
        f"name: {name}\n"
        f"instance: {{kind: bijection, entities: {n}, relations: 2, seed: {seed}}}\n"
        "claims:\n"
        "  - id: exact\n"
        "    check: construction\n"
        f"    construction: {{name: geometric, codebook: rademacher, code_dim: {code_dim}, "
        "margin: 0.5}\n"
        f"    expect: {expect}\n"
    )


def long_spec(name: str, points: int = 4) -> str:
    """A deliberately long job: training runs that cannot stop early (SGD at lr 1e-6 never
    reaches exact recall), about 3000 steps a point, reporting progress (and so reading the
    cancel flag) every 30 steps."""
    return (
        f"name: {name}\n"
        "instance: {kind: bijection, entities: 256, relations: 4, seed: 1}\n"
        "claims:\n"
        "  - id: slow-training\n"
        "    check: training\n"
        "    model: {d_model: 16, d_mlp: 64, heads: 1}\n"
        "    optim: {optimizer: sgd, lr: 1e-6, steps: 3000}\n"
        f"    sweep: {{seed: {list(range(points))}}}\n"
        "    expect: {accuracy: 1.0}\n"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``verifier serve`` in a subprocess on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        workers: int = 2,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        cwd: Path | None = None,
    ):
        self.data_dir = data_dir
        self.workers = workers
        self.env = env or {}
        self.args = args  # more `verifier serve` options (``--executor ray`` ...)
        self.cwd = cwd  # the server's working directory (default: the tests')
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300.0) -> Server:  # a loaded 2-core box is slow to import
        self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_API_")}
        env.update(self.env)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from verifier.cli_entry import main; main()",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--workers",
                    str(self.workers),
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:  # answered, and warm: every validator has imported the engine
                r = httpx.get(f"{self.url}/healthz", timeout=2)
                if r.status_code == 200 and r.json()["validators_ready"] == r.json()["validators"]:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout} s: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the integration and hostile-input tests (token required for writes)."""
    srv = Server(
        tmp_path_factory.mktemp("api-server"),
        workers=2,
        env={
            "VERIFIER_API_TOKEN": TOKEN,
            "VERIFIER_API_KILL_GRACE_S": "30",
            "VERIFIER_API_MAX_BODY_BYTES": "65536",
        },
    )
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    """An httpx client carrying the token."""
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as c:
        yield c


def wait_for(
    client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 60.0, pred: Any = None
) -> dict[str, Any]:
    """Poll a job until its status is in ``statuses`` (and ``pred(job)``), bounded in time."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/verifications/{job_id}").json()
        if job.get("status") in statuses and (pred is None or pred(job)):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not in {statuses} after {timeout} s: {job}")


def submit(client: httpx.Client, text: str, reuse: bool = False) -> httpx.Response:
    """POST a YAML spec."""
    return client.post(
        "/v1/verifications",
        content=text,
        params={"reuse": reuse},
        headers={"Content-Type": "application/yaml"},
    )
