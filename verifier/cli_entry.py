"""The ``verifier`` console script: ``serve`` starts light, every other command is the full CLI.

``verifier serve`` runs :mod:`verifier.cli_serve` without importing :mod:`verifier.cli` (which
imports the spec language and the engine's reports and console), so the server listens
sooner; any other argument list goes to :func:`verifier.cli.main` unchanged.
"""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv`` defaults to ``sys.argv[1:]``)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        from verifier.cli_serve import serve_app

        logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
        serve_app(args=args[1:], prog_name="verifier serve")
        return
    from verifier.cli import main as full

    sys.argv[1:] = args
    full()


if __name__ == "__main__":  # python -m verifier.cli_entry
    main()
