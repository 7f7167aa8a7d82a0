"""Runs ``verifier check`` in one process, once per JSON line of arguments on stdin.

It answers one JSON line per run: the exit code, what was printed, and the uncaught
exception, if any (a traceback in the real console script). The corpus test times each answer
and kills this process when one does not come within the per-case limit.
"""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from verifier.cli import app


def main() -> None:
    """Serve runs until stdin closes."""
    runner = CliRunner()
    out = sys.__stdout__
    assert out is not None
    for line in sys.stdin:
        result = runner.invoke(app, json.loads(line), env={"COLUMNS": "400"})
        exc = result.exception
        crash = None if exc is None or isinstance(exc, SystemExit) else repr(exc)
        answer = {"code": result.exit_code, "out": result.stdout + result.stderr, "crash": crash}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
