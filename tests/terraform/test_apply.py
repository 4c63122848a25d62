"""A real `terraform apply` of the root module against moto, checked with boto3, then `terraform destroy`.

The stack is applied once per session (fixture ``stack``); the last test of this file destroys it and checks
that nothing of it is left. The rendered user data of every launch template is read back from moto and its
Nomad configuration parsed as HCL.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import hcl2
import pytest

from gateway import pools as gateway_pools
from tests.terraform import tftools
from tests.terraform.conftest import Stack, Terraform

POOLS_JSON = tftools.TERRAFORM_DIR / "pools.json"
CATALOG = gateway_pools.load_catalog(POOLS_JSON)
# Actions that support no resource-level permissions: the only ones allowed on Resource "*".
UNSCOPABLE_ACTIONS = {
    "ec2:DescribeInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeInstanceRefreshes",
    "autoscaling:DescribeScalingActivities",
}
NOMAD_HCL = re.compile(r"cat >/etc/nomad\.d/nomad\.hcl <<'NOMAD_HCL'\n(.*?)\nNOMAD_HCL\n", re.S)

pytestmark = pytest.mark.timeout(600)


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of strings and block labels; drop them, recursively."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def _asg(stack: Stack, name: str) -> dict[str, Any]:
    groups = stack.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    assert groups["AutoScalingGroups"], f"no ASG {name}"
    return dict(groups["AutoScalingGroups"][0])


def _launch_template_data(stack: Stack, template_id: str) -> dict[str, Any]:
    versions = stack.client("ec2").describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["$Latest"])
    return dict(versions["LaunchTemplateVersions"][0]["LaunchTemplateData"])


def _template_id(asg: dict[str, Any]) -> str:
    if "MixedInstancesPolicy" in asg:
        spec = asg["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]
    else:
        spec = asg["LaunchTemplate"]
    return str(spec["LaunchTemplateId"])


def _user_data(stack: Stack, asg_name: str) -> str:
    data = _launch_template_data(stack, _template_id(_asg(stack, asg_name)))
    return base64.b64decode(data["UserData"]).decode()


def _nomad_config(user_data: str) -> dict[str, Any]:
    match = NOMAD_HCL.search(user_data)
    assert match, "the user data writes no /etc/nomad.d/nomad.hcl"
    return dict(_unquote(hcl2.loads(match.group(1) + "\n")))


def _our_roles(stack: Stack) -> list[str]:
    roles = stack.client("iam").list_roles()["Roles"]
    return [r["RoleName"] for r in roles if r["RoleName"].startswith(f"{stack.name}-")]


# --- outputs -------------------------------------------------------------------------------------------------


def test_outputs(stack: Stack) -> None:
    out = stack.outputs
    assert out["gateway_url"].startswith("http://") and out["gateway_url"].endswith(out["alb_dns_name"])
    assert out.get("nomad_address") is None  # null (so absent) without nomad_api_cidrs
    assert out["archive_bucket"] == f"{stack.name}-archive-123456789012"
    assert out["archive_url"] == f"s3://{out['archive_bucket']}/{out['archive_prefix']}"
    assert out["alb_url"] == out["gateway_url"]  # no public_url given
    # Named like the jobspecs' variables, which `taskapi cluster up` fills from these outputs.
    assert out["datacenters"] == [out["region"]] and out["gateway_port"] == 8080
    assert out["nomad_server_asg"] == f"{stack.name}-nomad-server"
    assert set(out["pools"]) == set(CATALOG.names())
    for pool in CATALOG.pools:
        assert out["pools"][pool.name]["node_pool"] == pool.node_pool
        assert out["pools"][pool.name]["asg_name"] == f"{stack.name}-{pool.name}"


def test_cluster_up_registers_the_platform_jobs_and_saves_the_gateway(stack: Stack) -> None:
    assert sorted(stack.registered_jobs) == sorted(
        ["nomad-autoscaler", "prometheus", "spot-watcher", "taskapi-gateway", "taskapi-reconciler"]
    )
    for job_id in stack.registered_jobs:
        assert stack.nomad.has_job(job_id)
    # Each job was parsed by Nomad (the double's /v1/jobs/parse), with the Terraform outputs as its variables.
    assert stack.nomad.request_count(method="POST", path="/v1/jobs/parse") == len(stack.registered_jobs)
    saved = json.loads(Path(stack.env["TASKAPI_CONFIG"]).read_text())
    assert saved == {"url": stack.outputs["gateway_url"], "api_key": "cluster-test-key"}
    # The key the CLI saved is one the gateway job will accept; each job's identity has its policy.
    assert "cluster-test-key" in stack.nomad.variable("nomad/jobs/taskapi-gateway")["api_keys"].splitlines()
    assert stack.nomad.policy("spot-watcher")["JobACL"]["JobID"] == "spot-watcher"


def test_cluster_status_shows_the_outputs(stack: Stack) -> None:
    status = json.loads(stack.taskapi("cluster", "status", "-o", "json", "--dir", str(stack.workdir)).stdout)
    assert status["gateway_url"] == stack.outputs["gateway_url"]
    assert status["gateway_ready"] is False  # moto's load balancer has no real address to answer on


# --- network -------------------------------------------------------------------------------------------------


def test_network_spans_several_azs_with_nat(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    vpc_filter = [{"Name": "vpc-id", "Values": [stack.outputs["vpc_id"]]}]
    subnets = ec2.describe_subnets(Filters=vpc_filter)["Subnets"]
    tiers: dict[str, set[str]] = {"public": set(), "private": set()}
    for subnet in subnets:
        tier = {t["Key"]: t["Value"] for t in subnet.get("Tags", [])}.get("Tier")
        tiers[tier].add(subnet["AvailabilityZone"])
        assert not subnet["MapPublicIpOnLaunch"]
    assert len(tiers["public"]) == len(tiers["private"]) == 3
    nats = ec2.describe_nat_gateways(Filters=vpc_filter)["NatGateways"]
    assert [n for n in nats if n["State"] == "available"]
    default_sg = ec2.describe_security_groups(Filters=[*vpc_filter, {"Name": "group-name", "Values": ["default"]}])
    assert default_sg["SecurityGroups"][0]["IpPermissions"] == []


# --- pools and servers ---------------------------------------------------------------------------------------


def test_servers_are_three_on_demand_joining_by_tag(stack: Stack) -> None:
    asg = _asg(stack, stack.outputs["nomad_server_asg"])
    assert asg["MinSize"] == asg["MaxSize"] == asg["DesiredCapacity"] == 3
    assert "MixedInstancesPolicy" not in asg  # plain on-demand
    assert len(asg["VPCZoneIdentifier"].split(",")) == 3
    tags = {t["Key"]: t for t in asg["Tags"]}
    assert tags["NomadJoin"]["Value"] == stack.name and tags["NomadJoin"]["PropagateAtLaunch"]


@pytest.mark.parametrize("pool", CATALOG.pools, ids=CATALOG.names())
def test_pool_asg(stack: Stack, pool: gateway_pools.Pool) -> None:
    asg = _asg(stack, f"{stack.name}-{pool.name}")
    assert asg["MinSize"] == pool.min_size and asg["MaxSize"] == pool.max_size
    assert (
        asg["DesiredCapacity"]
        == json.loads(POOLS_JSON.read_text())["pools"][CATALOG.names().index(pool.name)]["desired_capacity"]
    )
    assert len(asg["VPCZoneIdentifier"].split(",")) == 3
    policy = asg["MixedInstancesPolicy"]
    distribution = policy["InstancesDistribution"]
    overrides = [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]]
    assert overrides == list(pool.instance_types) and len(overrides) >= 3
    assert distribution["OnDemandBaseCapacity"] == 0
    if pool.spot:
        assert pool.min_size == 0
        assert distribution["OnDemandPercentageAboveBaseCapacity"] == 0
        assert distribution["SpotAllocationStrategy"] == "price-capacity-optimized"
        assert asg["CapacityRebalance"] is True
    else:
        assert pool.min_size >= 1
        assert distribution["OnDemandPercentageAboveBaseCapacity"] == 100
    if pool.gpu:
        assert {t.split(".")[0] for t in overrides} == {"g4dn", "g5", "g6"}
    tags = {t["Key"]: t["Value"] for t in asg["Tags"]}
    assert tags["taskapi:node-pool"] == pool.node_pool and tags["NomadJoin"] == stack.name


def test_platform_pool_is_behind_the_alb(stack: Stack) -> None:
    platform = next(p for p in CATALOG.pools if p.serves_gateway)
    asg = _asg(stack, f"{stack.name}-{platform.name}")
    # ALB checks route traffic only; an ASG acting on them would replace nodes before the gateway job runs
    assert asg["TargetGroupARNs"] and asg["HealthCheckType"] == "EC2"
    for pool in CATALOG.task_pools():
        assert not _asg(stack, f"{stack.name}-{pool.name}")["TargetGroupARNs"]


def test_every_launch_template_requires_imdsv2_and_encrypts_disks(stack: Stack) -> None:
    templates = stack.client("ec2").describe_launch_templates()["LaunchTemplates"]
    ours = [t for t in templates if t["LaunchTemplateName"].startswith(f"{stack.name}-")]
    assert len(ours) == len(CATALOG.pools) + 1
    for template in ours:
        data = _launch_template_data(stack, template["LaunchTemplateId"])
        metadata = data["MetadataOptions"]
        assert metadata["HttpTokens"] == "required", template["LaunchTemplateName"]
        assert metadata["HttpEndpoint"] == "enabled"
        assert all(b["Ebs"]["Encrypted"] for b in data["BlockDeviceMappings"])
        assert "NetworkInterfaces" not in data or not any(
            n.get("AssociatePublicIpAddress") for n in data["NetworkInterfaces"]
        )
    task_pool_templates = [_template_id(_asg(stack, f"{stack.name}-{p.name}")) for p in CATALOG.task_pools()]
    for template_id in task_pool_templates:  # containers running user code cannot reach the instance role
        assert _launch_template_data(stack, template_id)["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


# --- security groups -----------------------------------------------------------------------------------------


def _groups(stack: Stack) -> dict[str, dict[str, Any]]:
    groups = stack.client("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [stack.outputs["vpc_id"]]}]
    )["SecurityGroups"]
    return {g["GroupName"]: g for g in groups}


def test_security_groups_are_closed_except_alb_listener_and_nomad(stack: Stack) -> None:
    groups = _groups(stack)
    alb, cluster = groups[f"{stack.name}-alb"], groups[f"{stack.name}-nomad"]
    # The ALB: its listener (HTTP 80 without a certificate), from anywhere; nothing else.
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in alb["IpPermissions"]] == [("tcp", 80, 80)]
    assert [r["CidrIp"] for r in alb["IpPermissions"][0]["IpRanges"]] == ["0.0.0.0/0"]
    # The cluster: no CIDR ingress at all; Nomad ports only from itself; the gateway port only from the ALB.
    ingress: set[tuple[str, int, int, str]] = set()
    for permission in cluster["IpPermissions"]:
        assert not permission.get("IpRanges") and not permission.get("Ipv6Ranges"), permission
        for pair in permission["UserIdGroupPairs"]:
            source = "self" if pair["GroupId"] == cluster["GroupId"] else pair["GroupId"]
            ingress.add((permission["IpProtocol"], permission["FromPort"], permission["ToPort"], source))
    assert ingress == {
        ("tcp", 4646, 4648, "self"),
        ("udp", 4648, 4648, "self"),
        ("tcp", 20000, 32000, "self"),
        ("tcp", 8080, 8080, alb["GroupId"]),
    }
    # Egress to the internet: HTTPS and HTTP only.
    open_egress = {
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        for p in cluster["IpPermissionsEgress"]
        if any(r["CidrIp"] == "0.0.0.0/0" for r in p.get("IpRanges", []))
    }
    assert open_egress == {("tcp", 443, 443), ("tcp", 80, 80)}


# --- load balancer -------------------------------------------------------------------------------------------


def test_alb_http_listener_and_readyz_health_check(stack: Stack) -> None:
    elb = stack.client("elbv2")
    lbs = elb.describe_load_balancers(Names=[f"{stack.name}-gw"])["LoadBalancers"]
    assert lbs[0]["SecurityGroups"] == [_groups(stack)[f"{stack.name}-alb"]["GroupId"]]
    assert len(lbs[0]["AvailabilityZones"]) == 3  # the public subnets
    listeners = elb.describe_listeners(LoadBalancerArn=lbs[0]["LoadBalancerArn"])["Listeners"]
    assert [(x["Port"], x["Protocol"]) for x in listeners] == [(80, "HTTP")]  # no certificate_arn given
    group = elb.describe_target_groups(Names=[f"{stack.name}-gw"])["TargetGroups"][0]
    assert group["HealthCheckPath"] == "/readyz" and group["Port"] == 8080


# --- archive bucket ------------------------------------------------------------------------------------------


def test_archive_bucket_is_encrypted_versioned_private_with_lifecycle(stack: Stack) -> None:
    s3 = stack.client("s3")
    bucket = stack.outputs["archive_bucket"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle and lifecycle[0]["Status"] == "Enabled"
    assert lifecycle[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert any(st["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(st) for st in policy["Statement"])


# --- IAM -----------------------------------------------------------------------------------------------------


def _policies(stack: Stack, role: str) -> list[dict[str, Any]]:
    iam = stack.client("iam")
    statements: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(unquote(document))
        found = document["Statement"]
        statements += found if isinstance(found, list) else [found]
    assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"], f"{role} has managed policies"
    return statements


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_iam_never_wildcards_actions_where_a_scoped_arn_exists(stack: Stack) -> None:
    roles = _our_roles(stack)
    assert {r.removeprefix(f"{stack.name}-") for r in roles} == {
        "nomad-server", "nomad-client", "nomad-platform", "gateway", "autoscaler",
    }  # fmt: skip
    for role in roles:
        for statement in _policies(stack, role):
            actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
            assert statement["Effect"] == "Allow"
            assert not any("*" in action for action in actions), f"{role}: wildcard action in {statement}"
            if "*" in resources:
                assert set(actions) <= UNSCOPABLE_ACTIONS, f"{role}: {actions} on Resource * could be scoped"


def test_iam_roles_are_scoped_to_their_resources(stack: Stack) -> None:
    def allowed(role: str) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for statement in _policies(stack, f"{stack.name}-{role}"):
            for action in _as_list(statement["Action"]):
                result.setdefault(action, set()).update(_as_list(statement["Resource"]))
        return result

    ssm = stack.client("ssm")
    parameters = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/{stack.name}/"]}]
    )["Parameters"]
    assert {p["Type"] for p in parameters} == {"SecureString"} and len(parameters) == 2
    parameter_arns = {ssm.get_parameter(Name=p["Name"])["Parameter"]["ARN"] for p in parameters}

    server = allowed("nomad-server")
    assert server == {"ec2:DescribeInstances": {"*"}, "ssm:GetParameter": parameter_arns}
    assert allowed("nomad-client") == {"ec2:DescribeInstances": {"*"}}

    bucket_arn = f"arn:aws:s3:::{stack.outputs['archive_bucket']}"
    gateway = allowed("gateway")
    assert set().union(*gateway.values()) == {bucket_arn, f"{bucket_arn}/*"}
    assert gateway["s3:PutObject"] == {f"{bucket_arn}/*"}

    autoscaler = allowed("autoscaler")
    scoped = autoscaler["autoscaling:UpdateAutoScalingGroup"]
    assert autoscaler["autoscaling:TerminateInstanceInAutoScalingGroup"] == scoped
    real_arns = {p.name: _asg(stack, f"{stack.name}-{p.name}")["AutoScalingGroupARN"] for p in CATALOG.pools}
    for pool in CATALOG.pools:
        matches = any(fnmatch.fnmatchcase(real_arns[pool.name], pattern) for pattern in scoped)
        assert matches == pool.runs_tasks, f"autoscaler scope of {pool.name}: {scoped}"

    platform = allowed("nomad-platform")
    assert platform["sts:AssumeRole"] == {stack.outputs["gateway_role_arn"], stack.outputs["autoscaler_role_arn"]}


# --- user data -----------------------------------------------------------------------------------------------


def _all_user_data(stack: Stack) -> dict[str, str]:
    names = {p.name: f"{stack.name}-{p.name}" for p in CATALOG.pools}
    names["server"] = stack.outputs["nomad_server_asg"]
    return {key: _user_data(stack, asg) for key, asg in names.items()}


def test_user_data_holds_no_secret_and_is_valid_bash(stack: Stack) -> None:
    for key, script in _all_user_data(stack).items():
        assert stack.variables["nomad_gossip_key"] not in script, key
        assert stack.variables["nomad_acl_bootstrap_token"] not in script, key
        assert 'echo "$sum  $tmp/pkg.zip" | sha256sum -c -' in script
        assert stack.variables["nomad_sha256"] in script
        assert f"nomad/{stack.variables.get('nomad_version', '1.11.1')}/" in script
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.mark.parametrize("pool", CATALOG.pools, ids=CATALOG.names())
def test_client_user_data_renders_the_pool(stack: Stack, pool: gateway_pools.Pool) -> None:
    script = _user_data(stack, f"{stack.name}-{pool.name}")
    config = _nomad_config(script)
    client = config["client"][0]
    assert client["enabled"] is True
    assert client["node_pool"] == pool.node_pool and client["node_class"] == pool.node_class
    assert client["meta"][0]["taskapi_node_group"] == pool.name
    assert client["meta"][0]["taskapi_capacity"] == pool.capacity
    assert client["server_join"][0]["retry_join"] == [
        f"provider=aws region=us-east-1 tag_key=NomadJoin tag_value={stack.name} addr_type=private_v4"
    ]
    assert config["acl"][0]["enabled"] is True
    assert config["telemetry"][0]["prometheus_metrics"] is True
    assert "server" not in config
    plugins = {label: body for block in config["plugin"] for label, body in block.items()}
    assert "systemctl enable --now docker" in script
    if pool.gpu:
        label = "nomad-device-nvidia"
        assert set(plugins) == {"docker", label}
        assert plugins[label]["config"][0]["enabled"] is True
        # the block label equals the file name the plugin binary is installed under
        assert f"/opt/nomad/plugins/{label}\n" in script and f"{label}_linux_amd64.zip" not in script
        assert re.search(rf"install_zip \S+/{label}/[0-9.]+/{label}_[0-9.]+_linux_amd64\.zip", script)
        assert "nvidia-container-toolkit" in script and "nvidia-ctk runtime configure --runtime=docker" in script
    else:
        assert set(plugins) == {"docker"}
        assert "nvidia" not in script


def test_server_user_data(stack: Stack) -> None:
    script = _user_data(stack, stack.outputs["nomad_server_asg"])
    config = _nomad_config(script)
    server = config["server"][0]
    assert server["enabled"] is True and server["bootstrap_expect"] == 3
    assert "encrypt" not in server  # the gossip key comes from SSM at boot
    assert config["acl"][0]["enabled"] is True
    telemetry = config["telemetry"][0]
    assert telemetry["disable_dispatched_job_summary_metrics"] is False
    assert telemetry["prometheus_metrics"] is True
    assert f'ssm_get "/{stack.name}/nomad/gossip-key"' in script
    assert f'ssm_get "/{stack.name}/nomad/acl-bootstrap-token"' in script
    assert "nomad acl bootstrap" in script
    assert "docker" not in script and "client" not in config


# --- teardown: keep this test last in the file ---------------------------------------------------------------


def test_zz_destroy_leaves_nothing(stack: Stack, terraform: Terraform) -> None:
    down = stack.taskapi("cluster", "down", "--dir", str(stack.workdir), "--yes")
    stack.destroyed = True
    assert "forgot the saved gateway" in down.stderr
    assert not Path(stack.env["TASKAPI_CONFIG"]).exists()
    state = terraform.run(stack.workdir, "state", "list", check=False).stdout.split()
    assert state == []
    ec2, prefix = stack.client("ec2"), f"{stack.name}-"
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:taskapi:cluster", "Values": [stack.name]}])["Vpcs"]
    assert vpcs == []
    assert not [
        t for t in ec2.describe_launch_templates()["LaunchTemplates"] if t["LaunchTemplateName"].startswith(prefix)
    ]
    assert not [
        a for a in ec2.describe_addresses()["Addresses"]
        if {"Key": "taskapi:cluster", "Value": stack.name} in a.get("Tags", [])
    ]  # fmt: skip
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "tag:taskapi:cluster", "Values": [stack.name]}])
    assert all(n["State"] in ("deleted", "deleting") for n in nats["NatGateways"])
    groups = stack.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert not [g for g in groups if g["AutoScalingGroupName"].startswith(prefix)]
    lbs = stack.client("elbv2").describe_load_balancers()["LoadBalancers"]
    assert not [lb for lb in lbs if lb["LoadBalancerName"].startswith(prefix)]
    buckets = stack.client("s3").list_buckets()["Buckets"]
    assert not [b for b in buckets if b["Name"].startswith(prefix)]
    assert _our_roles(stack) == []
    profiles = stack.client("iam").list_instance_profiles()["InstanceProfiles"]
    assert not [p for p in profiles if p["InstanceProfileName"].startswith(prefix)]
    parameters = stack.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/{stack.name}/"]}]
    )["Parameters"]
    assert parameters == []
    running = ec2.describe_instances(Filters=[{"Name": "tag:NomadJoin", "Values": [stack.name]}])["Reservations"]
    assert all(i["State"]["Name"] in ("terminated", "shutting-down") for r in running for i in r["Instances"])
