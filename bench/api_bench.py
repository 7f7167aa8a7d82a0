"""Submission throughput and latency of ``POST /v1/verifications`` on loopback.

Starts ``verifier serve`` (1 worker, its own temp data folder) on 127.0.0.1, then at 1 and 16
concurrent clients submits tiny construction specs (N = 16, ``reuse=false``, so each is parsed,
preflighted and queued) and reports submissions/s and p50/p99 latency. The baseline, in the same
run, is ``GET /healthz`` at the same concurrency: the ratio is the cost of a submission over a
bare round trip. Bounded: at most ``--count`` requests and ``--seconds`` per measurement.

    .venv/bin/python bench/api_bench.py --count 300 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.api.conftest import Server, tiny_spec


async def measure(
    url: str, clients: int, count: int, seconds: float, post: bool
) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    counter = iter(range(count))
    errors = 0

    async def client(ac: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            if time.monotonic() > deadline:
                return
            start = time.perf_counter()
            if post:
                r = await ac.post(
                    "/v1/verifications",
                    content=tiny_spec(f"b{i}", n=16, seed=i),
                    params={"reuse": False},
                    headers={"Content-Type": "application/yaml"},
                )
                ok = r.status_code == 202
            else:
                ok = (await ac.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - start)
            errors += not ok

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as ac:
        await asyncio.gather(*[client(ac) for _ in range(clients)])
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {
        "n": len(latencies),
        "per_s": len(latencies) / wall,
        "p50_ms": q[49] * 1e3,
        "p99_ms": q[98] * 1e3,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), workers=1, env={"VERIFIER_API_MAX_QUEUED": "100000"})
        try:
            server.start()
            print(
                f"{'clients':>7} {'route':>14} {'n':>5} {'req/s':>8} {'p50 ms':>8} "
                f"{'p99 ms':>8} {'errors':>6}"
            )
            for clients in (1, 16):
                base = asyncio.run(measure(server.url, clients, args.count, args.seconds, False))
                sub = asyncio.run(measure(server.url, clients, args.count, args.seconds, True))
                for name, m in (("GET /healthz", base), ("POST spec", sub)):
                    print(
                        f"{clients:>7} {name:>14} {m['n']:>5.0f} {m['per_s']:>8.1f} "
                        f"{m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f} {m['errors']:>6.0f}"
                    )
                ratios = (
                    sub["per_s"] / base["per_s"],
                    sub["p50_ms"] / base["p50_ms"],
                    sub["p99_ms"] / base["p99_ms"],
                )
                print(
                    f"{clients:>7} {'ratio':>14} {'':>5} {ratios[0]:>8.2f} {ratios[1]:>8.2f} "
                    f"{ratios[2]:>8.2f}"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
