"""``taskapi serve`` and ``taskapi runner``: the server side, configured by flags over ``TASKAPI_*``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from gateway.cli.common import CliError
from gateway.config import Settings


def build_settings(flags: dict[str, Any]) -> Settings:
    """Settings from the environment, overridden by the flags that were given (None: not given)."""
    overrides = {name: value for name, value in flags.items() if value is not None}
    # A flag can only turn --insecure on; left out, TASKAPI_INSECURE decides.
    if overrides.get("insecure") is False:
        del overrides["insecure"]
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            source = f"--{name.replace('_', '-')}" if name in overrides else f"TASKAPI_{name.upper()}"
            problems.append(f"{source}: {error['msg']}")
        raise click.UsageError("invalid settings: " + "; ".join(problems)) from None


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the local backend keeps its database and task outputs [env TASKAPI_STATE_DIR; "
    "default $XDG_STATE_HOME/taskapi].",
)


@click.command()
@click.option(
    "--backend",
    type=click.Choice(["local", "nomad"]),
    help="Where tasks run [env TASKAPI_BACKEND; default local].",
)
@click.option("--host", help="Address to listen on [env TASKAPI_HOST; default 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on [env TASKAPI_PORT; default 8080].")
@state_dir_option
@click.option(
    "--workers", type=click.IntRange(1, 64), help="gunicorn worker processes [env TASKAPI_WORKERS; default 2]."
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Serve beyond loopback without API keys [env TASKAPI_INSECURE].",
)
def serve(**flags: Any) -> None:
    """Start the gateway (and, with the local backend, its runner).

    Every other setting comes from TASKAPI_* variables (TASKAPI_API_KEYS, TASKAPI_CPUS, ...).
    """
    settings = build_settings(flags)
    # Imported here so that client commands do not load the server's dependencies.
    from gateway.server import ServeError
    from gateway.server import serve as run_server

    try:
        run_server(settings)
    except ServeError as exc:
        raise CliError(str(exc)) from None


@click.command()
@state_dir_option
def runner(**flags: Any) -> None:
    """Run the local backend's runner alone (internal: `serve` starts one itself)."""
    settings = build_settings(flags)
    from gateway.backends.local.runner import RunnerAlreadyRunning, run

    # The same log format as the runner that `serve` starts.
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(settings)
    except RunnerAlreadyRunning as exc:
        raise CliError(str(exc)) from None


@click.command()
def reconcile() -> None:
    """Run the Nomad reconciler: deadlines, re-placement after drains, archiving (NOMAD_*, TASKAPI_ARCHIVE)."""
    from gateway.backends.nomad.reconciler import main as run_reconciler

    run_reconciler()
