"""The Python door: :func:`check` and :func:`load_spec` for notebooks and scripts.

Both take a spec as a path (a file or a folder of ``*.spec.yaml``), a mapping (the spec's
data), or YAML/JSON text, and raise what the CLI reports with exit code 2 (a
:class:`~verifier.errors.SpecError` with file and line, a
:class:`~verifier.errors.LimitExceeded`). :func:`check` takes the options of ``verifier
check`` and runs through the same code (:mod:`verifier.engine.session`), so it gives the CLI's
verdicts; a failing claim is a result, not an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from verifier.engine.executors import ExecutorName
from verifier.engine.report import Report
from verifier.engine.session import RunOptions, cache_dir_of, load_specs, run_checks
from verifier.errors import SpecError
from verifier.limits import Limits
from verifier.spec import Spec, load_spec_file, load_spec_text, parse_spec

Source = str | Path | Mapping[str, Any]


def _is_text(source: str) -> bool:
    """A string is spec text (not a path) when it has a line break or starts a mapping."""
    return "\n" in source or source.lstrip().startswith("{")


def load_spec(source: Source, limits: Limits | None = None) -> Spec:
    """One validated spec from a file path, a mapping, or YAML/JSON text.

    Raises:
        SpecError: a missing file, malformed YAML, an unknown key or a bad value, with the
            file (``<text>`` or ``<mapping>``) and line, as ``verifier check`` prints it.
    """
    limits = limits or Limits()
    if isinstance(source, Mapping):
        size = len(json.dumps(source, default=str).encode())
        if size > limits.max_spec_bytes:
            raise SpecError(
                f"spec is {size:,} bytes as JSON, over the limit max_spec_bytes = "
                f"{limits.max_spec_bytes:,}",
                file="<mapping>",
            )
        return parse_spec(source, file="<mapping>")
    if isinstance(source, str) and _is_text(source):
        return load_spec_text(source, "<text>", max_bytes=limits.max_spec_bytes)
    path = Path(source)
    if not path.is_file():
        raise SpecError(
            "expected a spec file, YAML text or a mapping; no such file", file=str(path)
        )
    return load_spec_file(path, max_bytes=limits.max_spec_bytes)


def _specs(sources: Source | Iterable[Source], limits: Limits, full: bool) -> list[Spec]:
    if isinstance(sources, str | Path | Mapping):
        sources = [sources]
    specs: list[Spec] = []
    for source in sources:
        if isinstance(source, Mapping) or (isinstance(source, str) and _is_text(source)):
            specs.append(load_spec(source, limits))
        else:
            specs.extend(load_specs([source], limits, full))
    return specs


def check(
    source: Source | Iterable[Source],
    *,
    select: str | None = None,
    full: bool = False,
    jobs: int = 1,
    executor: ExecutorName = "local",
    ray_address: str | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
    reuse: bool = True,
    progress: bool = False,
    limits: Limits | None = None,
) -> list[Report]:
    """Verify specs and return one :class:`~verifier.engine.report.Report` per spec with results.

    Args:
        source: a spec file, a folder (searched for ``*.spec.yaml``), a mapping, YAML/JSON
            text, or a list of these.
        select: ``-k``: an expression over ``spec::claim[point]`` (and, or, not).
        full: ``--full``: also specs under folders named ``full/``.
        jobs: ``--jobs``: local worker processes.
        executor: ``--executor``: ``local`` or ``ray`` (the ``[ray]`` extra).
        ray_address: ``--ray-address``: None starts a local Ray instance.
        cache_dir: ``--cache-dir``: the cache folder (default ``./.verifier/artifacts``).
        cache: False is ``--no-cache``: no checkpoints, no stored verdicts.
        reuse: False is ``--no-reuse``: verify every claim again (and store the new verdicts).
        progress: progress bars on stderr.
        limits: the limits (default: from ``VERIFIER_*`` environment variables).

    Raises:
        SpecError: a bad spec or path. LimitExceeded: work over a limit (before any starts).
        VerifierError: bad options (an unknown executor, ``jobs < 1``, a bad ``select``).
    """
    limits = limits or Limits()
    options = RunOptions(
        select=select,
        include_full=full,
        jobs=jobs,
        executor=executor,
        ray_address=ray_address,
        cache_dir=cache_dir_of(cache_dir, no_cache=not cache),
        reuse=reuse,
        progress=progress,
    )
    return run_checks(_specs(source, limits, full), limits, options)
