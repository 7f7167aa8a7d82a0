"""The cache folder keeps itself out of version control, as ``.pytest_cache`` does.

The first write into a cache folder (stored verdicts, training checkpoints) also writes a
``.gitignore`` holding ``*`` at its top: ``.verifier/`` for the default ``.verifier/artifacts``,
else the folder given, but only when the verifier creates that folder (a ``--cache-dir`` that
already exists, such as the repository itself, is left alone). An existing file is never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

GITIGNORE = "# written by verifier: its cache is not for version control\n*\n"


def cache_root(cache_dir: str | os.PathLike[str]) -> Path:
    """``.verifier/`` for ``.verifier/artifacts``; else ``cache_dir`` itself."""
    path = Path(cache_dir)
    return path.parent if path.name == "artifacts" and path.parent.name == ".verifier" else path


def ignore_in_git(cache_dir: str | os.PathLike[str]) -> None:
    """Create the cache root, with a ``.gitignore`` of ``*`` when it is ``.verifier/`` or did not
    exist yet, unless it has one.

    Raises:
        OSError: the folder cannot be created or written (callers that only cache log it).
    """
    root = cache_root(cache_dir)
    ours = root.name == ".verifier" or not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    if not ours:
        return
    try:
        with open(root / ".gitignore", "x", encoding="utf-8") as f:
            f.write(GITIGNORE)
    except FileExistsError:
        pass
