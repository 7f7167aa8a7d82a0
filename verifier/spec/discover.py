"""Finding spec files: ``*.spec.yaml`` under folders, in sorted order."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from verifier.errors import SpecError

SPEC_SUFFIX = ".spec.yaml"


def spec_files(paths: Iterable[str | Path], include_full: bool = False) -> list[Path]:
    """Every spec file named by ``paths`` (files as given; folders searched recursively).

    Folders named ``full`` hold the large specs and are skipped inside a searched folder unless
    ``include_full``; naming such a folder (or file) directly always includes it.

    Raises:
        SpecError: a path that does not exist.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for file in sorted(path.rglob(f"*{SPEC_SUFFIX}")):
                rel = file.relative_to(path).parts[:-1]
                if "full" in rel and not include_full:
                    continue
                found.append(file)
        else:
            raise SpecError("no such file or folder", file=str(path))
    return found
