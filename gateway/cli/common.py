"""What the client commands share: the CLI's state, the output option, tables, times and errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, TypeVar

import click

from gateway.client import TaskAPIClient, TaskAPIError

OUTPUTS = ("table", "json")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """The global options, and the client built from them on first use."""

    url: str | None
    api_key: str | None
    output: str = "table"
    _client: TaskAPIClient | None = field(default=None, repr=False)

    @property
    def wants_json(self) -> bool:
        """True when scripts asked for raw JSON (``-o json``)."""
        return self.output == "json"

    def client(self) -> TaskAPIClient:
        """The client of the gateway named by ``--url`` / ``$TASKAPI_URL``."""
        if self._client is None:
            self._client = TaskAPIClient(self.url, self.api_key)
        return self._client


pass_state = click.make_pass_decorator(State)


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` with exit code 1, as gateway errors are."""

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the message on stderr."""
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def _set_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(State).output = value


def output_option(command: F) -> F:
    """``-o/--output`` on a command too, so that ``taskapi get -o json`` works as well as ``taskapi -o json get``."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUTS),
        callback=_set_output,
        expose_value=False,
        help="table for people, json for scripts.",
    )(command)


def echo_json(value: Any) -> None:
    """Print a value as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2))


def cell(value: Any) -> str:
    """A value as a table cell: '-' for nothing."""
    return "-" if value is None or value == "" else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain columns aligned with two spaces, headers first; the last column is not padded."""
    cells = [list(headers), *([cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def pairs(fields: Sequence[tuple[str, Any]]) -> str:
    """``label: value`` lines with the values aligned; fields whose value is None are left out."""
    shown = [(f"{label}:", cell(value)) for label, value in fields if value is not None]
    width = max((len(label) for label, _ in shown), default=0)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in shown)


def fmt_time(value: str | None) -> str:
    """An RFC 3339 time from the gateway as ``2026-12-04 16:26:54Z`` (UTC, whole seconds)."""
    if not value:
        return "-"
    try:
        # Python 3.10's fromisoformat does not take the 'Z' suffix.
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_seconds(seconds: float) -> str:
    """A duration as ``42s``, ``3m04s`` or ``2h05m``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def print_error(exc: TaskAPIError) -> None:
    """``error: <title>: <detail>`` on stderr, then each invalid field on its own line."""
    click.echo(f"error: {exc}", err=True)
    for error in exc.errors:
        path = error.get("path") or ""
        message = error.get("message") or ""
        click.echo(f"  {path}: {message}" if path else f"  {message}", err=True)
