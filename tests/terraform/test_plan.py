"""`terraform plan` of the variants the applied stack does not take: HTTPS with a certificate, the Nomad API
exposed to an operator network, pool overrides; and the variables' validation. Against moto (the data
sources read it), in a private copy of terraform/ with its own (empty) state."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.moto_server import MotoServer
from tests.terraform.conftest import Terraform

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def plan_dir(terraform: Terraform, tf_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("tf-plan") / "terraform"
    shutil.copytree(tf_root, target, ignore=shutil.ignore_patterns("*.tfstate*", "*.auto.tfvars*", ".terraform"))
    terraform.init(target)
    return target


def _variables(moto: MotoServer, **extra: Any) -> dict[str, Any]:
    ami = moto.client("ec2").describe_images(Filters=[{"Name": "name", "Values": ["ubuntu/images/*"]}])["Images"]
    return {
        "name": "tfplan",
        "aws_endpoint_url": moto.endpoint_url,
        "ami_id": ami[0]["ImageId"],
        "gpu_ami_id": ami[0]["ImageId"],
        "nomad_sha256": secrets.token_hex(32),
        "nvidia_plugin_sha256": secrets.token_hex(32),
        "nomad_gossip_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "nomad_acl_bootstrap_token": str(uuid.uuid4()),
        **extra,
    }


def _plan(terraform: Terraform, workdir: Path, variables: dict[str, Any], check: bool = True) -> Any:
    (workdir / "plan.tfvars.json").write_text(json.dumps(variables))
    result = terraform.run(
        workdir, "plan", "-input=false", "-no-color", "-var-file=plan.tfvars.json", "-out=tfplan", check=check
    )
    if not check:
        return result
    return json.loads(terraform.run(workdir, "show", "-json", "tfplan").stdout)


def _resources(plan: dict[str, Any], address_part: str) -> list[dict[str, Any]]:
    return [
        r["change"]["after"] | {"address": r["address"]}
        for r in plan["resource_changes"]
        if address_part in r["address"] and r["change"]["actions"] == ["create"]
    ]


def test_https_and_nomad_api_variant(terraform: Terraform, plan_dir: Path, moto_server: MotoServer) -> None:
    variables = _variables(
        moto_server,
        certificate_arn=CERT,
        nomad_api_cidrs=["203.0.113.0/24"],
        pool_overrides={"gpu-spot": {"max_size": 2, "instance_types": ["g6.xlarge", "g5.xlarge", "g4dn.xlarge"]}},
    )
    plan = _plan(terraform, plan_dir, variables)
    listeners = {r["address"]: r for r in _resources(plan, "aws_lb_listener.")}
    https = listeners["module.gateway_lb.aws_lb_listener.https[0]"]
    assert https["port"] == 443 and https["protocol"] == "HTTPS" and https["certificate_arn"] == CERT
    assert https["ssl_policy"].startswith("ELBSecurityPolicy-TLS13")
    assert "module.gateway_lb.aws_lb_listener.http[0]" not in listeners
    nomad = listeners["module.gateway_lb.aws_lb_listener.nomad[0]"]
    assert nomad["port"] == 4646 and nomad["protocol"] == "HTTPS"
    ingress = {(r["from_port"], r["cidr_ipv4"]) for r in _resources(plan, "aws_vpc_security_group_ingress_rule.alb_")}
    assert ingress == {(443, "0.0.0.0/0"), (4646, "203.0.113.0/24")}
    asgs = {r["name"]: r for r in _resources(plan, "aws_autoscaling_group.this")}
    gpu = asgs["tfplan-gpu-spot"]
    assert gpu["max_size"] == 2 and gpu["min_size"] == 0
    overrides = gpu["mixed_instances_policy"][0]["launch_template"][0]["override"]
    assert [o["instance_type"] for o in overrides] == ["g6.xlarge", "g5.xlarge", "g4dn.xlarge"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"nomad_gossip_key": "not-a-key"}, "openssl rand -base64 32"),
        ({"nomad_acl_bootstrap_token": "root"}, "must be a lowercase UUID"),
        ({"nomad_sha256": "abc"}, "64 lowercase hex"),
        ({"certificate_arn": "arn:aws:iam::1:server-certificate/x"}, "ACM certificate ARN"),
        ({"pool_overrides": {"tpu-spot": {"max_size": 1}}}, "pools.json does not define"),
        ({"pool_overrides": {"cpu-spot": {"min_size": 5, "max_size": 2}}}, "min_size <= desired_capacity"),
    ],
    ids=["gossip-key", "acl-token", "sha256", "certificate", "unknown-pool", "pool-sizes"],
)
def test_bad_variables_are_refused(
    terraform: Terraform, plan_dir: Path, moto_server: MotoServer, override: dict[str, Any], message: str
) -> None:
    result = _plan(terraform, plan_dir, _variables(moto_server, **override), check=False)
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split())
