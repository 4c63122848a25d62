"""``taskapi submit``, ``logs`` and ``stop``: running tasks and following them."""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import IO, Any

import click

from gateway.cli.common import State, echo_json, fmt_seconds, output_option, pass_state
from gateway.client import TaskAPIError
from gateway.task_states import IN_PROGRESS, TaskStatus

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _parse_config(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    text = value
    if value.startswith("@"):
        path = value[1:]
        try:
            with click.open_file(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise click.BadParameter("the config must be a JSON object")
    return config


def _latest_attempt(task: dict[str, Any]) -> int | None:
    attempts = task.get("attempts") or []
    return attempts[-1]["attempt"] if attempts else None


def describe(task: dict[str, Any], elapsed: float) -> str:
    """One line about a task: ``69b377c15a1314be running (attempt 1) 12s``, with its message if any."""
    attempt = _latest_attempt(task)
    text = f"{task['job_id']} {task['status']}"
    if attempt is not None:
        text += f" (attempt {attempt})"
    text += f" {fmt_seconds(elapsed)}"
    if task.get("message"):
        text += f": {task['message']}"
    return text


def _outcome(task: dict[str, Any]) -> str | None:
    # Why a task failed: its own message, else what its last attempt says.
    if task.get("message"):
        return task["message"]
    attempts = task.get("attempts") or []
    if not attempts:
        return None
    last = attempts[-1]
    if last.get("message"):
        return last["message"]
    return None if last.get("exit_code") is None else f"exit code {last['exit_code']}"


class Progress:
    """A task's status on stderr while waiting: refreshed in place on a terminal, a line per change otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.frame = 0
        self.last: tuple[Any, ...] | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the wait began."""
        return time.monotonic() - self.started

    def update(self, task: dict[str, Any]) -> None:
        """Show a status read while the task is in progress (the final one is left to ``finish``)."""
        if task["status"] not in IN_PROGRESS:
            return
        if self.tty:
            line = f"{SPINNER[self.frame % len(SPINNER)]} {describe(task, self.elapsed)}"
            self.frame += 1
            # A line longer than the terminal wraps, and '\r' would then only rewrite its last row.
            width = shutil.get_terminal_size().columns - 1
            self.stream.write(f"\r\x1b[K{line[:width]}")
            self.stream.flush()
            return
        key = (task["status"], _latest_attempt(task), task.get("message"))
        if key != self.last:
            self.last = key
            click.echo(describe(task, self.elapsed), file=self.stream)

    def clear(self) -> None:
        """Remove the in-place line, if any."""
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def finish(self, task: dict[str, Any]) -> None:
        """The final line: the status, the time taken and, for a failure, why."""
        self.clear()
        line = describe({**task, "message": None}, self.elapsed)
        reason = _outcome(task) if task["status"] != TaskStatus.SUCCEEDED else None
        click.echo(f"{line}: {reason}" if reason else line, file=self.stream)


@click.command()
@click.argument("api")
@click.option(
    "--config",
    "config",
    metavar="JSON|@FILE",
    callback=_parse_config,
    help="The task's config: a JSON object, or @FILE to read it from a file ('@-' for stdin).",
)
@click.option("--timeout", type=click.IntRange(min=1), help="Seconds from submission; default the API's timeout.")
@click.option("--idempotency-key", metavar="KEY", help="Submitting again with the same key returns the same task.")
@click.option("--wait", is_flag=True, help="Wait for the task to end; exit code 0 only if it succeeded.")
@output_option
@pass_state
def submit(
    state: State,
    api: str,
    config: dict[str, Any],
    timeout: int | None,
    idempotency_key: str | None,
    wait: bool,
) -> None:
    """Start a task of API and print its ID (with -o json, its record).

    With --wait, follow its status on stderr until it ends, then print (with -o json) its final status.
    """
    ctx = click.get_current_context()
    client = state.client()
    record = client.submit(api, config, timeout=timeout, idempotency_key=idempotency_key)
    if not wait:
        if state.wants_json:
            echo_json(record)
        else:
            click.echo(record["job_id"])
        return
    if not state.wants_json:
        click.echo(record["job_id"])
    progress = Progress(sys.stderr)
    try:
        final = client.wait(api, record["job_id"], on_update=progress.update)
    except KeyboardInterrupt:
        progress.clear()
        click.echo(f"stopped waiting; the task goes on (taskapi get {api} {record['job_id']})", err=True)
        ctx.exit(130)
    except TaskAPIError:
        # The error goes on a line of its own, not after the spinner.
        progress.clear()
        raise
    progress.finish(final)
    if state.wants_json:
        echo_json(final)
    ctx.exit(0 if final["status"] == TaskStatus.SUCCEEDED else 1)


@click.command()
@click.argument("api")
@click.argument("task_id")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the attempt ends.")
@click.option("--stderr", "stderr", is_flag=True, help="The task's stderr instead of its stdout.")
@click.option("--attempt", type=click.IntRange(min=1), help="An earlier attempt; default the latest.")
@pass_state
def logs(state: State, api: str, task_id: str, follow: bool, stderr: bool, attempt: int | None) -> None:
    """Print the output of task TASK_ID of API as it comes."""
    chunks = state.client().logs(api, task_id, stream="stderr" if stderr else "stdout", attempt=attempt, follow=follow)
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
        # Without a flush, output piped to another program would arrive in blocks, not as it comes.
        out.flush()


@click.command()
@click.argument("api")
@click.argument("task_id")
@output_option
@pass_state
def stop(state: State, api: str, task_id: str) -> None:
    """Stop task TASK_ID of API (SIGTERM, then SIGKILL after the API's kill_timeout)."""
    answer = state.client().stop(api, task_id)
    if state.wants_json:
        echo_json(answer)
    else:
        click.echo(answer.get("message") or f"stopped {task_id}")
