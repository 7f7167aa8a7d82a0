"""``verifier serve``: the HTTP API, started without importing the engine.

The server must answer ``/healthz`` within moments of launch, so this module and what it
imports before the socket listens (typer, uvicorn, :mod:`api.main`) stay clear of the spec
language, the engine and the numeric libraries (numpy, sympy, torch, cvxpy, scipy,
matplotlib): the validator and worker processes import those behind the server, and the
routes that need them import them on first use. ``verifier serve`` reaches this module
through :func:`verifier.cli_entry.main` without importing :mod:`verifier.cli`; the full CLI
registers the same command, so ``verifier --help`` lists it.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Annotated

import typer

EXIT_USAGE = 2  # as verifier.cli's EXIT_BAD_SPEC: bad usage, a refused start
EXIT_STARTUP = 3  # uvicorn's STARTUP_FAILURE: the socket could not be bound

# The options of `verifier serve` that override api.settings.Settings (its environment).
_HELP = {
    "data_dir": "SQLite data folder (default VERIFIER_API_DATA_DIR)",
    "workers": "worker processes (default VERIFIER_API_WORKERS)",
    "executor": "local (worker processes) or ray: claim points as Ray tasks",
    "ray_address": "Ray cluster to join (default auto: this node's)",
    "cache_dir": "training checkpoints; with ray a folder on a shared filesystem",
    "models_dir": "model files that model_file claims may read, inside this folder only "
    "(default VERIFIER_API_MODELS_DIR; none: every model path is refused)",
}


def _refuse(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr (one line, no traceback); the exit to raise."""
    typer.secho("error:", fg=typer.colors.RED, err=True, nl=False)
    typer.echo(f" {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    data_dir: Annotated[Path | None, typer.Option(help=_HELP["data_dir"])] = None,
    workers: Annotated[int | None, typer.Option(help=_HELP["workers"])] = None,
    executor: Annotated[str | None, typer.Option(help=_HELP["executor"])] = None,
    ray_address: Annotated[str | None, typer.Option(help=_HELP["ray_address"])] = None,
    cache_dir: Annotated[Path | None, typer.Option(help=_HELP["cache_dir"])] = None,
    models_dir: Annotated[Path | None, typer.Option(help=_HELP["models_dir"])] = None,
) -> None:
    """Serve the HTTP API (uvicorn): jobs in SQLite under the data folder, run by worker
    processes, or with --executor ray as Ray tasks on a cluster ('ray start --head' first,
    then --ray-address auto)."""
    if executor not in (None, "local", "ray"):
        raise _refuse(f"--executor: expected local or ray, got {executor!r}")
    from api.settings import Settings  # the service is optional: imported only here

    overrides = {
        "data_dir": data_dir,
        "workers": workers,
        "executor": executor,
        "ray_address": ray_address,
        "cache_dir": cache_dir,
        "models_dir": models_dir,
    }
    settings = Settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if settings.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise _refuse(
            "--executor ray: expected the ray package (pip install 'verifier[ray]'), got none"
        )
    from api.ray_runner import probe_cluster

    if settings.executor == "ray" and (why := probe_cluster(settings.ray_address)) is not None:
        raise _refuse(  # never accept jobs that would wait queued for a cluster forever
            f"--executor ray: no Ray cluster answers at {settings.ray_address!r} ({why}); start "
            "one with 'ray start --head' (then --ray-address auto), or give a running cluster's "
            "--ray-address host:port"
        )
    from api import lock
    from api.store import STORE_ERRORS, Store, store_error_reason

    try:  # held for the process's life: a second server on this folder refuses, naming this one
        lock.acquire(settings.data_dir, serving=f"{host}:{port}")
        Store(settings.db_path)  # a read-only or broken folder: one line here, not a traceback
    except (lock.DataDirBusy, lock.DataDirUnusable) as exc:
        raise _refuse(str(exc)) from None
    except STORE_ERRORS as exc:
        raise _refuse(f"{store_error_reason(exc)} ({settings.db_path})") from None
    import uvicorn

    from api.main import create_app

    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    typer.echo(f"verifier serve: listening on http://{netloc}/", err=True)
    holder: list[uvicorn.Server] = []  # the workers and validators start once it listens
    app = create_app(settings, listening=lambda: holder[0].started)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    holder.append(server)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop, as uvicorn.run's
        server.run()
    if not server.started:  # it could not bind (uvicorn logged why), as uvicorn.run exits
        raise typer.Exit(EXIT_STARTUP)


serve_app = typer.Typer(add_completion=False, help=serve.__doc__)
serve_app.command()(serve)
