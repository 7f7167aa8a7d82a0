"""Plugins by entry points: constructions, theorems, measures, claim kinds and model adapters.

A distribution extends the verifier by declaring entry points in one of :data:`GROUPS` (the
convention of pytest's ``pytest11``)::

    [project.entry-points."verifier.constructions"]
    padded_compact = "verifier_example.construction:PADDED_COMPACT"

Each group is wired to the one function that registers its kind of object (``GROUPS``: group ->
``"module:function"``, imported only when the group is loaded); the registry that function fills
is the only place those names live, built-ins included. :func:`load` imports a group's entry
points once per process, in name order, and hands each object to its registrar. A plugin that
fails to import or to register is recorded by name with its error (:func:`records`,
``verifier plugins``) and nothing else changes: a spec that does not use it still runs, and one
that names it is refused by the registry with :func:`failure`'s message.

``VERIFIER_DISABLE_PLUGINS`` (comma-separated distribution names, or ``all``) hides plugins from
this process as though they were not installed: what ``pip uninstall`` would do, without touching
the environment. Its value joins every verdict key, as any ``VERIFIER_*`` setting does.

:func:`fingerprint` is what a verdict key holds of the plugins: each distribution's name, version,
entry points and a sha256 of its package source, read without importing anything.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Literal

# group -> "module:function" that registers one entry point's object as (name, object). Wiring a
# new group to its registry is one line here.
GROUPS: dict[str, str] = {
    "verifier.constructions": "verifier.constructions.registry:register_plugin",
    "verifier.theorems": "verifier.theory.registry:register_plugin",
    "verifier.measures": "verifier.measure.registry:register_plugin",
    "verifier.checks": "verifier.checks.base:register_plugin",
    "verifier.models": "verifier.models.registry:register_plugin",
}
DISABLE_ENV = "VERIFIER_DISABLE_PLUGINS"

Status = Literal["loaded", "failed", "not loaded"]


@dataclass(frozen=True)
class Plugin:
    """One entry point of a verifier group.

    Attributes:
        name: the entry point's name: the construction, theorem id, measure or ``check:`` tag.
        group: its group (:data:`GROUPS`).
        value: ``module:attribute`` it points at.
        distribution: the distribution that declares it.
        version: that distribution's version.
        status: ``loaded``, ``failed`` (``error`` says why) or ``not loaded`` (its group was
            not needed in this process yet).
        error: ``Type: message`` of the failure, else None.
    """

    name: str
    group: str
    value: str
    distribution: str
    version: str
    status: Status = "not loaded"
    error: str | None = None


_LOCK = threading.RLock()
_RECORDS: dict[tuple[str, str], Plugin] = {}  # (group, name) -> its record once loaded
_LOADED_GROUPS: set[str] = set()


def disabled() -> frozenset[str]:
    """Distribution names hidden by ``VERIFIER_DISABLE_PLUGINS`` (``all``: every one)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(n.strip().lower() for n in raw.split(",") if n.strip())


def _dist_name(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "?", "?"
    return str(dist.metadata["Name"] or dist.name), str(dist.version)


def entry_points(group: str) -> list[Plugin]:
    """The group's entry points that are installed and not disabled, by name (imports none;
    read once per process and setting: a scan of every distribution costs tens of ms)."""
    return list(_entry_points(group, disabled()))


@functools.cache
def _entry_points(group: str, hidden: frozenset[str]) -> tuple[Plugin, ...]:
    found: dict[str, Plugin] = {}
    for ep in metadata.entry_points(group=group):
        dist, version = _dist_name(ep)
        if "all" in hidden or dist.lower() in hidden:
            continue
        found.setdefault(ep.name, Plugin(ep.name, group, ep.value, dist, version))
    return tuple(found[name] for name in sorted(found))


def forget_installed() -> None:
    """Read the installed distributions again on the next call (a test that installs one)."""
    _entry_points.cache_clear()
    _fingerprint.cache_clear()


def _registrar(group: str) -> Callable[[str, object], None]:
    module, _, function = GROUPS[group].partition(":")
    register: Callable[[str, object], None] = getattr(importlib.import_module(module), function)
    return register


def load(group: str) -> list[Plugin]:
    """Import the group's entry points (once per process) and register each; return their
    records. Never raises for a plugin's fault: a failure is recorded with its error."""
    with _LOCK:
        if group not in _LOADED_GROUPS:
            _LOADED_GROUPS.add(group)
            register = _registrar(group)
            for plugin in entry_points(group):
                _RECORDS[(group, plugin.name)] = _load_one(plugin, register)
        return [p for (g, _), p in sorted(_RECORDS.items()) if g == group]


def _load_one(plugin: Plugin, register: Callable[[str, object], None]) -> Plugin:
    try:
        obj = metadata.EntryPoint(plugin.name, plugin.value, plugin.group).load()
        register(plugin.name, obj)
    except Exception as exc:  # a plugin's bug: recorded, never the verifier's failure
        error = f"{type(exc).__name__}: {exc}"
        return replace(plugin, status="failed", error=error)
    return replace(plugin, status="loaded")


def records(groups: tuple[str, ...] | None = None) -> list[Plugin]:
    """Every plugin of ``groups`` (default: all), each group loaded first."""
    chosen = tuple(GROUPS) if groups is None else groups
    return [p for group in chosen for p in load(group)]


def failure(group: str, name: str) -> str | None:
    """Why the plugin ``name`` of ``group`` is not registered, when it failed to load."""
    load(group)
    plugin = _RECORDS.get((group, name))
    if plugin is None or plugin.status != "failed":
        return None
    return (
        f"plugin {plugin.distribution} {plugin.version} (entry point {name} = {plugin.value} "
        f"in {group}) failed to load: {plugin.error}"
    )


def missing(what: str, name: str, group: str) -> str:
    """The end of an unknown-name message: the failed plugin that provides ``name``, or how to
    see which plugins are installed."""
    why = failure(group, name)
    if why is not None:
        return f"; {what} {name!r} comes from {why}"
    return f" (a plugin's {what} needs its distribution installed; see `verifier plugins`)"


def _source_digest(module: str) -> str:
    """sha256 of every ``.py`` file of ``module``'s top-level package (found, not imported)."""
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "absent"
    digest = hashlib.sha256()
    if spec.submodule_search_locations:
        files = sorted(
            p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.py")
        )
    elif spec.origin and spec.origin not in ("built-in", "frozen"):
        files = [Path(spec.origin)]
    else:
        files = []
    for path in files:
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        except OSError:
            digest.update(path.name.encode() + b"\0unreadable")
    return digest.hexdigest()


@functools.cache
def _fingerprint(hidden: frozenset[str]) -> str:
    parts: list[str] = []
    for group in sorted(GROUPS):
        for p in entry_points(group):
            parts.append(
                f"{group}|{p.name}|{p.value}|{p.distribution}|{p.version}|"
                f"{_source_digest(p.value.partition(':')[0])}"
            )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest() if parts else "none"


def fingerprint() -> str:
    """sha256 of every installed plugin's distribution, version, entry points and package
    source (``none`` without plugins): the part of a verdict key a plugin can change."""
    return _fingerprint(disabled())
