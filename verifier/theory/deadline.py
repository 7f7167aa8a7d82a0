"""A wall-clock deadline for a sympy call (SIGALRM), so one limit cannot hold a worker."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Timeout(Exception):
    """The deadline passed."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Timeout` after ``seconds`` (SIGALRM, main thread only; else no-op)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
