"""Two latency figures of the hardening: ``/healthz`` while hostile formulas are refused, and
the first POST on a fresh server.

1. Refusal in-process: ``parse_formula`` on each exponent bomb (best of 5).
2. ``/healthz`` on a warm server (1 worker, 1 validator): alone, then while ``--bombers``
   clients (1, then 8) POST ``margin: ">= (2/3)**(10**8)"`` back to back for ``--seconds``:
   p50, p99 and max of the probes, and how many bombs were refused (422). Before the fix, one
   such POST left every route unanswered for about 100 s.
3. Cold start, ``--starts`` times each: a fresh server (new data folder), then as soon as
   ``/healthz`` answers, one POST (its latency), or 32 concurrent POSTs (p50 and max), then the
   same once more on the now warm server. Before the fix the first POST imported torch into
   the API process: 5.8 s p50 over 32 clients.

    .venv/bin/python bench/hardening_bench.py --starts 3 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.api.conftest import Server, tiny_spec
from tests.hostile.corpus import margin
from verifier.errors import FormulaError
from verifier.spec.formulas import parse_formula

BOMBS = ("(2/3)**(10**8)", "(2/3)**(10**12)", "(1/3)**(10**5)", "(2*N)**(10**8)", "9**9**9")
YAML = {"Content-Type": "application/yaml"}


def refusal_times() -> None:
    print("formula                 refused in (us, best of 5)")
    for text in BOMBS:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            with contextlib.suppress(FormulaError):  # every bomb is refused
                parse_formula(text)
            best = min(best, time.perf_counter() - start)
        print(f"{text:<23} {best * 1e6:>10.0f}")


def quantiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return f"p50 {q[49] * 1e3:7.1f} ms  p99 {q[98] * 1e3:7.1f} ms  max {max(values) * 1e3:7.1f} ms"


def probe_healthz(url: str, seconds: float, stop: threading.Event | None = None) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=120) as c:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            start = time.perf_counter()
            c.get("/healthz").raise_for_status()
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
    return latencies


def healthz_under_bombs(url: str, bombers: int, seconds: float) -> None:
    bomb = margin(">= (2/3)**(10**8)")
    refused: list[float] = []
    others: list[int] = []
    stop = threading.Event()

    def bomber() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            while not stop.is_set():
                start = time.perf_counter()
                r = c.post("/v1/verifications", content=bomb, headers=YAML)
                if r.status_code == 422 and "exponent" in r.text:
                    refused.append(time.perf_counter() - start)
                else:
                    others.append(r.status_code)

    threads = [threading.Thread(target=bomber) for _ in range(bombers)]
    for t in threads:
        t.start()
    try:
        busy = probe_healthz(url, seconds)
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    print(
        f"/healthz with {bombers} clients posting (2/3)**(10**8) ({len(busy)} probes): "
        f"{quantiles(busy)}"
    )
    print(
        f"bombs refused: {len(refused)} (422), other answers: {len(others)}; bomb POST: "
        f"{quantiles(refused)}"
    )


async def first_posts(url: str, clients: int) -> list[float]:
    async def one(ac: httpx.AsyncClient, i: int) -> float:
        start = time.perf_counter()
        r = await ac.post(
            "/v1/verifications",
            content=tiny_spec(f"cold-{i}", n=16, seed=i),
            params={"reuse": False},
            headers=YAML,
        )
        r.raise_for_status()
        return time.perf_counter() - start

    async with httpx.AsyncClient(base_url=url, timeout=120) as ac:
        return list(await asyncio.gather(*[one(ac, i) for i in range(clients)]))


def cold_starts(starts: int) -> None:
    for clients in (1, 32):
        for k in range(starts):
            with tempfile.TemporaryDirectory() as tmp:
                server = Server(Path(tmp), workers=1, env={"VERIFIER_API_MAX_QUEUED": "1000"})
                began = time.perf_counter()
                try:
                    server.start(timeout=600)
                    up = time.perf_counter() - began
                    cold = asyncio.run(first_posts(server.url, clients))
                    warm = asyncio.run(first_posts(server.url, clients))  # the same, once more
                finally:
                    server.stop()
            print(
                f"fresh server {k + 1}: /healthz after {up:5.1f} s; x{clients}: first "
                f"{shown(cold)}; again {shown(warm)}"
            )


def shown(latencies: list[float]) -> str:
    """One latency, or the p50 and max of several."""
    if len(latencies) == 1:
        return f"{latencies[0] * 1e3:.0f} ms"
    return f"p50 {statistics.median(latencies) * 1e3:.0f} ms, max {max(latencies) * 1e3:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="fresh servers per cold-start case")
    parser.add_argument("--seconds", type=float, default=10.0, help="bombing time")
    parser.add_argument(
        "--bombers", type=int, nargs="+", default=[1, 8], help="clients posting bombs"
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    refusal_times()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), workers=1)
        try:
            server.start(timeout=600)
            alone = probe_healthz(server.url, min(args.seconds, 5.0))
            print(f"/healthz alone ({len(alone)} probes): {quantiles(alone)}")
            for bombers in args.bombers:
                healthz_under_bombs(server.url, bombers, args.seconds)
        finally:
            server.stop()
    cold_starts(args.starts)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
