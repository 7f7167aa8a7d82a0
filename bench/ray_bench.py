"""One sweep job through the service: the local worker pool against Ray on the same cores.

Starts a local Ray head (``--cpus`` CPUs, default 2, in this process) and three ``verifier
serve`` processes on 127.0.0.1:

- ``local``: ``--workers 1``; the job runs in its worker, torch on every core (cpus // workers
  threads, the service's default split);
- ``local 1t``: ``--workers 2``; the job runs in one worker with one thread (what a Ray task
  gets), the other worker idles;
- ``ray``: ``--executor ray --workers 1``; the worker is a Ray driver, one 1-CPU task per point.

Each job is submitted over HTTP (``reuse=false``) and polled until it ends:

- ``sweep``: sweep_bench's 32-point construction sweep (an exact code_dim search and a float64
  forward pass over all N*R facts per point), the work a user sends;
- ``tiny``: ``--tiny`` points whose check takes milliseconds (one-hot codes, N = 8), so their
  time is mostly the path's own cost.

Reported per job: the client's wall time (POST to verdict), the server's run time
(``started_at`` to ``finished_at``), and the overhead per point: the time each CPU spends per
point (run time x CPUs / points; the local worker runs points one after another, so its CPUs
count 1) less the point's own check time (its ``duration_s``). On Ray that is the task's cost:
scheduling, the task re-loading the spec, and the round trips to the driver. Every Ray report
must equal the local one (wall times aside). The first round pays the Ray workers' start-up
(a fresh interpreter importing torch); later rounds reuse warm workers. Ray's workers run at
nice 0 here, like the local worker (Ray's default is nice 15, which on a machine shared with
other work would slow only Ray).

    .venv/bin/python bench/ray_bench.py [--repeats 2] [--tiny 64] [--cpus 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.sweep_bench import SIZES
from bench.sweep_bench import SPEC as SWEEP_SPEC
from tests.api.conftest import TERMINAL, Server, submit

TINY_SPEC = """\
name: ray-bench-tiny
instance: {{kind: bijection, entities: 8, relations: 1, seed: 0}}
claims:
  - id: tiny
    check: construction
    construction: {{name: geometric, codebook: onehot}}
    sweep: {{seed: [{seeds}]}}
    expect: {{accuracy: 1.0}}
"""


def run_job(client: httpx.Client, text: str) -> tuple[float, float, dict[str, Any]]:
    """Client wall time, server run time, and the finished job."""
    start = time.perf_counter()
    job = submit(client, text).json()
    while job["status"] not in TERMINAL:
        time.sleep(0.02)
        job = client.get(f"/v1/verifications/{job['id']}").json()
    wall = time.perf_counter() - start
    ran = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    if job["status"] != "passed":
        raise SystemExit(f"expected a passing job, got {job['status']}: {job['message']}")
    return wall, ran.total_seconds(), job


def overhead_ms(job: dict[str, Any], run_s: float, cpus: int) -> float:
    """Per point: time a CPU spent on it beyond its check's own ``duration_s``, in ms."""
    results = [r for r in job["report"]["results"] if not r["key"].endswith("[growth]")]
    mean_check = sum(r["duration_s"] for r in results) / len(results)
    return (run_s * cpus / len(results) - mean_check) * 1000


def comparable(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "duration_s"} for r in job["report"]["results"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", type=int, default=64, help="points of the tiny sweep")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray head")
    args = parser.parse_args()
    import ray

    context = ray.init(
        address="local",  # a new head, never another one found on this machine
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 2**20,
        _system_config={"worker_niceness": 0},
    )
    specs = {
        "sweep": SWEEP_SPEC.format(sizes=SIZES),
        "tiny": TINY_SPEC.format(seeds=", ".join(str(i) for i in range(args.tiny))),
    }
    points = {"sweep": 32, "tiny": args.tiny}
    with tempfile.TemporaryDirectory() as tmp:
        address = context.address_info["gcs_address"]
        servers = {
            "local": Server(Path(tmp, "local"), workers=1),
            "local 1t": Server(Path(tmp, "local-1t"), workers=2),
            "ray": Server(
                Path(tmp, "ray"), workers=1, args=("--executor", "ray", "--ray-address", address)
            ),
        }
        try:
            for server in servers.values():
                server.start()
            clients = {k: httpx.Client(base_url=s.url, timeout=60) for k, s in servers.items()}
            time.sleep(5)  # both workers have loaded the engine (and joined the cluster)
            cores = os.cpu_count() or 1
            print(f"{cores} cores, Ray head with {args.cpus} CPUs, load {os.getloadavg()[0]:.2f}")
            for i in range(args.repeats):
                for name, text in specs.items():
                    got = {k: run_job(c, text) for k, c in clients.items()}
                    if len({str(comparable(job)) for _, _, job in got.values()}) != 1:
                        raise SystemExit(f"{name}: the reports differ between executors")
                    cells = []
                    for kind, (wall, run, job) in got.items():
                        cpus = args.cpus if kind == "ray" else 1
                        cells.append(
                            f"{kind}: {wall:6.2f} s wall, {run:6.2f} s run, "
                            f"{overhead_ms(job, run, cpus):6.1f} ms/point over"
                        )
                    ratio = got["local"][0] / got["ray"][0]
                    print(
                        f"round {i} {name:5} {points[name]:3} points | {' | '.join(cells)} | "
                        f"local/ray {ratio:.2f}x | load {os.getloadavg()[0]:.2f}"
                    )
            for c in clients.values():
                c.close()
        finally:
            for server in servers.values():
                server.stop()
            ray.shutdown()


if __name__ == "__main__":
    main()
