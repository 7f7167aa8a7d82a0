"""One server per data folder: an exclusive ``flock`` on ``<data folder>/server.lock``.

The lock file records who holds it (pid, host name, where it serves, since when), so a second
server refuses to start naming the first, instead of re-queueing the first one's running jobs
as if their server had died. The kernel drops the lock when the holder's process ends, even on
``kill -9``, so a stale file never blocks a restart. A process takes a folder's lock once and
counts its holders (the CLI takes it before the app starts; the app's startup takes it again).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

LOCK_NAME = "server.lock"


class DataDirBusy(Exception):
    """Another process holds the data folder's lock."""


class DataDirUnusable(Exception):
    """The data folder cannot be created or written (read-only, no permission, a file)."""


_held: dict[Path, tuple[IO[str], int]] = {}  # resolved folder -> (locked file, holders)
_guard = threading.Lock()


def acquire(data_dir: Path, serving: str = "") -> Path:
    """Take (or take again) the lock of ``data_dir``; returns the folder's resolved path.

    Args:
        data_dir: the data folder (created if missing).
        serving: where the holder serves, for the message a second server prints.

    Raises:
        DataDirBusy: another process holds it; the message names the holder.
        DataDirUnusable: the folder or its lock file cannot be created or written.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        folder = data_dir.resolve()
    except OSError as exc:
        raise DataDirUnusable(f"cannot create the data folder {data_dir}: {exc.strerror}") from None
    with _guard:
        if folder in _held:
            handle, count = _held[folder]
            _held[folder] = (handle, count + 1)
            return folder
        path = folder / LOCK_NAME
        try:
            handle = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise DataDirUnusable(
                f"cannot write the data folder {folder}: {exc.strerror}; expected a folder "
                "this user may write"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise DataDirBusy(
                f"the data folder {folder} is in use by another server ({_describe(holder)}); "
                "stop it, or give this one another --data-dir"
            ) from None
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "serving": serving,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        except OSError as exc:
            handle.close()
            raise DataDirUnusable(f"cannot write {path}: {exc.strerror}") from None
        _held[folder] = (handle, 1)
        return folder


def release(folder: Path) -> None:
    """Give back one hold of ``folder`` (from :func:`acquire`); the last one unlocks it."""
    with _guard:
        if folder not in _held:
            return
        handle, count = _held[folder]
        if count > 1:
            _held[folder] = (handle, count - 1)
            return
        del _held[folder]
        handle.close()  # closing the descriptor drops the flock


def _describe(holder: str) -> str:
    """The lock file's record as words: ``pid 123 on host, serving 127.0.0.1:8000, since ...``."""
    try:
        data = json.loads(holder)
    except ValueError:
        return "holder unknown"
    if not isinstance(data, dict):
        return "holder unknown"
    parts = [f"pid {data.get('pid')} on {data.get('host')}"]
    if data.get("serving"):
        parts.append(f"serving {data['serving']}")
    if data.get("since"):
        parts.append(f"since {data['since']}")
    return ", ".join(parts)
