"""First answer of ``/healthz`` after ``verifier serve`` is launched, over several launches.

Each launch is a fresh ``verifier serve`` (1 worker, 2 validators, its own temp data folder) on
127.0.0.1. Measured from ``Popen``: the first ``/healthz`` 200 (the server answers before the
validators have imported the engine), and the moment ``/healthz`` says every validator is ready
(the first moment a POST is served without waiting). The baseline, in the same run, is that
second time: it is when the server used to answer at all, so ``ready / first`` is the speed-up
of the first answer. Bounded: ``--launches`` launches, each given ``--seconds`` at most.

    .venv/bin/python bench/startup_bench.py --launches 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.api.conftest import free_port


def launch(seconds: float) -> tuple[float, float]:
    """(seconds to the first /healthz answer, seconds until every validator is ready)."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_API_")}
        env["VERIFIER_API_VALIDATORS"] = "2"
        start = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from verifier.cli import main; main()",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(Path(tmp) / "data"),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        first = ready = float("nan")
        try:
            deadline = start + seconds
            while time.perf_counter() < deadline and proc.poll() is None:
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                except httpx.HTTPError:
                    time.sleep(0.02)
                    continue
                now = time.perf_counter() - start
                if first != first:  # nan: the first answer
                    first = now
                health = r.json()
                if health["validators_ready"] == health["validators"]:
                    ready = now
                    break
                time.sleep(0.05)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return first, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=180.0)
    args = parser.parse_args()
    firsts, readies = [], []
    print(f"{'launch':>6} {'first /healthz s':>17} {'validators ready s':>19}")
    for i in range(args.launches):
        first, ready = launch(args.seconds)
        firsts.append(first)
        readies.append(ready)
        print(f"{i + 1:>6} {first:>17.2f} {ready:>19.2f}")
    f_med, r_med = statistics.median(firsts), statistics.median(readies)
    print(
        f"median: first answer {f_med:.2f} s (max {max(firsts):.2f}), validators ready "
        f"{r_med:.2f} s; ready / first = {r_med / f_med:.1f}x"
    )


if __name__ == "__main__":
    main()
