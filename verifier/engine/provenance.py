"""What decided a report's numbers, recorded with it (:class:`~verifier.engine.report.Provenance`).

float32 training depends on the CPU, the thread count and the summation order, and every
result on the library versions, so a report records them: the verifier's and the numeric
libraries' versions, the device (``VERIFIER_DEVICE`` resolved, with the card's name on CUDA),
the CPU model, ``VERIFIER_TRAIN_THREADS`` and ``VERIFIER_TRAIN_ORDER``, and the git commit of the
spec's working tree with whether it had uncommitted changes. The host name is recorded only when
the user opts in (``VERIFIER_PROVENANCE_HOST=1``, or ``verifier check --provenance-host``).

Nothing here fails a run: a missing package, no git, a git that hangs (a short timeout) or a
device that cannot be resolved leave their field empty or say why.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from verifier import __version__
from verifier.device import DEVICE_VAR, resolve_device
from verifier.engine.report import Provenance
from verifier.errors import VerifierError

# the names verifier.train.loop reads (not imported: the engine's key must not cover training)
TRAIN_THREADS_VAR = "VERIFIER_TRAIN_THREADS"
TRAIN_ORDER_VAR = "VERIFIER_TRAIN_ORDER"
HOST_VAR = "VERIFIER_PROVENANCE_HOST"  # 1, true or yes: record the host name
GIT_TIMEOUT_S = 5.0
LIBRARIES = ("torch", "numpy", "scipy", "cvxpy", "sympy")
_YES = ("1", "true", "yes", "on")


def package_version(name: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def device_text() -> str:
    """``cpu``, or ``cuda (<card name>)``; an unusable ``VERIFIER_DEVICE`` is named as such."""
    try:
        device = resolve_device()
    except VerifierError as exc:
        return f"unresolved: {exc}"
    if device.type != "cuda":
        return device.type
    import torch

    return f"cuda ({torch.cuda.get_device_name(device)})"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _non_negative(var: str, default: int) -> int:
    """An integer environment setting as given, or its default when unset or not an integer
    (the training code refuses such a value with its own error)."""
    raw = os.environ.get(var, "").strip()
    return int(raw) if raw.isdigit() else default


def _git(folder: Path, *args: str) -> str | None:
    """``git -C folder ARGS`` output, or None (no git, not a repository, an error, a time-out)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(spec_file: str) -> tuple[str | None, bool | None]:
    """The commit of the working tree holding ``spec_file``, and whether it is dirty: a tracked
    file changed, or the spec itself not committed. ``(None, None)`` outside a repository."""
    path = Path(spec_file)
    if not spec_file or not path.exists():
        return None, None
    folder = path if path.is_dir() else path.parent
    commit = _git(folder, "rev-parse", "HEAD")
    if not commit:
        return None, None
    changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
    spec_committed = _git(folder, "ls-files", "--error-unmatch", "--", path.name or ".")
    spec_changed = _git(folder, "status", "--porcelain", "--", path.name or ".")
    if changes is None:
        return commit, None
    dirty = bool(changes) or spec_committed is None or bool(spec_changed)
    return commit, dirty


def host_opted_in() -> bool:
    """Whether ``VERIFIER_PROVENANCE_HOST`` asks for the host name."""
    return os.environ.get(HOST_VAR, "").strip().lower() in _YES


def collect(spec_file: str = "") -> Provenance:
    """The provenance of a run of the spec at ``spec_file`` ("" or ``<text>``: no git state)."""
    commit, dirty = git_state(spec_file)
    versions = {name: package_version(name) for name in LIBRARIES}
    return Provenance(
        verifier=__version__,
        python=platform.python_version(),
        **versions,
        device=device_text(),
        cpu=cpu_model(),
        train_threads=_non_negative(TRAIN_THREADS_VAR, 1),
        train_order=_non_negative(TRAIN_ORDER_VAR, 0),
        git_commit=commit,
        git_dirty=dirty,
        host=socket.gethostname() if host_opted_in() else None,
        platform=platform.platform(),
        environment={
            v: os.environ[v]
            for v in (DEVICE_VAR, TRAIN_THREADS_VAR, TRAIN_ORDER_VAR)
            if v in os.environ
        },
    )
