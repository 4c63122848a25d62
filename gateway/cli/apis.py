"""``taskapi deploy``, ``get`` and ``delete``: Task APIs and what they are running."""

from __future__ import annotations

import json
from typing import IO, Any

import click

from gateway.cli.common import State, echo_json, fmt_seconds, fmt_time, output_option, pairs, pass_state, table
from gateway.client import TaskAPIClient, TaskAPIError, load_spec_documents
from gateway.task_states import TaskStatus

STATUSES = [status.value for status in TaskStatus]


@click.command()
@click.argument("file", type=click.File("rb"))
@output_option
@pass_state
def deploy(state: State, file: IO[bytes]) -> None:
    """Create or update the Task APIs of a spec FILE (YAML or JSON, one spec or a list; '-' for stdin).

    Every spec is checked before any is sent: an invalid file deploys nothing.
    """
    name = getattr(file, "name", "-")
    content_type = "application/json" if str(name).endswith(".json") else None
    documents = load_spec_documents(file.read(), content_type)
    client = state.client()
    deployed: list[dict[str, Any]] = []
    try:
        for document in documents:
            info = client.put_api(document)
            deployed.append(info)
            if not state.wants_json:
                click.echo(f"{info['name']} deployed: POST {client.url}/{info['endpoint'].strip('/')}")
    except TaskAPIError:
        if deployed:
            names = ", ".join(info["name"] for info in deployed)
            click.echo(f"deployed before the error: {names}", err=True)
        raise
    if state.wants_json:
        echo_json(deployed)


@click.command()
@click.argument("api", required=False)
@click.argument("task_id", required=False)
@click.option("--status", type=click.Choice(STATUSES), help="Only tasks with this status (with API).")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="Tasks to list (with API).")
@output_option
@pass_state
def get(state: State, api: str | None, task_id: str | None, status: str | None, limit: int) -> None:
    """Show Task APIs, the recent tasks of API, or one task with its attempts.

    \b
    taskapi get                  every API with its tasks in progress
    taskapi get API              the newest tasks of API
    taskapi get API TASK_ID      a task's status and attempts
    """
    client = state.client()
    if api is None:
        _show_apis(state, client)
    elif task_id is None:
        _show_tasks(state, client, api, status, limit)
    else:
        _show_task(state, client.get_task(api, task_id))


def _show_apis(state: State, client: TaskAPIClient) -> None:
    apis = client.list_apis()
    if state.wants_json:
        echo_json({"apis": apis})
        return
    if not apis:
        click.echo("no Task APIs deployed; see taskapi deploy --help", err=True)
        return
    rows = []
    for info in apis:
        # The API answer carries no counts; tasks in progress are few, so listing them is cheap.
        pending, running = (
            sum(1 for _ in client.iter_tasks(info["name"], status=status.value, page_size=200))
            for status in (TaskStatus.PENDING, TaskStatus.RUNNING)
        )
        endpoint = f"{client.url}/{info['endpoint'].strip('/')}"
        rows.append([info["name"], endpoint, pending, running, fmt_time(info.get("updated_at"))])
    click.echo(table(["NAME", "ENDPOINT", "PENDING", "RUNNING", "UPDATED"], rows))


def _show_tasks(state: State, client: TaskAPIClient, api: str, status: str | None, limit: int) -> None:
    tasks, next_cursor = client.list_tasks(api, status=status, limit=limit)
    if state.wants_json:
        echo_json({"tasks": tasks, "next_cursor": next_cursor})
        return
    if not tasks:
        click.echo(f"no {status + ' ' if status else ''}tasks for {api}", err=True)
        return
    rows = [
        [
            task["job_id"],
            task["status"],
            len(task.get("attempts") or []),
            fmt_time(task.get("start_time")),
            fmt_time(task.get("end_time")),
        ]
        for task in tasks
    ]
    click.echo(table(["ID", "STATUS", "ATTEMPTS", "SUBMITTED", "ENDED"], rows))
    if next_cursor:
        click.echo(f"(the newest {len(tasks)}; --limit shows more)", err=True)


def _show_task(state: State, task: dict[str, Any]) -> None:
    if state.wants_json:
        echo_json(task)
        return
    fields = [
        ("task", task["job_id"]),
        ("api", task.get("api_name")),
        ("status", task["status"]),
        ("message", task.get("message")),
        ("submitted", fmt_time(task.get("start_time"))),
        ("ended", fmt_time(task.get("end_time"))),
        ("timeout", fmt_seconds(task["timeout"]) if task.get("timeout") else None),
        ("config", json.dumps(task.get("config") or {}, separators=(",", ":"))),
    ]
    click.echo(pairs(fields))
    attempts = task.get("attempts") or []
    if attempts:
        click.echo()
        rows = [
            [
                a["attempt"],
                a.get("node"),
                fmt_time(a.get("started_at")),
                fmt_time(a.get("ended_at")),
                a.get("exit_code"),
                a.get("outcome") or ("running" if a.get("started_at") else "starting"),
                a.get("message"),
            ]
            for a in attempts
        ]
        click.echo(table(["ATTEMPT", "NODE", "STARTED", "ENDED", "EXIT", "OUTCOME", "MESSAGE"], rows))


@click.command()
@click.argument("api")
@output_option
@pass_state
def delete(state: State, api: str) -> None:
    """Remove the Task API named API: its tasks in progress are stopped, finished tasks stay readable."""
    answer = state.client().delete_api(api)
    if state.wants_json:
        echo_json(answer)
    else:
        click.echo(f"deleted {api}")
