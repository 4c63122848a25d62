"""The ``taskapi`` command group: global options, error reporting, and the commands of each module."""

from __future__ import annotations

from typing import Any

import click

from gateway import __version__
from gateway.cli.apis import delete, deploy, get
from gateway.cli.cluster import cluster
from gateway.cli.common import OUTPUTS, State, print_error
from gateway.cli.server import reconcile, runner, serve
from gateway.cli.tasks import logs, stop, submit
from gateway.client import DEFAULT_URL, TaskAPIError


class TaskAPIGroup(click.Group):
    """A group that reports gateway and network errors as one clear message, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a TaskAPIError becomes ``error: ...`` on stderr and exit code 1."""
        try:
            return super().invoke(ctx)
        except TaskAPIError as exc:
            print_error(exc)
            ctx.exit(1)


@click.group(cls=TaskAPIGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskapi")
@click.option(
    "--url",
    envvar="TASKAPI_URL",
    show_envvar=True,
    metavar="URL",
    help=f"The gateway to talk to [default: {DEFAULT_URL}].",
)
@click.option(
    "--api-key",
    envvar="TASKAPI_API_KEY",
    show_envvar=True,
    metavar="KEY",
    help="Bearer key sent to the gateway.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUTS),
    default="table",
    show_default=True,
    help="table for people, json for scripts.",
)
@click.pass_context
def cli(ctx: click.Context, url: str | None, api_key: str | None, output: str) -> None:
    """Task API on Nomad: run containers on demand over HTTP.

    Start a gateway with `taskapi serve`, deploy a Task API spec with `taskapi deploy`, then submit tasks
    and follow them with `submit`, `get` and `logs`.
    """
    ctx.obj = State(url, api_key, output)


for _command in (serve, runner, reconcile, deploy, get, submit, logs, stop, delete, cluster):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``taskapi`` console script."""
    cli(prog_name="taskapi")
