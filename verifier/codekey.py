"""The code half of a verdict's key: which source and which libraries could change a verdict.

A claim of kind K is judged by :mod:`verifier.engine.runner`, which reaches K's check through the
registry (``REGISTRY[K]`` imports ``BUILTIN_KINDS[K]``). The modules its verdict can depend on
are therefore the closure, in this package's import graph, of those two roots. The graph is
read from the source (:mod:`ast`), conservatively:

- every ``import`` and ``from ... import`` anywhere in a module (function bodies and
  ``TYPE_CHECKING`` blocks too), relative ones resolved, with each imported module's parent
  packages (``import a.b.c`` runs ``a/__init__`` and ``a/b/__init__``);
- ``from pkg import name`` where ``pkg.name`` is a module;
- every string constant that names a module of the package (``importlib.import_module``
  tables such as the theorem providers), except the values of the check registry's table
  ``BUILTIN_KINDS`` itself: those are the per-kind roots, and a claim imports only its own.

:func:`engine_key` hashes the closure's files with the versions of Python, this package and
the numeric libraries (torch, numpy, scipy, sympy, cvxpy, highspy), and the installed plugins'
fingerprint (:func:`verifier.plugins.fingerprint`: each plugin distribution's name, version,
entry points and package source), since a plugin can add a construction, a theorem or a measure
any kind reads. An edit to a module outside the closure (the CLI, the pytest plugin, the docs
generator) keeps every stored verdict; an edit inside it re-verifies exactly the kinds whose
closure holds it. A plugin's claim kind is keyed by every module of this package (what it
imports from the verifier is outside the graph read here) and that fingerprint; a tag no
installed plugin declares has no key, so its verdicts are never reused.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

import verifier
from verifier import plugins
from verifier.checks.base import BUILTIN_KINDS, PLUGIN_GROUP

PACKAGE = "verifier"
PACKAGE_ROOT = Path(verifier.__file__).resolve().parent
RUNNER = "verifier.engine.runner"  # judges every claim: a root of every kind's closure
REGISTRY_TABLE = "BUILTIN_KINDS"  # its values are roots per kind, not edges
NUMERIC_PACKAGES: tuple[str, ...] = ("torch", "numpy", "scipy", "sympy", "cvxpy", "highspy")
KEY_FORMAT = 1  # bump when the key's payload changes shape


def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """Module name -> source file, for every ``.py`` file under the package folder ``root``."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((PACKAGE, *parts))] = path
    return modules


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _registry_strings(tree: ast.Module) -> set[int]:
    """ids of the string constants inside the ``BUILTIN_KINDS = {...}`` assignment."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == REGISTRY_TABLE for t in targets):
            inside.update(id(n) for n in ast.walk(value) if isinstance(n, ast.Constant))
    return inside


def module_imports(name: str, path: Path, modules: Mapping[str, Path]) -> frozenset[str]:
    """The package modules that module ``name`` (source ``path``) may import."""
    source = path.read_bytes()
    tree = ast.parse(source, filename=str(path))
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    skip = _registry_strings(tree) if REGISTRY_TABLE.encode() in source else set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in modules
            and id(node) not in skip
        ):
            found.add(node.value)
    edges = {m for f in found for m in _with_parents(f) if m in modules}
    edges.discard(name)
    return frozenset(edges)


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, frozenset[str]]:
    """Module -> the package modules it may import (see the module docstring)."""
    modules = package_modules(root)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def closure(graph: Mapping[str, Iterable[str]], roots: Iterable[str]) -> frozenset[str]:
    """Every module reachable from ``roots`` (the roots included, with their parents)."""
    seen: set[str] = set()
    stack = [m for r in roots for m in _with_parents(r) if m in graph]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(m for m in graph[name] if m not in seen)
    return frozenset(seen)


def kind_modules(kind: str, root: Path = PACKAGE_ROOT) -> frozenset[str] | None:
    """The modules a claim of ``kind`` can import, or None for a kind this package lacks."""
    module = BUILTIN_KINDS.get(kind)
    if module is None:
        return None
    return closure(_graph(root), (RUNNER, module))


def _kind_roots(kind: str, root: Path) -> tuple[str, ...] | None:
    """The modules whose closure keys ``kind``: the runner and its check module; for an
    installed plugin's kind, every module of this package (its imports are not in our graph);
    else None."""
    if kind in BUILTIN_KINDS:
        return (RUNNER, BUILTIN_KINDS[kind])
    if any(p.name == kind for p in plugins.entry_points(PLUGIN_GROUP)):
        return tuple(package_modules(root))
    return None


@functools.cache
def _graph(root: Path) -> dict[str, frozenset[str]]:
    return import_graph(root)


@functools.cache
def library_versions() -> dict[str, str]:
    """Python, the platform and the numeric libraries, as installed (not imported)."""
    versions = {"python": platform.python_version(), "machine": platform.machine()}
    for name in NUMERIC_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def source_digest(roots: Iterable[str], salt: bytes, root: Path = PACKAGE_ROOT) -> str:
    """sha256 of ``salt``, the source of every module reachable from ``roots``, and the data files.

    A source file that cannot be read raises :class:`OSError`: a key never stands in for code it
    did not read.
    """
    modules = package_modules(root)
    digest = hashlib.sha256(salt)
    for name in sorted(closure(_graph(root), roots)):
        digest.update(b"\0" + name.encode() + b"\0" + modules[name].read_bytes())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and _is_data(p)):
        digest.update(b"\0" + str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def engine_key(kind: str, root: Path = PACKAGE_ROOT) -> str | None:
    """sha256 of the sources a ``kind`` verdict depends on, the library versions and the
    plugins (:func:`_engine_key`; the plugins read per call, so disabling one changes keys)."""
    return _engine_key(kind, root, plugins.fingerprint())


@functools.cache
def _engine_key(kind: str, root: Path, plugin_fingerprint: str) -> str | None:
    """sha256 of the sources a ``kind`` verdict depends on and the library versions.

    Args:
        kind: a ``check:`` tag.
        root: the package folder to read (tests point it at an edited copy).

        plugin_fingerprint: :func:`verifier.plugins.fingerprint` (``none``: no plugin, and
            then the key is what it was before plugins existed).

    Returns:
        The hex digest, or None when ``kind`` is neither built in nor a plugin's (never reused).
    """
    roots = _kind_roots(kind, root)
    if roots is None:
        return None
    salt = f"codekey {KEY_FORMAT}|{verifier.__version__}"
    salt += "".join(f"|{lib}={version}" for lib, version in sorted(library_versions().items()))
    if plugin_fingerprint != "none":
        salt += f"|plugins={plugin_fingerprint}"
    return source_digest(roots, salt.encode(), root)


def _is_data(path: Path) -> bool:
    """Package files that are not Python source or bytecode (hashed into every key)."""
    return path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
