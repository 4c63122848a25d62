"""Putting the platform on a cluster (`taskapi cluster up` after terraform): against the Nomad double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nomad
import pytest

from gateway.cluster.platform import (
    GATEWAY_KEYS_VARIABLE,
    JOB_POLICIES,
    PROMETHEUS_KEY_VARIABLE,
    PlatformError,
    apply_policies,
    default_jobspecs_dir,
    ensure_api_keys,
    hcl_variables,
    platform_values,
    register_jobspecs,
    wait_for_nomad,
)
from tests.conftest import free_port
from tests.nomad_double import NomadDouble

OUTPUTS = {
    "gateway_url": "http://alb.example",
    "region": "eu-west-1",
    "archive_bucket": "b",
    "gateway_role_arn": "arn:aws:iam::123456789012:role/t-gateway",
    "autoscaler_role_arn": "arn:aws:iam::123456789012:role/t-autoscaler",
    "pools": {"cpu-spot": {"asg_name": "c"}, "gpu-spot": {"asg_name": "g"}, "platform": {"asg_name": "p"}},
}
IMAGE = {"gateway_image": "registry.example/taskapi:0.1.0"}


@pytest.fixture
def double() -> Iterator[NomadDouble]:
    with NomadDouble() as server:
        yield server


@pytest.fixture
def client(double: NomadDouble) -> nomad.Nomad:
    return nomad.Nomad(address=double.address, timeout=5)


def test_keys_are_created_once_and_kept(double: NomadDouble, client: nomad.Nomad) -> None:
    mine = ensure_api_keys(client, None)
    keys = double.variable(GATEWAY_KEYS_VARIABLE)["api_keys"].splitlines()
    scraper = double.variable(PROMETHEUS_KEY_VARIABLE)["gateway_api_key"]
    assert len(mine) >= 32 and set(keys) == {mine, scraper}
    writes = double.request_count(method="PUT", prefix="/v1/var/")
    assert ensure_api_keys(client, mine) == mine
    assert double.request_count(method="PUT", prefix="/v1/var/") == writes  # nothing new to write
    assert ensure_api_keys(client, "another-operator") == "another-operator"
    assert double.variable(GATEWAY_KEYS_VARIABLE)["api_keys"].splitlines() == [*keys, "another-operator"]


def test_each_platform_job_gets_its_policy(double: NomadDouble, client: nomad.Nomad) -> None:
    assert apply_policies(client, default_jobspecs_dir() / "policies") == list(JOB_POLICIES)
    for job_id, file_name in JOB_POLICIES.items():
        policy = double.policy(job_id)
        assert policy["JobACL"] == {"Namespace": "default", "JobID": job_id}
        assert policy["Rules"] == (default_jobspecs_dir() / "policies" / file_name).read_text()


def test_every_jobspec_is_registered_through_nomads_parser(double: NomadDouble, client: nomad.Nomad) -> None:
    jobs = register_jobspecs(client, default_jobspecs_dir(), {**platform_values(OUTPUTS), **IMAGE})
    assert sorted(jobs) == ["nomad-autoscaler", "prometheus", "spot-watcher", "taskapi-gateway", "taskapi-reconciler"]
    assert double.request_count(method="POST", path="/v1/jobs/parse") == len(jobs)


def test_a_missing_value_is_nomads_own_error(client: nomad.Nomad) -> None:
    with pytest.raises(PlatformError, match=r'Nomad refused gateway.nomad.hcl: .*Unset variable "gateway_image"'):
        register_jobspecs(client, default_jobspecs_dir(), platform_values(OUTPUTS))


def test_a_jobspec_nomad_refuses_is_a_clear_error(client: nomad.Nomad, tmp_path: Path) -> None:
    (tmp_path / "bad.nomad.hcl").write_text('job "bad" {\n  meta { x = file("secret") }\n}\n')
    with pytest.raises(PlatformError, match=r"Nomad refused bad.nomad.hcl: .*filesystem function disabled"):
        register_jobspecs(client, tmp_path, {})


def test_only_declared_variables_are_passed_and_values_are_escaped() -> None:
    jobspec = 'variable "region" {}\nvariable "pool_asgs" {}\nvariable "note" {}\njob "x" {}\n'
    text = hcl_variables(jobspec, {"region": "eu", "pool_asgs": {"a": "b"}, "note": 'say "${hi}"', "other": 1})
    assert text == 'region = "eu"\npool_asgs = {"a" = "b"}\nnote = "say \\"$${hi}\\""\n'


def test_no_nomad_is_a_clear_error_after_the_wait() -> None:
    client = nomad.Nomad(address=f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(PlatformError, match="Nomad had no leader after 1s"):
        wait_for_nomad(client, 1)
