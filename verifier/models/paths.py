"""Where a claim's model path points, who may read it, and the digest that keys its verdict.

A relative path resolves against the folder of the spec file that names it (a spec given as
text has none: then against ``models_dir`` if set, else the working directory). With
``models_dir`` set (:class:`~verifier.limits.Limits`, ``VERIFIER_MODELS_DIR``; the HTTP API's
``--models-dir``), every path must resolve inside it, symlinks and ``..`` followed first; with
``models_dir_required`` (the HTTP API always) and no ``models_dir``, every model path is
refused. Torch-free: the runner computes verdict keys with it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from verifier.errors import SpecError
from verifier.limits import Limits

_CHUNK = 1 << 20
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime_ns) -> sha256


def resolve_model_path(raw: str, spec_file: str, limits: Limits) -> Path:
    """The real path (symlinks resolved) of a claim's model path, after the folder rules.

    Args:
        raw: the path as the spec writes it.
        spec_file: the spec's file, or a label in angle brackets (``<request>``) for text.
        limits: ``models_dir`` and ``models_dir_required``.

    Raises:
        SpecError: refused (no models folder where one is required, a path outside it), or
            nothing there.
    """
    root = _models_root(limits)
    written_in_file = not spec_file.startswith("<")
    if written_in_file:
        base = Path(spec_file).parent
    elif root is not None:
        base = root
    else:
        base = Path.cwd()
    path = (base / raw).resolve()  # an absolute raw replaces base
    if root is not None:
        check_inside(path, limits)
    if not path.exists():
        shown = raw if root is not None else str(path)  # a server does not print its own paths
        raise SpecError(f"expected a model file or folder, got nothing at {shown!r}")
    return path


def check_inside(path: Path, limits: Limits) -> None:
    """Refuse ``path`` (a real path) when a models folder is set and it lies outside.

    Adapters call it on every file they read, so a symlink inside a model folder that points
    elsewhere is refused too.

    Raises:
        SpecError: outside the models folder, or no folder where one is required.
    """
    root = _models_root(limits)
    if root is None:
        return
    real = path.resolve()
    if not real.is_relative_to(root):
        raise SpecError(
            "expected a model path inside the server's models folder (symlinks and .. "
            "resolved), got one outside it"
        )


def _models_root(limits: Limits) -> Path | None:
    """The models folder as a real path; None when none is set and none is required."""
    if limits.models_dir is None:
        if limits.models_dir_required:
            raise SpecError(
                "model files are refused here: expected a server started with a models folder "
                "(verifier serve --models-dir DIR, or VERIFIER_API_MODELS_DIR), got none"
            )
        return None
    root = Path(limits.models_dir).resolve()
    if not root.is_dir():
        raise SpecError("the models folder this server was given is not a folder")
    return root


def file_digest(path: Path) -> str:
    """sha256 of one file's bytes (memoised by real path, size and modification time)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def source_digest(path: Path, limits: Limits) -> dict[str, str]:
    """Name -> sha256 of what a model path holds: the file, or every file directly in the
    folder (a model folder's config and weights), each checked against the models folder.

    Raises:
        SpecError: a file outside the models folder.
        LimitExceeded: the bytes to hash are over ``max_model_bytes``.
    """
    from verifier.limits import require

    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        check_inside(f, limits)
    size = sum(f.stat().st_size for f in files)
    require("max_model_bytes", size, limits.max_model_bytes, "the model's bytes on disk")
    return {f.name: file_digest(f) for f in files}


__all__ = ["check_inside", "file_digest", "resolve_model_path", "source_digest"]
