"""``taskapi cluster up | status | down``: the AWS cluster, provisioned with Terraform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import nomad
import requests

from gateway.cli.common import State, echo_json, output_option, pairs, pass_state
from gateway.cluster.platform import (
    PlatformError,
    apply_policies,
    default_jobspecs_dir,
    ensure_api_keys,
    platform_values,
    register_jobspecs,
    wait_for_nomad,
)
from gateway.cluster.stack import Stack, StackError, default_module_dir
from gateway.profile import forget_profile, load_profile, save_profile


def _variables(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--var")
        out[name] = value
    return out


def _stack(module_dir: Path, var_file: Path | None, variables: tuple[str, ...]) -> Stack:
    try:
        return Stack(module_dir, _variables(variables), var_file)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None


def stack_options(command: Any) -> Any:
    """The options naming the Terraform module and its variables."""
    command = click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A Terraform variable.")(
        command
    )
    command = click.option(
        "--var-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A .tfvars file."
    )(command)
    return click.option(
        "--dir",
        "module_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=default_module_dir,
        show_default="terraform/",
        help="The Terraform root module.",
    )(command)


@click.group()
def cluster() -> None:
    """Provision the Nomad cluster on AWS (terraform apply) and put the platform's jobs on it."""


@cluster.command()
@stack_options
@click.option("--nomad-addr", metavar="URL", help="Nomad's API; default the Terraform output nomad_address.")
@click.option("--nomad-token", envvar="NOMAD_TOKEN", metavar="TOKEN", help="A Nomad ACL token [env NOMAD_TOKEN].")
@click.option(
    "--api-key",
    "gateway_key",
    envvar="TASKAPI_API_KEY",
    metavar="KEY",
    help="Your bearer key for the gateway; default the saved one, else a new one.",
)
@click.option(
    "--gateway-image",
    envvar="TASKAPI_GATEWAY_IMAGE",
    required=True,
    metavar="IMAGE",
    help="The Task API image the gateway and reconciler jobs run (built from the Dockerfile), by tag or digest.",
)
@click.option("--wait", "wait_seconds", type=int, default=900, show_default=True, help="Seconds to wait for Nomad.")
@output_option
@pass_state
def up(
    state: State,
    module_dir: Path,
    var_file: Path | None,
    variables: tuple[str, ...],
    nomad_addr: str | None,
    nomad_token: str | None,
    gateway_key: str | None,
    gateway_image: str,
    wait_seconds: int,
) -> None:
    """Create or update the cluster, put the platform's jobs on it, and point taskapi at its gateway.

    After terraform apply: wait for Nomad's leader, attach the jobs' ACL policies, store your API key (and
    Prometheus') in the gateway's Nomad Variable, register jobspecs/ through Nomad's parse API, and save the
    gateway's URL and your key for later taskapi commands.
    """
    stack = _stack(module_dir, var_file, variables)
    try:
        click.echo("==> terraform init", err=True)
        stack.init()
        click.echo("==> terraform apply", err=True)
        outputs = stack.apply()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    address = nomad_addr or outputs.get("nomad_address")
    if not address:
        raise click.ClickException(
            "the cluster is up, but Nomad's API is not reachable from here: set the Terraform variable "
            "nomad_api_cidrs to your address range, or pass --nomad-addr (e.g. through an SSH tunnel)"
        )
    client = nomad.Nomad(address=address, token=nomad_token, timeout=30)
    try:
        click.echo(f"==> waiting for Nomad at {address}", err=True)
        wait_for_nomad(client, wait_seconds)
        click.echo("==> ACL policies and API keys", err=True)
        apply_policies(client, default_jobspecs_dir() / "policies")
        saved_before = load_profile()
        if gateway_key is None and saved_before.get("url") == outputs["gateway_url"]:
            gateway_key = saved_before.get("api_key")
        gateway_key = ensure_api_keys(client, gateway_key)
        click.echo("==> registering jobspecs/", err=True)
        values = {**platform_values(outputs), "gateway_image": gateway_image}
        jobs = register_jobspecs(client, default_jobspecs_dir(), values)
    except PlatformError as exc:
        raise click.ClickException(str(exc)) from None
    saved = save_profile(str(outputs["gateway_url"]), gateway_key)
    result = {**outputs, "registered_jobs": jobs, "profile": str(saved)}
    if state.wants_json:
        echo_json(result)
        return
    click.echo(pairs([("gateway", outputs["gateway_url"]), ("nomad", address), ("jobs", ", ".join(jobs)),
                      ("archive", outputs.get("archive_url", "-")), ("saved to", str(saved))]))  # fmt: skip


@cluster.command()
@stack_options
@output_option
@pass_state
def status(state: State, module_dir: Path, var_file: Path | None, variables: tuple[str, ...]) -> None:
    """Show the cluster's outputs and whether its gateway answers."""
    try:
        outputs = _stack(module_dir, var_file, variables).outputs()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    if not outputs:
        raise click.ClickException(f"no cluster: {module_dir} has not been applied (taskapi cluster up)")
    url = str(outputs.get("gateway_url", ""))
    try:
        ready = requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        ready = False
    if state.wants_json:
        echo_json({**outputs, "gateway_ready": ready})
        return
    click.echo(pairs([("gateway", f"{url} ({'ready' if ready else 'not answering'})"),
                      ("nomad", str(outputs.get("nomad_address") or "-")),
                      ("archive", str(outputs.get("archive_url", "-"))),
                      ("region", str(outputs.get("region", "-")))]))  # fmt: skip


@cluster.command()
@stack_options
@click.confirmation_option(prompt="Destroy the cluster, its pools and its archive bucket?")
def down(module_dir: Path, var_file: Path | None, variables: tuple[str, ...]) -> None:
    """Destroy everything `cluster up` created (terraform destroy)."""
    stack = _stack(module_dir, var_file, variables)
    try:
        url = stack.outputs().get("gateway_url")
        click.echo("==> terraform destroy", err=True)
        stack.destroy()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    if url and forget_profile(str(url)):
        click.echo("forgot the saved gateway", err=True)
    click.echo("the cluster is gone")
