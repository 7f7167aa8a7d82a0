"""Finding spec files: ``*.spec.yaml`` under folders, in sorted order."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from verifier.errors import SpecError

SPEC_SUFFIX = ".spec.yaml"
FULL_FOLDER = "full"  # folders of large specs, run only when asked (--full, --verifier-full)


def in_full_folder(file: Path, searched: Path) -> bool:
    """Whether a folder named ``full`` lies between the searched path and ``file`` (naming the
    ``full`` folder, or a file in it, therefore never counts); a file outside ``searched`` is
    judged by all its folders."""
    between = file.relative_to(searched) if file.is_relative_to(searched) else file
    return FULL_FOLDER in between.parts[:-1]


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
                if in_full_folder(file, path) and not include_full:
                    continue
                found.append(file)
        else:
            raise SpecError("no such file or folder", file=str(path))
    return found
