"""The platform jobspecs (jobspecs/*.nomad.hcl) parse with python-hcl2 and say what DESIGN §6 asks.

Pool names are NOT repeated here: they come from gateway/pools.py (terraform/pools.json), the single definition
Terraform and the gateway read, so a renamed pool fails these tests until the jobspecs follow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.pools import DEFAULT_POOLS_FILE, Pool, PoolCatalog, load_catalog
from tests.jobspecs.hcl_read import (
    JOBSPECS,
    ROOT,
    heredoc,
    job_of,
    labelled,
    load,
    loads,
    one,
    tasks,
    variables,
    walk,
)

EXPECTED = {"gateway", "reconciler", "prometheus", "autoscaler", "spot-watcher"}
TERRAFORM_VARIABLES = ROOT / "terraform" / "variables.tf"


@pytest.fixture(scope="module")
def catalog() -> PoolCatalog:
    return load_catalog()


@pytest.fixture(scope="module")
def platform(catalog: PoolCatalog) -> Pool:
    """The pool that serves the gateway (and runs no task): where every platform job goes."""
    pools = [p for p in catalog.pools if p.serves_gateway and not p.runs_tasks and not p.scales_to_zero]
    assert len(pools) == 1, pools
    return pools[0]


@pytest.fixture(scope="module")
def spot_pools(catalog: PoolCatalog) -> list[Pool]:
    pools = [p for p in catalog.pools if p.spot and p.runs_tasks]
    assert pools, "pools.json has no spot pool"
    return pools


def spec(name: str) -> dict[str, Any]:
    return load(JOBSPECS / f"{name}.nomad.hcl")


def the_job(name: str) -> dict[str, Any]:
    return job_of(spec(name))[1]


def groups(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return labelled(job.get("group"))


def env_of(task: dict[str, Any]) -> dict[str, Any]:
    return one(task.get("env"))


def duration_s(text: str) -> float:
    """A Go duration like 4h, 90m, 1h30m in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    assert parts and "".join(a + b for a, b in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------------------------------------- all jobspecs


def test_every_jobspec_is_there_and_parses() -> None:
    names = {p.name.removesuffix(".nomad.hcl") for p in JOBSPECS.glob("*.nomad.hcl")}
    assert names == EXPECTED
    for name in sorted(names):
        job_id, job = job_of(spec(name))
        assert job_id and job.get("type") in ("service", "system", "batch"), name


@pytest.mark.parametrize("name", ["gateway", "reconciler", "prometheus", "autoscaler"])
def test_platform_jobs_run_on_the_platform_pool(name: str, platform: Pool) -> None:
    job = the_job(name)
    assert job["node_pool"] == platform.node_pool
    assert job["type"] == "service"


def test_no_secret_literals_anywhere() -> None:
    secret_key = re.compile(r"token|secret|password|passwd|api_?keys?$|access_key|private_key", re.I)
    uuid = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
    aws_key = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
    files = sorted(JOBSPECS.rglob("*.hcl"))
    assert len(files) >= len(EXPECTED)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not uuid.search(text), f"{path.name}: a UUID (Nomad tokens are UUIDs)"
        assert not aws_key.search(text), f"{path.name}: an AWS access key ID"
        assert not re.search(r"aws_(secret_access_key|access_key_id|session_token)", text), path.name
        assert not re.search(r"^\s*token\s*=", text, re.M), f"{path.name}: a token setting"
        for leaf_path, value in walk(load(path)):
            key = leaf_path.rsplit(".", 1)[-1]
            if isinstance(value, str) and secret_key.search(key):
                assert "${" in value or value == "", f"{path.name}: {leaf_path} = {value!r} is a literal"
        for name, var in variables(load(path)).items() if path.name.endswith(".nomad.hcl") else []:
            if secret_key.search(name):
                assert "default" not in var, f"{path.name}: variable {name} has a default"


def test_variables_are_described_and_typed() -> None:
    for path in sorted(JOBSPECS.glob("*.nomad.hcl")):
        for name, var in variables(load(path)).items():
            assert var.get("description"), f"{path.name}: variable {name} has no description"
            assert var.get("type"), f"{path.name}: variable {name} has no type"


# ---------------------------------------------------------------------------------------------- gateway


def test_gateway_two_instances_on_distinct_platform_nodes() -> None:
    job = the_job("gateway")
    group = groups(job)["gateway"]
    assert group["count"] == 2
    constraints = group.get("constraint", []) + job.get("constraint", [])
    assert {"operator": "distinct_hosts", "value": "true"} in constraints
    assert group.get("spread"), "instances should spread over availability zones"


def test_gateway_port_is_the_albs_target_port() -> None:
    doc = spec("gateway")
    group = groups(job_of(doc)[1])["gateway"]
    port = labelled(one(group["network"])["port"])["http"]
    assert port["static"] == "${var.gateway_port}"
    tf_vars = labelled(loads(TERRAFORM_VARIABLES.read_text(encoding="utf-8"))["variable"])
    assert variables(doc)["gateway_port"]["default"] == tf_vars["gateway_port"]["default"]


def test_gateway_service_checks_readyz() -> None:
    group = groups(the_job("gateway"))["gateway"]
    service = one(group["service"])
    assert service["port"] == "http"
    assert service["provider"] == "nomad"
    check = one(service["check"])
    assert check["type"] == "http"
    assert check["path"] == "/readyz"
    assert duration_s(check["interval"]) > 0
    assert 0 < duration_s(check["timeout"]) < duration_s(check["interval"])
    update = one(the_job("gateway")["update"])
    assert update["health_check"] == "checks"


def test_gateway_runs_taskapi_serve_on_nomad_with_gunicorn_settings() -> None:
    task = tasks(the_job("gateway"))["gateway"]
    assert task["driver"] == "docker"
    config = one(task["config"])
    argv = [config["command"], *config["args"]]
    assert argv[:4] == ["taskapi", "serve", "--backend", "nomad"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    env = env_of(task)
    assert env["TASKAPI_WORKERS"] == "${var.gunicorn_workers}"
    assert env["TASKAPI_THREADS"] == "${var.gunicorn_threads}"
    assert "${var.archive_bucket}" in env["TASKAPI_ARCHIVE"]
    assert env["TASKAPI_ARCHIVE"].startswith("s3://")
    assert "default" not in variables(spec("gateway"))["archive_bucket"]


def test_gateway_secrets_come_from_workload_identity_and_a_nomad_variable() -> None:
    job_id, job = job_of(spec("gateway"))
    task = tasks(job)["gateway"]
    assert one(task["identity"])["env"] is True  # NOMAD_TOKEN = the workload identity
    env = env_of(task)
    assert "NOMAD_TOKEN" not in env and "TASKAPI_API_KEYS" not in env
    assert env["NOMAD_ADDR"].startswith("http://${attr.unique.network.ip-address}")
    assert env["TASKAPI_API_KEYS_FILE"].startswith("${NOMAD_SECRETS_DIR}/")
    keys = [t for t in task["template"] if "nomadVar" in heredoc(t["data"])]
    assert len(keys) == 1
    assert f'nomadVar "nomad/jobs/{job_id}"' in heredoc(keys[0]["data"])
    assert keys[0]["destination"].startswith("secrets/")
    assert env["TASKAPI_API_KEYS_FILE"].endswith(keys[0]["destination"].removeprefix("secrets/"))


def test_no_jobspec_reads_files() -> None:
    # Registration goes through /v1/jobs/parse, which has no file access: no file() in any jobspec.
    for path in JOBSPECS.glob("*.nomad.hcl"):
        assert "file(" not in path.read_text(encoding="utf-8"), path.name


def test_the_package_carries_the_pool_definition() -> None:
    # The gateway image gets the pools from the installed package, not from the job.
    assert DEFAULT_POOLS_FILE.parent == ROOT / "gateway"
    assert DEFAULT_POOLS_FILE.resolve() == (ROOT / "terraform" / "pools.json").resolve()


# ---------------------------------------------------------------------------------------------- reconciler


def test_reconciler_is_one_instance_of_taskapi_reconcile() -> None:
    job = the_job("reconciler")
    group = groups(job)["reconciler"]
    assert group["count"] == 1
    task = tasks(job)["reconciler"]
    config = one(task["config"])
    assert [config["command"], *config["args"]][:2] == ["taskapi", "reconcile"]
    assert one(task["identity"])["env"] is True
    env = env_of(task)
    assert env["TASKAPI_BACKEND"] == "nomad"
    assert "${var.archive_bucket}" in env["TASKAPI_ARCHIVE"]


# ---------------------------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_the_nomad_servers_without_consul() -> None:
    job = the_job("prometheus")
    task = tasks(job)["prometheus"]
    config = one(task["config"])
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", heredoc_default(spec("prometheus"), config["image"]))
    templates = {t["destination"]: t for t in task["template"]}
    yml = heredoc(templates["local/prometheus.yml"]["data"])
    key = templates["secrets/gateway_api_key"]
    assert 'nomadVarExists "nomad/jobs/prometheus"' in heredoc(key["data"])  # a missing variable never blocks
    assert 'nomadVar "nomad/jobs/prometheus"' in heredoc(key["data"])
    assert "metrics_path: /v1/metrics" in yml
    assert "format: [prometheus]" in yml
    assert "consul" not in yml
    assert "static_configs" in yml and "${jsonencode(var.nomad_server_targets)}" in yml
    assert "ec2_sd_configs" in yml and "${var.nomad_server_asg}" in yml
    assert "nomad_sd_configs" in yml and "credentials_file: /secrets/nomad_token" in yml
    assert one(task["identity"])["file"] is True
    service = one(groups(job)["prometheus"]["service"])
    assert service["name"] == "prometheus" and service["provider"] == "nomad"


def render_prometheus_config(targets: list[str], asg: str) -> dict[str, Any]:
    """The Prometheus config as Nomad renders it: HCL's %{ if } directives, interpolations, then the template."""
    task = tasks(the_job("prometheus"))["prometheus"]
    text = heredoc(next(t for t in task["template"] if t["destination"] == "local/prometheus.yml")["data"])
    directive = re.compile(r"\s*%\{~ if ([^}]*)\}(.*?)\s*%\{~ else \}(.*?)\s*%\{~ endif \}", re.S)
    match = directive.search(text)
    assert match and match.group(1).strip() == "length(var.nomad_server_targets) > 0"
    text = text[:match.start()] + (match.group(2) if targets else match.group(3)) + text[match.end():]
    assert "%{" not in text
    text = text.replace("${jsonencode(var.nomad_server_targets)}", json.dumps(targets))
    text = text.replace("${var.aws_region}", "eu-west-1").replace("${var.nomad_server_asg}", asg)
    assert "${" not in text
    text = text.replace('{{ env "attr.unique.network.ip-address" }}', "10.0.0.5")
    assert "{{" not in text
    return dict(yaml.safe_load(text))


def test_prometheus_config_renders_to_valid_yaml_both_ways() -> None:
    static = render_prometheus_config(["10.0.1.10:4646", "10.0.2.10:4646"], "")
    servers, services, gateway = static["scrape_configs"]
    assert gateway["job_name"] == "taskapi-gateway" and gateway["metrics_path"] == "/metrics"
    assert gateway["authorization"] == {"credentials_file": "/secrets/gateway_api_key"}
    assert {"source_labels": ["__meta_nomad_service"], "regex": "taskapi-gateway", "action": "keep"} in \
        gateway["relabel_configs"]
    assert servers["job_name"] == "nomad-servers"
    assert servers["metrics_path"] == "/v1/metrics" and servers["params"] == {"format": ["prometheus"]}
    assert servers["static_configs"] == [{"targets": ["10.0.1.10:4646", "10.0.2.10:4646"]}]
    assert "ec2_sd_configs" not in servers
    assert services["nomad_sd_configs"] == [
        {"server": "http://10.0.0.5:4646", "authorization": {"credentials_file": "/secrets/nomad_token"}}]
    assert {"source_labels": ["__meta_nomad_tags"], "regex": ".*,metrics,.*", "action": "keep"} in \
        services["relabel_configs"]

    discovered = render_prometheus_config([], "taskapi-servers")
    servers = discovered["scrape_configs"][0]
    assert "static_configs" not in servers
    ec2 = one(servers["ec2_sd_configs"])
    assert ec2["region"] == "eu-west-1" and ec2["port"] == 4646
    assert {"name": "tag:aws:autoscaling:groupName", "values": ["taskapi-servers"]} in ec2["filters"]


def heredoc_default(doc: dict[str, Any], value: str) -> str:
    """A ``${var.x}`` value resolved to the variable's default."""
    match = re.fullmatch(r"\$\{var\.(\w+)\}", value)
    if not match:
        return value
    return str(variables(doc)[match.group(1)]["default"])


# ---------------------------------------------------------------------------------------------- autoscaler


def autoscaler_templates() -> dict[str, str]:
    task = tasks(the_job("autoscaler"))["autoscaler"]
    return {t["destination"]: heredoc(t["data"]) for t in task["template"]}


def policies() -> dict[str, dict[str, Any]]:
    """The scaling policies rendered into local/policies/, parsed (HCL interpolations replaced first)."""
    out: dict[str, dict[str, Any]] = {}
    for destination, text in autoscaler_templates().items():
        if not destination.startswith("local/policies/"):
            continue
        text = re.sub(r'\$\{var\.pool_asgs\["([^"]+)"\]\}', r"ASG-OF-\1", text)
        text = text.replace("${var.drain_deadline}", "DRAIN-DEADLINE")
        for name, body in labelled(loads(text)["scaling"]).items():
            out[name] = body
        assert Path(destination).stem in out
    return out


def test_autoscaler_agent_uses_prometheus_aws_asg_and_pass_through() -> None:
    doc = spec("autoscaler")
    task = tasks(job_of(doc)[1])["autoscaler"]
    image = heredoc_default(doc, one(task["config"])["image"])
    assert re.fullmatch(r"hashicorp/nomad-autoscaler:\d+\.\d+\.\d+", image), image
    text = autoscaler_templates()["local/config.hcl"]
    assert 'http://{{ range nomadService "prometheus" }}{{ .Address }}:{{ .Port }}{{ end }}' in text
    agent = loads(re.sub(r"\{\{.*?\}\}", "0", text))  # consul-template renders these first
    assert labelled(agent["apm"])["prometheus"]["driver"] == "prometheus"
    assert labelled(agent["target"])["aws-asg"]["driver"] == "aws-asg"
    assert labelled(agent["strategy"])["pass-through"]["driver"] == "pass-through"
    assert "nomad" not in agent, "the Nomad address and token come from NOMAD_ADDR / NOMAD_TOKEN"
    assert one(task["identity"])["env"] is True


def test_one_scale_to_zero_policy_per_spot_pool(spot_pools: list[Pool]) -> None:
    found = policies()
    assert set(found) == {p.name for p in spot_pools}
    drain = variables(spec("autoscaler"))["drain_deadline"]["default"]
    assert duration_s(drain) >= 3600, "the drain deadline must let a batch task of the default timeout (1h) finish"
    for pool in spot_pools:
        policy = found[pool.name]
        assert policy["enabled"] is True
        assert policy["min"] == 0 == pool.min_size
        assert policy["max"] == pool.max_size
        body = one(policy["policy"])
        assert duration_s(body["cooldown"]) > 0
        assert duration_s(body["evaluation_interval"]) > 0
        check = one(body["check"])
        check_body = one(list(check.values()))
        assert check_body["source"] == "prometheus"
        query = check_body["query"]
        assert query.startswith("sum(") and query.endswith(" OR on() vector(0)")
        assert "nomad_nomad_job_summary_queued{" in query and "nomad_nomad_job_summary_running{" in query
        assert f'node_group="{pool.name}"' in query
        for opening, closing in ("()", "{}", "[]"):
            assert query.count(opening) == query.count(closing), f"unbalanced {opening} in {query}"
        assert labelled(check_body["strategy"]) == {"pass-through": {}}
        target = labelled(body["target"])["aws-asg"]
        assert target["aws_asg_name"] == f"ASG-OF-{pool.name}"
        assert target["node_pool"] == pool.node_pool
        assert target["node_class"] == pool.node_class
        assert target["node_selector_strategy"] == "empty_ignore_system"
        assert target["node_drain_deadline"] == "DRAIN-DEADLINE"
        assert target["node_purge"] is True


def test_only_the_default_task_pool_takes_work_of_unknown_pools(catalog: PoolCatalog) -> None:
    found = policies()
    for name, policy in found.items():
        query = one(one(policy["policy"])["check"])
        query = next(iter(query.values()))["query"]
        assert ("unless on(api) taskapi_api_node_group" in query) == (name == catalog.default_task_pool)


# ---------------------------------------------------------------------------------------------- spot watcher


def test_spot_watcher_is_a_system_job_on_the_spot_pools_only(spot_pools: list[Pool]) -> None:
    job = the_job("spot-watcher")
    assert job["type"] == "system"
    assert job["node_pool"] == "all"
    constraint = one(job["constraint"])
    assert constraint["attribute"] == "${node.pool}"
    assert constraint["operator"] == "set_contains_any"
    assert set(constraint["value"].split(",")) == {p.node_pool for p in spot_pools}


def test_spot_watcher_runs_the_script_with_the_hosts_python() -> None:
    doc = spec("spot-watcher")
    task = tasks(job_of(doc)[1])["watcher"]
    assert task["driver"] in ("exec", "raw_exec")
    config = one(task["config"])
    assert config["command"] == "/usr/bin/python3"
    assert "${NOMAD_TASK_DIR}/spot_watcher.py" in config["args"]
    template = one(task["template"])
    # The script's text arrives as a variable: /v1/jobs/parse (taskapi cluster up) has no file access.
    assert template["data"] == "${var.watcher_script}"
    assert "default" not in variables(doc)["watcher_script"]
    assert template["destination"] == "local/spot_watcher.py"
    text = (ROOT / "scripts" / "spot_watcher.py").read_text(encoding="utf-8")
    assert template["left_delimiter"] not in text and template["right_delimiter"] not in text
    assert one(task["identity"])["env"] is True
    env = env_of(task)
    assert env["NOMAD_NODE_ID"] == "${node.unique.id}"
    assert env["NOMAD_ADDR"] == "unix://${NOMAD_SECRETS_DIR}/api.sock"
    assert task["kill_signal"] == "SIGTERM"


def test_spot_watcher_policy_grants_only_what_it_uses() -> None:
    policy = load(JOBSPECS / "policies" / "spot-watcher.hcl")
    assert set(policy) == {"node", "namespace"}
    assert one(policy["node"]) == {"policy": "write"}
    namespaces = labelled(policy["namespace"])
    assert set(namespaces) == {"*"}
    assert set(namespaces["*"]["capabilities"]) == {"read-job", "alloc-lifecycle"}
    assert "policy" not in namespaces["*"]


@pytest.mark.parametrize("name", ["gateway", "autoscaler", "spot-watcher"])
def test_policy_files_parse(name: str) -> None:
    policy = load(JOBSPECS / "policies" / f"{name}.hcl")
    assert set(policy) <= {"node", "namespace", "agent", "operator"}


def test_the_image_runs_the_command_the_jobspecs_give() -> None:
    # Nomad's docker `command` replaces the image's CMD, not its ENTRYPOINT: an ENTRYPOINT would run twice.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ENTRYPOINT" not in [line.split()[0] for line in dockerfile.splitlines() if line.strip()]
    for name in ("gateway", "reconciler"):
        config = one(tasks(job_of(spec(name))[1])[name]["config"])
        assert config["command"] == "taskapi"
