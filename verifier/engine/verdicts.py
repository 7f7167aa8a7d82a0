"""The verdict cache: a claim point whose inputs and code are unchanged reuses its result.

:func:`point_key` is sha256 over canonical JSON of everything a point's verdict depends on:

- the claim as validated, with the point's sweep values substituted (its ``description``
  aside: prose does not change a verdict), and the instance at the point;
- the keys of the claim points it depends on, so a changed dependency changes its dependents;
- the engine key of its check kind (:func:`verifier.codekey.engine_key`: the source its
  verdict can reach, and the versions of Python and the numeric libraries);
- the device type (:func:`verifier.device.device_type`: ``VERIFIER_DEVICE=auto`` resolves per
  machine, and float results differ between a CPU and a GPU);
- the limits, and every ``VERIFIER_*`` environment variable but the HTTP service's own
  (``VERIFIER_API_*``): the solver time limit and so on. The trainer's settings
  (``VERIFIER_TRAIN_*``: thread count, example order) count only for the kinds whose import
  closure holds the trainer (training, transfer), and through them for their dependents; a
  bound or construction claim cannot read them.

A :class:`VerdictStore` keeps one JSON file per key in ``<cache dir>/verdicts/``, beside the
training checkpoints, written atomically (a temporary file, then a rename), so concurrent
workers and interrupted runs never leave a torn entry; an unreadable entry is a miss. Only
final verdicts are stored: ``passed``, ``failed``, ``xfailed``, ``xpassed``. An ``error`` or an
``undecided`` result (a solver that ran out of time can decide next run) is always re-run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from verifier.cache_folder import ignore_in_git
from verifier.codekey import KEY_FORMAT, engine_key, kind_modules
from verifier.device import device_type
from verifier.engine.report import ClaimResult

log = logging.getLogger(__name__)

FINAL_STATUSES: frozenset[str] = frozenset({"passed", "failed", "xfailed", "xpassed"})
ENV_PREFIX, ENV_EXCLUDED = "VERIFIER_", "VERIFIER_API_"
TRAINER_ENV = "VERIFIER_TRAIN_"
# joined, not a literal: verifier.codekey reads a string naming a module as an import of it
TRAINER_MODULE = ".".join(("verifier", "train"))
FOLDER = "verdicts"  # under the cache dir, beside training/


def environment(kind: str | None = None) -> dict[str, str]:
    """The ``VERIFIER_*`` settings of this process that can change a verdict of ``kind``
    (None or an unknown kind: every one)."""
    modules = None if kind is None else kind_modules(kind)
    trains = modules is None or TRAINER_MODULE in modules
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith(ENV_PREFIX)
        and not k.startswith(ENV_EXCLUDED)
        and (trains or not k.startswith(TRAINER_ENV))
    }


def point_key(
    kind: str,
    claim: dict[str, Any],
    instance: dict[str, Any],
    dependencies: Mapping[str, str],
    limits: dict[str, Any],
    engine: str,
) -> str:
    """sha256 of a claim point's verdict inputs (canonical JSON; see the module docstring)."""
    payload = {
        "format": KEY_FORMAT,
        "kind": kind,
        "claim": {k: v for k, v in claim.items() if k != "description"},
        "instance": instance,
        "dependencies": dict(sorted(dependencies.items())),
        "limits": limits,
        "environment": environment(kind),
        "device": device_type(),
        "engine": engine,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StoredVerdict:
    """A stored result, the formula symbols its measurement set, and when it was verified."""

    result: ClaimResult
    verified_at: str
    symbols: dict[str, float] = field(default_factory=dict)


@dataclass
class VerdictStore:
    """Stored verdicts under ``<folder>/verdicts``.

    Attributes:
        folder: the cache dir (the one that holds ``training/``).
        read: reuse stored verdicts; False re-verifies every point and still writes.
        root: the package folder whose source keys the verdicts (tests use an edited copy).
    """

    folder: str
    read: bool = True
    root: Path | None = None

    def engine(self, kind: str) -> str | None:
        """The engine key of ``kind`` (None: never reused)."""
        return engine_key(kind) if self.root is None else engine_key(kind, self.root)

    def path(self, key: str) -> Path:
        """Where the verdict with this key lives."""
        return Path(self.folder) / FOLDER / key[:2] / f"{key}.json"

    def get(self, key: str) -> StoredVerdict | None:
        """The stored verdict, or None when absent, unreadable, or reading is off."""
        if not self.read:
            return None
        try:
            data = json.loads(self.path(key).read_text())
            return StoredVerdict(
                result=ClaimResult.model_validate(data["result"]),
                verified_at=str(data["verified_at"]),
                symbols={str(k): float(v) for k, v in data.get("symbols", {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None

    def put(self, key: str, result: ClaimResult, symbols: Mapping[str, float]) -> None:
        """Store a final verdict atomically; other statuses and write errors are skipped."""
        if result.status not in FINAL_STATUSES:
            return
        path = self.path(key)
        data = {
            "key": key,
            "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "result": result.model_dump(mode="json"),
            "symbols": {k: float(v) for k, v in symbols.items()},
        }
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            ignore_in_git(self.folder)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("verdict not stored in %s: %s", self.folder, exc)
            tmp.unlink(missing_ok=True)
