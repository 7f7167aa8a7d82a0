"""First answer of ``/healthz`` after ``verifier serve`` is launched, over several launches.

Each launch is a fresh ``verifier serve`` (the console script's path,
:func:`verifier.cli_entry.main`; 1 worker, 2 validators, its own temp data folder) on
127.0.0.1. Measured from ``Popen``: the first ``/healthz`` 200, and the moment ``/healthz``
says every validator is ready (the first moment a POST is served without waiting). Baselines,
interleaved with the launches in the same run so both see the same load: ``python -c pass``
(the interpreter alone) and a bare FastAPI app with one ``/healthz`` route under uvicorn (the
least any Python HTTP server of this stack can do). ``first / bare`` is the overhead the
verifier adds to that floor. Bounded: ``--launches`` launches, each given ``--seconds`` at most.

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

BARE_APP = (
    "import sys, uvicorn\n"
    "from fastapi import FastAPI\n"
    "app = FastAPI()\n"
    "app.get('/healthz')(lambda: {'status': 'ok', 'validators': 0, 'validators_ready': 0})\n"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')\n"
)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _poll(
    proc: subprocess.Popen[bytes], port: int, start: float, seconds: float
) -> tuple[float, float]:
    """(first /healthz 200, every validator ready), seconds from ``start``; nan if never."""
    first = ready = float("nan")
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
    return first, ready


def launch(seconds: float) -> tuple[float, float]:
    """(seconds to the first /healthz answer, seconds until every validator is ready)."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_API_")}
        env["VERIFIER_API_VALIDATORS"] = "2"
        args = ["serve", "--port", str(port), "--data-dir", str(Path(tmp) / "data")]
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "verifier.cli_entry", *args, "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            return _poll(proc, port, start, seconds)
        finally:
            _stop(proc)


def bare(seconds: float) -> float:
    """Seconds to the first /healthz answer of a bare FastAPI app under uvicorn."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    try:
        return _poll(proc, port, start, seconds)[0]
    finally:
        _stop(proc)


def interpreter() -> float:
    """Seconds of ``python -c pass``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=180.0)
    args = parser.parse_args()
    firsts, readies, bares, passes = [], [], [], []
    print(
        f"{'launch':>6} {'python -c pass s':>16} {'bare uvicorn s':>14} "
        f"{'first /healthz s':>16} {'validators ready s':>18} {'first / bare':>12}"
    )
    for i in range(args.launches):
        passes.append(interpreter())
        bares.append(bare(args.seconds))
        first, ready = launch(args.seconds)
        firsts.append(first)
        readies.append(ready)
        print(
            f"{i + 1:>6} {passes[-1]:>16.2f} {bares[-1]:>14.2f} {first:>16.2f} {ready:>18.2f} "
            f"{first / bares[-1]:>12.2f}"
        )
    f_med, b_med = statistics.median(firsts), statistics.median(bares)
    print(
        f"median: first answer {f_med:.2f} s (max {max(firsts):.2f}); bare uvicorn app "
        f"{b_med:.2f} s; python -c pass {statistics.median(passes):.2f} s; validators ready "
        f"{statistics.median(readies):.2f} s; first / bare = {f_med / b_med:.2f}x; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
