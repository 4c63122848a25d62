"""Putting the platform on a new cluster: wait for Nomad, then register the jobspecs under ``jobspecs/``.

Jobspecs are HCL; Nomad's own ``/v1/jobs/parse`` turns each into JSON, with the HCL variables the jobspec
declares taken from the Terraform outputs, so no HCL parser of ours stands between the file and Nomad.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nomad
import requests
from nomad.api.exceptions import BaseNomadException, URLNotFoundNomadException
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

DECLARED_VARIABLE = re.compile(r'^\s*variable\s+"([A-Za-z_][A-Za-z0-9_-]*)"', re.MULTILINE)


class PlatformError(RuntimeError):
    """Nomad did not come up, or refused a jobspec; the message says which and why."""


class _NoLeader(Exception):
    pass


def default_jobspecs_dir() -> Path:
    """``jobspecs/`` of this checkout."""
    return Path(__file__).resolve().parents[2] / "jobspecs"


def wait_for_nomad(client: nomad.Nomad, timeout: float) -> str:
    """The address of Nomad's leader, once there is one; PlatformError after ``timeout`` seconds."""

    def leader() -> str:
        try:
            address = client.status.leader.get_leader()
        except (BaseNomadException, requests.RequestException) as exc:
            raise _NoLeader(str(exc)) from exc
        if not address:
            raise _NoLeader("no leader elected yet")
        return str(address)

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.5, max=10),
        retry=retry_if_exception_type(_NoLeader),
        reraise=True,
    )
    try:
        return retrying(leader)
    except _NoLeader as exc:
        raise PlatformError(f"Nomad had no leader after {timeout:.0f}s: {exc}") from None


def hcl_variables(jobspec: str, values: Mapping[str, Any]) -> str:
    """An HCL variables file with the values of the variables ``jobspec`` declares (others are left out)."""
    lines = []
    for name in DECLARED_VARIABLE.findall(jobspec):
        if name in values and values[name] is not None:
            lines.append(f"{name} = {_hcl_value(values[name])}")
    return "\n".join(lines) + ("\n" if lines else "")


def _hcl_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_hcl_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_hcl_value(str(k))} = {_hcl_value(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${")
    return f'"{text}"'


def platform_values(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The jobspecs' variables, from the Terraform outputs (and the watcher script's text)."""
    pools = outputs.get("pools") or {}
    return {
        **outputs,
        "aws_region": outputs.get("region"),
        "public_url": outputs.get("gateway_url"),
        "pool_asgs": {name: pool["asg_name"] for name, pool in pools.items()},
        "watcher_script": (default_jobspecs_dir().parent / "scripts" / "spot_watcher.py").read_text(),
    }


def register_jobspecs(client: nomad.Nomad, directory: Path, values: Mapping[str, Any]) -> list[str]:
    """Parse (through Nomad) and register every ``*.nomad.hcl`` in ``directory``; the job IDs registered."""
    registered = []
    for path in sorted(directory.glob("*.nomad.hcl")):
        text = path.read_text()
        body = {"JobHCL": text, "Canonicalize": True, "Variables": hcl_variables(text, values)}
        try:
            job = client.jobs.request("parse", json=body, method="post").json()
            client.jobs.register_job({"Job": job})
        except BaseNomadException as exc:
            raise PlatformError(f"Nomad refused {path.name}: {_nomad_message(exc)}") from None
        registered.append(str(job["ID"]))
    return registered


# Which ACL policy (jobspecs/policies/) each platform job's workload identity gets.
JOB_POLICIES = {
    "taskapi-gateway": "gateway.hcl",
    "taskapi-reconciler": "gateway.hcl",
    "nomad-autoscaler": "autoscaler.hcl",
    "spot-watcher": "spot-watcher.hcl",
}
GATEWAY_KEYS_VARIABLE = "nomad/jobs/taskapi-gateway"
PROMETHEUS_KEY_VARIABLE = "nomad/jobs/prometheus"


def apply_policies(client: nomad.Nomad, directory: Path, namespace: str = "default") -> list[str]:
    """Attach each platform job's ACL policy to its workload identity; the policy names written."""
    for job_id, file_name in JOB_POLICIES.items():
        policy = {
            "Name": job_id,
            "Description": f"workload identity of the {job_id} job",
            "Rules": (directory / file_name).read_text(),
            "JobACL": {"Namespace": namespace, "JobID": job_id},
        }
        try:
            client.acl.create_policy(job_id, policy)
        except BaseNomadException as exc:
            raise PlatformError(f"Nomad refused the ACL policy {job_id}: {_nomad_message(exc)}") from None
    return list(JOB_POLICIES)


def _items(client: nomad.Nomad, path: str) -> dict[str, str]:
    try:
        return dict(client.variable.get_variable(path)["Items"])
    except URLNotFoundNomadException:
        return {}


def ensure_api_keys(client: nomad.Nomad, wanted: str | None) -> str:
    """The operator's bearer key (``wanted``, else a new one), added to the gateway's Nomad Variable.

    Prometheus gets a key of its own (for the gateway's ``/metrics``), created once. Keys already there stay.
    """
    try:
        keys = [k for k in _items(client, GATEWAY_KEYS_VARIABLE).get("api_keys", "").splitlines() if k.strip()]
        key = wanted or secrets.token_urlsafe(32)
        scraper = _items(client, PROMETHEUS_KEY_VARIABLE).get("gateway_api_key")
        if scraper is None:
            scraper = secrets.token_urlsafe(32)
            client.variable.create_variable(PROMETHEUS_KEY_VARIABLE, {"Items": {"gateway_api_key": scraper}})
        missing = [k for k in (key, scraper) if k not in keys]
        if missing:
            items = {"api_keys": "\n".join([*keys, *missing])}
            client.variable.create_variable(GATEWAY_KEYS_VARIABLE, {"Items": items})
    except BaseNomadException as exc:
        raise PlatformError(f"Nomad refused to store the gateway's API keys: {_nomad_message(exc)}") from None
    return key


def _nomad_message(exc: BaseNomadException) -> str:
    response = getattr(exc, "nomad_resp", None)
    text = getattr(response, "text", None)
    return (text or str(exc)).strip()
