"""Fixtures for the hostile corpus: a live server in a folder of its own, and a file snapshot.

The server runs with its working directory, ``HOME`` and ``TMPDIR`` inside one temporary
folder, so anything it writes outside its data folder shows up in :func:`snapshot`.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import TERMINAL, TOKEN, Server, tiny_spec, wait_for

CASE_LIMIT_S = 30.0  # per case, for either door: a hang fails its case, never the suite
BASIC = "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (but ``skip``) with its size and mtime."""
    files: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in filenames:
            stat = (here / name).stat()
            files[str((here / name).relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return files


class HostileServer:
    """The live server the corpus and schemathesis run against, and where it may write."""

    def __init__(self, server: Server, root: Path, job_id: str, first_post_s: float) -> None:
        self.server = server
        self.root = root
        self.job_id = job_id  # a finished job, for cases that need one
        self.first_post_s = first_post_s  # the first POST's latency, /healthz having answered

    def api_libraries(self) -> set[str]:
        """Shared libraries mapped into the API process (not its workers or validators)."""
        assert self.server.proc is not None
        maps = Path(f"/proc/{self.server.proc.pid}/maps").read_text()
        return {line.split()[-1] for line in maps.splitlines() if line.endswith(".so")}

    @property
    def url(self) -> str:
        return self.server.url

    def outside_data(self) -> dict[str, tuple[int, int]]:
        """Files the server could have written outside its data folder."""
        return snapshot(self.root, skip=self.server.data_dir)


@pytest.fixture(scope="session")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    """A token-guarded server with 2 workers, its files confined to one folder."""
    root = tmp_path_factory.mktemp("hostile-server")
    for sub in ("home", "tmp"):
        (root / sub).mkdir()
    srv = Server(
        root / "data",
        workers=2,
        env={
            "VERIFIER_API_TOKEN": TOKEN,
            "VERIFIER_API_MAX_BODY_BYTES": "65536",
            "VERIFIER_API_BODY_IDLE_S": "2",  # test_round_three's body that never finishes
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "MPLCONFIGDIR": str(root / "home" / "mpl"),
        },
        cwd=root,
    )
    try:
        srv.start(timeout=300)
        with httpx.Client(
            base_url=srv.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as c:
            start = time.perf_counter()
            r = c.post(
                "/v1/verifications",
                content=tiny_spec("hostile-fixture"),
                params={"reuse": False},
                headers={"Content-Type": "application/yaml"},
            )
            first_post_s = time.perf_counter() - start
            assert r.status_code == 202, r.text
            job = wait_for(c, r.json()["id"], TERMINAL, timeout=120)
            assert job["status"] == "passed", job
        yield HostileServer(srv, root, job["id"], first_post_s)
    finally:
        srv.stop()
