"""HiGHS prints a copyright banner on the process's stdout (file descriptor 1, from C++) the
first time a ``highspy.Highs`` object is made, before any ``output_flag`` option can be set.
:func:`silence_banner` makes that first object with descriptor 1 pointed at the null device, so
that no later one (ours in :mod:`verifier.convex.reembed`, or cvxpy's) prints it on the
verifier's output.
"""

from __future__ import annotations

import os
import sys
import threading

import highspy

_lock = threading.Lock()
_done = False


def silence_banner() -> None:
    """Make the process's first ``highspy.Highs`` with stdout muted (idempotent, thread-safe)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:  # no descriptor 1 (a detached process): nothing to print on
            highspy.Highs()  # type: ignore[no-untyped-call]
            _done = True
            return
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, 1)
                highspy.Highs()  # type: ignore[no-untyped-call]
            finally:
                os.dup2(saved, 1)
                os.close(null)
        finally:
            os.close(saved)
        _done = True
