"""The Nomad double against the documented API samples (shape) and Nomad's behaviour (scenarios)."""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.nomad_double import NomadDouble, compile_filter
from tests.nomad_double.hcl import jobspec_to_json, load, load_builtin

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "nomad-api"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/reference/nomad-api")

# Dicts keyed by data (task names, group names...): every value is compared with the merged sample values.
DATA_MAPS = {
    "TaskStates",
    "TaskResources",
    "Summary",
    "Drivers",
    "Scores",
    "NodesAvailable",
    "HostVolumes",
    "HostNetworks",
    "QueuedAllocations",
    "FailedTGAllocs",
    "ClassFiltered",
    "ConstraintFiltered",
    "ClassExhausted",
    "DimensionExhausted",
}
# Free-form maps (user data): not compared.
FREE_MAPS = {"Meta", "Config", "Env", "Attributes", "Details", "GetterOptions", "Dynamic", "Static", "Links", "Payload"}
# Fields current Nomad serializes that an older or abbreviated documentation sample omits (each is present in
# another sample or in Nomad's structs). Any other extra key fails.
NEWER_FIELDS = {
    # jobs
    "Namespace",
    "Datacenters",
    "Multiregion",
    "NodePool",
    "Periodic",
    "ParameterizedJob",
    "Stop",
    "SubmitTime",
    "Unknown",
    "Spreads",
    "Dispatched",
    "DispatchIdempotencyToken",
    "ConsulToken",
    "VaultToken",
    "Migrate",
    "Reschedule",
    "Stable",
    "Version",
    "ReschedulePolicy",
    "Networks",
    "Services",
    "Volumes",
    "Update",
    "Scaling",
    "StopAfterClientDisconnect",
    "MaxRunDuration",
    "ShutdownDelay",
    "KillSignal",
    "Lifecycle",
    "MemoryMaxMB",
    "Devices",
    "RenderTemplates",
    "Disabled",
    "ConsulNamespace",
    "VaultNamespace",
    "NomadTokenID",
    "Warnings",
    "Index",
    "LastContact",
    "KnownLeader",
    "VolumeEvalID",
    "VolumeEvalIndex",
    "EvalID",
    "EvalCreateIndex",
    "JobModifyIndex",
    "Constraints",
    "Affinities",
    "Meta",
    "Payload",
    "Status",
    "StatusDescription",
    "Region",
    "ID",
    "Name",
    "Type",
    "Priority",
    "AllAtOnce",
    "ParentID",
    "TaskGroups",
    "CreateIndex",
    "ModifyIndex",
    # allocations
    "AllocatedResources",
    "DeploymentStatus",
    "DesiredTransition",
    "FollowupEvalID",
    "JobType",
    "JobVersion",
    "NodeName",
    "PreemptedAllocations",
    "PreemptedByAllocation",
    "ModifyTime",
    "CreateTime",
    "NextAllocation",
    "PreviousAllocation",
    "RescheduleTracker",
    "LastReschedule",
    "DeploymentID",
    "AllocStates",
    "NetworkStatus",
    "TaskHandle",
    "LastRestart",
    "Restarts",
    "StartedAt",
    "FinishedAt",
    "Details",
    "DisplayMessage",
    "GenericSource",
    "QuotaExhausted",
    "ResourcesExhausted",
    "ScoreMetaData",
    "NodesInPool",
    "AllocModifyIndex",
    "NoShutdownDelay",
    # nodes and evaluations
    "NodeResources",
    "ReservedResources",
    "LastDrain",
    "WaitUntil",
    "RelatedEvals",
    "QuotaLimitReached",
    "LeaderACL",
    "ForceReschedule",
    "CSIControllerPlugins",
    "CSINodePlugins",
    "NodeID",
    "NodeModifyIndex",
    "ClassEligibility",
    "EscapedComputedClass",
    "AnnotatePlan",
    "QueuedAllocations",
    "SnapshotIndex",
    "Wait",
    "NextEval",
    "PreviousEval",
    "BlockedEval",
}
# Doc errors: the allocation sample puts ``Spreads`` on tasks (Nomad has it on jobs and groups only).
MISSING_OK = {"Job.TaskGroups[].Tasks[].Spreads"}
# Documented exception: the allocation sample shows RescheduleTracker.Events[].Delay as a string; it is int ns.
TYPE_EXCEPTIONS = {"RescheduleTracker.Events[].Delay"}


def kind(value: Any) -> str:
    """A JSON type name (ints and floats are both numbers)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def shape_diff(sample: Any, actual: Any, path: str = "", extras: set[str] | None = None) -> list[str]:
    """Differences of keys and JSON types between a documented sample and a double response.

    ``null`` on either side matches anything (Nomad omits optional objects); missing keys always count; extra
    keys count unless listed in ``extras`` (fields newer than the sample).
    """
    allowed = NEWER_FIELDS if extras is None else extras
    if sample is None or actual is None:
        return []
    leaf = re.sub(r"\[\]$", "", path.rsplit(".", 1)[-1])
    if leaf in FREE_MAPS:
        return []
    if isinstance(sample, dict) and isinstance(actual, dict):
        if leaf in DATA_MAPS:
            if not sample or not actual:
                return []
            proto = merged(list(sample.values()))
            return [d for v in actual.values() for d in shape_diff(proto, v, path + ".*", allowed)]
        problems = [f"{path}.{k}: missing" for k in sample if k not in actual and f"{path}.{k}" not in MISSING_OK]
        problems += [f"{path}.{k}: unexpected" for k in actual if k not in sample and k not in allowed]
        for key in sample:
            if key in actual:
                problems += shape_diff(sample[key], actual[key], f"{path}.{key}".lstrip("."), allowed)
        return problems
    if isinstance(sample, list) and isinstance(actual, list):
        if not sample or not actual:
            return []
        proto = merged(sample)
        return sorted({d for item in actual for d in shape_diff(proto, item, path + "[]", allowed)})
    if kind(sample) != kind(actual) and path not in TYPE_EXCEPTIONS:
        return [f"{path}: {kind(sample)} in sample, {kind(actual)} in double"]
    return []


def merged(items: list[Any]) -> Any:
    """One prototype for a list of sample items: dicts are merged (union of keys, first non-null value)."""
    if not all(isinstance(i, dict) for i in items):
        return next((i for i in items if i is not None), None)
    out: dict[str, Any] = {}
    for item in items:
        for key, value in item.items():
            if isinstance(out.get(key), dict) and isinstance(value, dict):
                out[key] = merged([out[key], value])
            elif out.get(key) is None:
                out[key] = value
    return out


def sample(name: str) -> Any:
    """A sample file as JSON (the read-node sample misses a comma in the docs)."""
    text = (SAMPLES / name).read_text()
    if name == "nodes--read-node.response.txt":
        text = text.replace('  }\n  "ID"', '  },\n  "ID"')
    return json.loads(text)


def assert_shape(name: str, actual: Any) -> None:
    """Fail with every difference between the sample and the response."""
    problems = shape_diff(sample(name), actual)
    assert not problems, f"{name}:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------- fixtures


def task_api_job(
    job_id: str = "taskapi-demo",
    attempts: int = 1,
    delay_s: int = 5,
    delay_function: str = "constant",
    **group_extra: Any,
) -> dict[str, Any]:
    """A parameterized batch job shaped like the gateway's."""
    group = {
        "Name": "main",
        "Count": 1,
        "RestartPolicy": {"Attempts": 0, "Interval": 24 * 3600 * 10**9, "Delay": 15 * 10**9, "Mode": "fail"},
        "ReschedulePolicy": {
            "Attempts": attempts,
            "Interval": 24 * 3600 * 10**9,
            "Delay": delay_s * 10**9,
            "DelayFunction": delay_function,
            "MaxDelay": 3600 * 10**9,
            "Unlimited": False,
        },
        "Tasks": [
            {
                "Name": "main",
                "Driver": "docker",
                "Leader": True,
                "Config": {"image": "busybox"},
                "DispatchPayload": {"File": "job.json"},
                "Resources": {"CPU": 500, "MemoryMB": 256},
            }
        ],
        **group_extra,
    }
    return {
        "ID": job_id,
        "Type": "batch",
        "Datacenters": ["dc1"],
        "ParameterizedJob": {"Payload": "optional", "MetaRequired": ["task_id"], "MetaOptional": ["timeout"]},
        "Meta": {"taskapi.spec": "{}"},
        "TaskGroups": [group],
    }


@pytest.fixture
def double() -> Iterator[NomadDouble]:
    """A started double with one node."""
    with NomadDouble(seed=7, heartbeat=0.2) as nomad:
        nomad.add_node("node-1")
        yield nomad


def register(nomad: NomadDouble, job: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/jobs."""
    resp = requests.post(f"{nomad.address}/v1/jobs", json={"Job": job}, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def dispatch(
    nomad: NomadDouble,
    parent: str,
    payload: bytes = b"{}",
    token: str = "",
    template: str = "t1",
    meta: dict[str, str] | None = None,
) -> requests.Response:
    """POST /v1/job/<parent>/dispatch."""
    body = {
        "Payload": base64.b64encode(payload).decode(),
        "Meta": meta or {"task_id": template},
        "IdPrefixTemplate": template,
    }
    params = {"idempotency_token": token} if token else None
    return requests.post(f"{nomad.address}/v1/job/{parent}/dispatch", params=params, json=body, timeout=5)


def child_of(nomad: NomadDouble, template: str = "t1", **kwargs: Any) -> str:
    """Register the demo job if needed, dispatch and return the child ID."""
    if not nomad.has_job("taskapi-demo"):
        register(nomad, task_api_job(**kwargs))
    resp = dispatch(nomad, "taskapi-demo", template=template)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["DispatchedJobID"])


def get(nomad: NomadDouble, path: str, **params: Any) -> requests.Response:
    """GET a double path."""
    return requests.get(f"{nomad.address}{path}", params=params or None, timeout=15)


# ---------------------------------------------------------------------------------------------- shapes


@pytest.fixture
def busy(double: NomadDouble) -> dict[str, Any]:
    """A cluster with a rescheduled, running dispatched child and a few other objects."""
    created = register(double, task_api_job())
    child = child_of(double)
    first = double.place(child)
    assert first
    double.start(first)
    double.finish(first, exit_code=1)
    double.advance(5)
    second = double.latest_alloc(child)
    assert second and second != first
    double.start(second)
    return {"created": created, "child": child, "first": first, "second": second}


def test_shapes_of_job_endpoints(double: NomadDouble, busy: dict[str, Any]) -> None:
    child = busy["child"]
    assert_shape("jobs--create-job.response.json", busy["created"])
    assert_shape("jobs--list-jobs.response.json", get(double, "/v1/jobs").json())
    assert_shape("jobs--list-job-allocations.response.json", get(double, f"/v1/job/{child}/allocations").json())
    assert_shape("jobs--read-job-summary.response.json", get(double, f"/v1/job/{child}/summary").json())
    resp = dispatch(double, "taskapi-demo", template="t2")
    assert_shape("jobs--dispatch-job.response.json", resp.json())
    raw = requests.post(
        f"{double.address}/v1/job/taskapi-demo/dispatch/payload?meta:task_id=t3", data=b"raw body", timeout=5
    )
    assert raw.status_code == 200, raw.text
    assert_shape("jobs--dispatch-job-with-raw-payload-body.response.json", raw.json())
    assert double.payload(raw.json()["DispatchedJobID"]) == b"raw body"

    doc_job = copy.deepcopy(sample("jobs--read-job.response.json"))
    doc_job["Periodic"] = None  # periodic and parameterized at once is not a valid job
    created = register(double, doc_job)
    assert created["EvalID"] == ""
    read = get(double, "/v1/job/example", namespace="apps")
    assert read.status_code == 200, read.text
    assert_shape("jobs--read-job.response.json", read.json())
    doc_job["Meta"] = {"foo": "baz"}
    update = requests.post(f"{double.address}/v1/job/example?namespace=apps", json={"Job": doc_job}, timeout=5)
    assert_shape("jobs--update-existing-job.response.json", update.json())
    stop = requests.delete(f"{double.address}/v1/job/example?namespace=apps", timeout=5)
    assert_shape("jobs--stop-a-job.response.json", stop.json())

    parse_req = sample("jobs--parse-job.request.json")
    parsed = requests.post(f"{double.address}/v1/jobs/parse", json=parse_req, timeout=5)
    assert parsed.status_code == 200, parsed.text
    assert_shape("jobs--parse-job.response.json", parsed.json())
    assert parsed.json()["ID"] == "example" and parsed.json()["Type"] == "service"


def test_shapes_of_allocation_endpoints(double: NomadDouble, busy: dict[str, Any]) -> None:
    second = busy["second"]
    assert_shape("allocations--list-allocations.response.json", get(double, "/v1/allocations").json())
    alloc = get(double, f"/v1/allocation/{second}").json()
    assert_shape("allocations--read-allocation.response.json", alloc)
    assert isinstance(alloc["RescheduleTracker"]["Events"][0]["Delay"], int)
    node_id = alloc["NodeID"]
    assert_shape("nodes--list-node-allocations.response.json", get(double, f"/v1/node/{node_id}/allocations").json())
    evals = get(double, "/v1/evaluations").json()
    assert_shape("evaluations--list-evaluations.response.json", evals)
    ev = get(double, f"/v1/evaluation/{alloc['EvalID']}", related="true").json()
    assert_shape("evaluations--read-evaluation.response.json", ev)
    ev_allocs = get(double, f"/v1/evaluation/{alloc['EvalID']}/allocations").json()
    assert [a["ID"] for a in ev_allocs] == [second]
    assert_shape("evaluations--list-allocations-for-evaluation.response.json", ev_allocs)
    for action, req in (("signal", "allocations--signal-allocation"), ("restart", "allocations--restart-allocation")):
        body = sample(f"{req}.request.json")
        body.pop("Task", None)
        body.pop("TaskName", None)
        resp = requests.post(f"{double.address}/v1/client/allocation/{second}/{action}", json=body, timeout=5)
        assert resp.status_code == 200, resp.text
        assert_shape(f"{req}.response.json", resp.json())
    stop = requests.post(f"{double.address}/v1/allocation/{second}/stop", timeout=5)
    assert_shape("allocations--stop-allocation.response.json", stop.json())


def test_shapes_of_node_client_and_event_endpoints(double: NomadDouble, busy: dict[str, Any]) -> None:
    node_id = double.alloc(busy["second"])["NodeID"]
    assert_shape("nodes--list-nodes.response.json", get(double, "/v1/nodes", os="true").json())
    assert_shape("nodes--read-node.response.txt", get(double, f"/v1/node/{node_id}").json())
    meta = get(double, "/v1/client/metadata", node_id=node_id)
    assert meta.status_code == 200
    update = requests.post(
        f"{double.address}/v1/client/metadata?node_id={node_id}",
        json=sample("client--update-dynamic-node-metadata.request.json"),
        timeout=5,
    )
    assert_shape("client--update-dynamic-node-metadata.response.json", update.json())
    assert update.json()["Meta"]["foo"] == "bar" and "key_to_unset" not in update.json()["Meta"]
    assert_shape(
        "client--read-dynamic-node-metadata.response.json", get(double, "/v1/client/metadata", node_id=node_id).json()
    )
    other = double.add_node("node-2")
    elig = requests.post(
        f"{double.address}/v1/node/{other}/eligibility",
        json=sample("nodes--toggle-node-eligibility.request.json"),
        timeout=5,
    )
    assert_shape("nodes--toggle-node-eligibility.response.json", elig.json())
    drain = requests.post(
        f"{double.address}/v1/node/{other}/drain", json=sample("nodes--drain-node.request.json"), timeout=5
    )
    assert_shape("nodes--drain-node.response.json", drain.json())
    with requests.get(
        f"{double.address}/v1/event/stream", params={"topic": "Node", "index": 1}, stream=True, timeout=5
    ) as resp:
        first = json.loads(next(line for line in resp.iter_lines() if line and line != b"{}"))
    assert first["Events"][0]["Type"] == "NodeRegistration"
    assert_shape("events--event-stream.response.json", first)
    logs = get(double, f"/v1/client/fs/logs/{busy['second']}", task="main", type="stdout")
    assert logs.status_code == 200 and logs.text == ""
    double.append_log(busy["second"], "stdout", b"hello\n")
    frame = get(double, f"/v1/client/fs/logs/{busy['second']}", task="main", type="stdout").json()
    assert set(frame) == {"File", "Offset", "Data"} and base64.b64decode(frame["Data"]) == b"hello\n"


def test_shape_comparer_catches_differences() -> None:
    assert shape_diff({"A": 1, "B": {"C": "x"}}, {"A": 2, "B": {"C": "y"}}) == []
    assert shape_diff({"A": 1}, {"A": "1"}) == ["A: number in sample, str in double"]
    assert shape_diff({"A": 1}, {}) == [".A: missing"]
    assert shape_diff({"A": 1}, {"A": 1, "Zzz": 2}) == [".Zzz: unexpected"]
    assert shape_diff({"TaskStates": {"x": {"State": "a"}}}, {"TaskStates": {"y": {"State": 1}}}) == [
        "TaskStates.*.State: str in sample, number in double"
    ]


# ---------------------------------------------------------------------------------------------- wire behaviour


def test_errors_are_plain_text_with_nomads_codes(double: NomadDouble) -> None:
    for path, message in (("/v1/job/nope", "job not found"), ("/v1/allocation/nope", "alloc not found")):
        resp = get(double, path)
        assert resp.status_code == 404
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert resp.text == message
    gone = requests.delete(f"{double.address}/v1/job/nope?purge=true", timeout=5)
    assert gone.status_code == 200
    assert gone.json()["EvalID"] == "" and gone.json()["JobModifyIndex"] == 0
    bad = requests.post(f"{double.address}/v1/jobs", json={"Job": {"ID": "x", "TaskGroups": []}}, timeout=5)
    assert bad.status_code == 400 and "Missing job task groups" in bad.text
    assert get(double, "/v1/jobs", region="mars").status_code == 500
    assert get(double, "/v1/jobs", filter='Status ~ "x"').status_code == 400


def test_acl_token_required_when_acls_are_on() -> None:
    with NomadDouble(acl_token="secret") as nomad:
        assert requests.get(f"{nomad.address}/v1/jobs", timeout=5).status_code == 403
        bad = requests.get(f"{nomad.address}/v1/jobs", headers={"X-Nomad-Token": "wrong"}, timeout=5)
        assert bad.status_code == 403 and bad.headers["Content-Type"].startswith("text/plain")
        ok = requests.get(f"{nomad.address}/v1/jobs", headers={"X-Nomad-Token": "secret"}, timeout=5)
        assert ok.status_code == 200 and ok.json() == []
        assert requests.get(f"{nomad.address}/v1/status/leader", timeout=5).status_code == 200


def test_every_read_has_an_index_and_slash_ids_route_raw_and_escaped(double: NomadDouble) -> None:
    child = child_of(double)
    assert "/dispatch-t1-" in child
    escaped = child.replace("/", "%2F")
    for path in (f"/v1/job/{child}", f"/v1/job/{escaped}"):
        resp = get(double, path)
        assert resp.status_code == 200 and resp.json()["ID"] == child
        assert int(resp.headers["X-Nomad-Index"]) >= 1
    for suffix in ("/allocations", "/summary", "/evaluations"):
        for job_path in (child, escaped):
            resp = get(double, f"/v1/job/{job_path}{suffix}")
            assert resp.status_code == 200, (suffix, resp.text)
            assert "X-Nomad-Index" in resp.headers
    assert get(double, f"/v1/job/{escaped}/summary").json()["JobID"] == child
    for path in ("/v1/jobs", "/v1/allocations", "/v1/nodes", "/v1/evaluations"):
        assert "X-Nomad-Index" in get(double, path).headers


def test_blocking_query_returns_when_the_index_moves(double: NomadDouble) -> None:
    child = child_of(double)
    first = get(double, f"/v1/job/{child}/allocations")
    index = int(first.headers["X-Nomad-Index"])
    results: dict[str, Any] = {}
    started = threading.Event()

    def query() -> None:
        started.set()
        resp = get(double, f"/v1/job/{child}/allocations", index=index, wait="30s")
        results["resp"] = resp

    thread = threading.Thread(target=query)
    thread.start()
    started.wait()
    assert double.wait_for_waiters(1, timeout=5)
    assert "resp" not in results
    alloc_id = double.place(child)
    thread.join(timeout=10)
    resp = results["resp"]
    assert int(resp.headers["X-Nomad-Index"]) > index
    assert [a["ID"] for a in resp.json()] == [alloc_id]
    timed = get(double, f"/v1/job/{child}/allocations", index=resp.headers["X-Nomad-Index"], wait="50ms")
    assert timed.status_code == 200 and timed.headers["X-Nomad-Index"] == resp.headers["X-Nomad-Index"]


def test_list_jobs_prefix_meta_filter_and_paging(double: NomadDouble) -> None:
    register(double, task_api_job())
    kids = [child_of(double, template=f"k{i}") for i in range(3)]
    double.finish(double.place(kids[0]) or "", exit_code=0)
    listed = get(double, "/v1/jobs", prefix="taskapi-demo/", meta="true").json()
    assert [j["ID"] for j in listed] == sorted(kids)
    assert listed[0]["Meta"]["task_id"].startswith("k")
    assert "Meta" not in get(double, "/v1/jobs").json()[0]
    dead = get(double, "/v1/jobs", filter='ParentID == "taskapi-demo" and Status == "dead"').json()
    assert [j["ID"] for j in dead] == [kids[0]]
    by_meta = get(double, "/v1/jobs", filter='Meta.task_id == "k2"').json()
    assert [j["ID"] for j in by_meta] == [kids[2]]
    page1 = get(double, "/v1/jobs", per_page=2)
    token = page1.headers["X-Nomad-NextToken"]
    page2 = get(double, "/v1/jobs", per_page=2, next_token=token)
    assert len(page1.json()) == 2 and len(page2.json()) == 2
    assert "X-Nomad-NextToken" not in page2.headers
    assert {j["ID"] for j in page1.json() + page2.json()} == {"taskapi-demo", *kids}


def test_filter_subset() -> None:
    job = {"ParentID": "p", "Status": "dead", "Meta": {"k": "v"}, "Datacenters": ["dc1"], "Stop": False}
    truths = [
        'ParentID == "p"',
        'Status != "running"',
        'Meta.k == "v" and "dc1" in Datacenters',
        'not (Status == "running") or Stop == true',
        "Meta is not empty",
        'ParentID matches "^p$"',
        "Meta.missing is empty",
        'Datacenters contains "dc1"',
        "Stop == false",
    ]
    for expr in truths:
        assert compile_filter(expr)(job), expr
    assert not compile_filter('Meta.k == "w"')(job)


# ---------------------------------------------------------------------------------------------- dispatch


def test_register_parameterized_job_creates_no_eval_and_stays_running(double: NomadDouble) -> None:
    created = register(double, task_api_job())
    assert created["EvalID"] == "" and created["EvalCreateIndex"] == 0
    job = get(double, "/v1/job/taskapi-demo").json()
    assert job["Status"] == "running" and job["ParameterizedJob"]["MetaRequired"] == ["task_id"]
    assert get(double, "/v1/evaluations").json() == []


def test_dispatch_child_fields_and_idempotency(double: NomadDouble) -> None:
    register(double, task_api_job())
    first = dispatch(
        double,
        "taskapi-demo",
        payload=b'{"x": 1}',
        token="tok-1",
        template="abc",
        meta={"task_id": "abc", "timeout": "60"},
    )
    assert first.status_code == 200, first.text
    body = first.json()
    child = body["DispatchedJobID"]
    assert re.fullmatch(r"taskapi-demo/dispatch-abc-\d+-[0-9a-f]{8}", child)
    assert body["EvalID"] and body["Index"] == body["EvalCreateIndex"] == body["JobCreateIndex"] + 1
    again = dispatch(
        double,
        "taskapi-demo",
        payload=b'{"x": 1}',
        token="tok-1",
        template="abc",
        meta={"task_id": "abc", "timeout": "60"},
    )
    assert again.status_code == 200
    assert again.json()["DispatchedJobID"] == child and again.json()["EvalID"] == ""
    assert double.children("taskapi-demo") == [child]
    job = get(double, f"/v1/job/{child}").json()
    assert job["ParentID"] == "taskapi-demo" and job["Dispatched"] is True
    assert job["Meta"] == {"taskapi.spec": "{}", "task_id": "abc", "timeout": "60"}
    assert job["Status"] == "pending" and job["DispatchIdempotencyToken"] == "tok-1"
    assert double.payload(child) == b'{"x": 1}'
    plain = dispatch(double, "taskapi-demo", template="")
    assert re.fullmatch(r"taskapi-demo/dispatch-\d+-[0-9a-f]{8}", plain.json()["DispatchedJobID"])


def test_dispatch_validation_errors_are_500_text(double: NomadDouble) -> None:
    register(double, task_api_job())
    big = dispatch(double, "taskapi-demo", payload=b"x" * 16385)
    assert big.status_code == 500 and big.headers["Content-Type"].startswith("text/plain")
    assert big.text == "Payload exceeds maximum size; 16385 > 16384"
    assert dispatch(double, "taskapi-demo", payload=b"x" * 16384).status_code == 200
    missing = dispatch(double, "taskapi-demo", meta={"timeout": "1"})
    assert missing.status_code == 500 and missing.text == "Dispatch did not provide required meta keys: [task_id]"
    extra = dispatch(double, "taskapi-demo", meta={"task_id": "a", "zzz": "1"})
    assert extra.status_code == 500 and "unpermitted metadata keys: [zzz]" in extra.text
    assert dispatch(double, "nope").status_code == 500


def test_auto_run_places_and_starts_on_dispatch() -> None:
    with NomadDouble(auto_run=True) as nomad:
        register(nomad, task_api_job())
        queued = child_of(nomad, template="q")
        assert nomad.summary(queued)["Summary"]["main"]["Queued"] == 1
        assert get(nomad, f"/v1/job/{queued}").json()["Status"] == "pending"
        nomad.add_node("late")
        assert nomad.summary(queued)["Summary"]["main"]["Running"] == 1
        child = child_of(nomad, template="r")
        allocs = get(nomad, f"/v1/job/{child}/allocations").json()
        assert [a["ClientStatus"] for a in allocs] == ["running"]
        assert get(nomad, f"/v1/job/{child}").json()["Status"] == "running"


# ---------------------------------------------------------------------------------------------- scheduling


def test_placement_respects_pool_and_class_and_queues_otherwise(double: NomadDouble) -> None:
    job = task_api_job("gpu-job")
    job["NodePool"] = "gpu-spot"
    job["Constraints"] = [{"LTarget": "${node.class}", "RTarget": "g5", "Operand": "="}]
    register(double, job)
    child = dispatch(double, "gpu-job", meta={"task_id": "g"}).json()["DispatchedJobID"]
    assert double.place(child) is None
    summary = get(double, f"/v1/job/{child}/summary").json()
    assert summary["Summary"]["main"]["Queued"] == 1 and get(double, f"/v1/job/{child}/allocations").json() == []
    double.add_node("wrong-class", pool="gpu-spot", node_class="g4dn")
    assert double.place(child) is None
    node = double.add_node("gpu-1", pool="gpu-spot", node_class="g5")
    alloc_id = double.place(child)
    assert alloc_id and double.alloc(alloc_id)["NodeID"] == node
    assert get(double, f"/v1/job/{child}/summary").json()["Summary"]["main"]["Queued"] == 0


def test_task_states_on_success_and_oom(double: NomadDouble) -> None:
    child = child_of(double)
    alloc_id = double.place(child) or ""
    assert get(double, f"/v1/allocation/{alloc_id}").json()["TaskStates"] is None
    double.start(alloc_id)
    state = get(double, f"/v1/allocation/{alloc_id}").json()["TaskStates"]["main"]
    assert state["State"] == "running" and [e["Type"] for e in state["Events"]] == ["Received", "Task Setup", "Started"]
    double.finish(alloc_id, exit_code=0, stdout=b"done\n")
    alloc = get(double, f"/v1/allocation/{alloc_id}").json()
    assert alloc["ClientStatus"] == "complete"
    state = alloc["TaskStates"]["main"]
    assert state["State"] == "dead" and state["Failed"] is False and state["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert get(double, f"/v1/job/{child}").json()["Status"] == "dead"

    oom_child = child_of(double, template="oom")
    oom_alloc = double.place(oom_child) or ""
    double.start(oom_alloc)
    double.finish(oom_alloc, oom=True)
    alloc = get(double, f"/v1/allocation/{oom_alloc}").json()
    events = alloc["TaskStates"]["main"]["Events"]
    terminated = next(e for e in events if e["Type"] == "Terminated")
    assert terminated["Details"] == {
        "exit_code": "137",
        "signal": "0",
        "oom_killed": "true",
        "exit_message": "OOM Killed",
    }
    assert terminated["ExitCode"] == 137 and events[-1]["Type"] == "Not Restarting"
    assert alloc["ClientStatus"] == "failed" and alloc["TaskStates"]["main"]["Failed"] is True


def test_reschedule_attempts_delay_and_exhaustion(double: NomadDouble) -> None:
    child = child_of(double, attempts=2, delay_s=10, delay_function="exponential")
    first = double.place(child) or ""
    double.start(first)
    double.finish(first, exit_code=2)
    failed = get(double, f"/v1/allocation/{first}").json()
    assert failed["ClientStatus"] == "failed" and failed["FollowupEvalID"]
    follow = get(double, f"/v1/evaluation/{failed['FollowupEvalID']}").json()
    assert follow["Status"] == "pending" and follow["WaitUntil"]
    assert get(double, f"/v1/job/{child}").json()["Status"] == "pending"
    double.advance(9)
    assert double.alloc_ids(child) == [first]
    double.advance(1)
    second = double.latest_alloc(child) or ""
    assert second != first
    alloc = get(double, f"/v1/allocation/{second}").json()
    assert alloc["PreviousAllocation"] == first
    assert alloc["RescheduleTracker"]["Events"][0]["Delay"] == 10 * 10**9
    assert get(double, f"/v1/allocation/{first}").json()["NextAllocation"] == second
    double.start(second)
    double.finish(second, exit_code=2)
    double.advance(19)
    assert len(double.alloc_ids(child)) == 2
    third = double.place(child) or ""
    events = get(double, f"/v1/allocation/{third}").json()["RescheduleTracker"]["Events"]
    assert [e["Delay"] for e in events] == [10 * 10**9, 20 * 10**9]
    double.start(third)
    double.finish(third, exit_code=2)
    double.advance(3600)
    assert len(double.alloc_ids(child)) == 3
    assert get(double, f"/v1/job/{child}").json()["Status"] == "dead"
    assert get(double, f"/v1/job/{child}/summary").json()["Summary"]["main"]["Failed"] == 3


def test_lost_node_replaces_regardless_of_reschedule_policy(double: NomadDouble) -> None:
    child = child_of(double, attempts=0)
    first = double.place(child) or ""
    double.start(first)
    node = double.alloc(first)["NodeID"]
    spare = double.add_node("node-2")
    assert double.lose_node(node) == [first]
    lost = get(double, f"/v1/allocation/{first}").json()
    assert lost["ClientStatus"] == "lost" and lost["DesiredDescription"] == "alloc is lost since its node is down"
    second = double.place(child) or ""
    replacement = get(double, f"/v1/allocation/{second}").json()
    assert replacement["PreviousAllocation"] == first and replacement["NodeID"] == spare
    assert replacement["RescheduleTracker"] is None
    assert get(double, f"/v1/node/{node}").json()["Status"] == "down"
    assert get(double, f"/v1/job/{child}/summary").json()["Summary"]["main"]["Lost"] == 1


def test_alloc_stop_migrates_and_places_a_replacement(double: NomadDouble) -> None:
    child = child_of(double)
    first = double.place(child) or ""
    double.start(first)
    resp = requests.post(f"{double.address}/v1/allocation/{first}/stop", timeout=5)
    assert resp.status_code == 200 and resp.json()["EvalID"]
    stopped = get(double, f"/v1/allocation/{first}").json()
    assert stopped["DesiredStatus"] == "stop" and stopped["DesiredTransition"]["Migrate"] is True
    assert stopped["ClientStatus"] == "complete"
    assert [e["Type"] for e in stopped["TaskStates"]["main"]["Events"]][-3:] == ["Killing", "Terminated", "Killed"]
    second = double.place(child) or ""
    assert get(double, f"/v1/allocation/{second}").json()["PreviousAllocation"] == first
    double.start(second)
    third_eval = double.stop_alloc_for_spot(second)
    assert third_eval and double.place(child)


def test_drain_does_not_replace_batch_allocations(double: NomadDouble) -> None:
    child = child_of(double)
    alloc_id = double.place(child) or ""
    double.start(alloc_id)
    node = double.alloc(alloc_id)["NodeID"]
    double.add_node("node-2")
    double.drain_node(node, deadline_s=60)
    read = get(double, f"/v1/node/{node}").json()
    assert read["SchedulingEligibility"] == "ineligible" and read["Drain"] is True
    assert get(double, f"/v1/allocation/{alloc_id}").json()["ClientStatus"] == "running"
    assert double.place(child) is None and double.alloc_ids(child) == [alloc_id]
    double.advance(61)
    killed = get(double, f"/v1/allocation/{alloc_id}").json()
    assert killed["ClientStatus"] == "complete" and killed["DesiredTransition"]["Migrate"] is True
    assert double.place(child) is None and double.alloc_ids(child) == [alloc_id]
    node_after = get(double, f"/v1/node/{node}").json()
    assert node_after["Drain"] is False and node_after["LastDrain"]["Status"] == "complete"


def test_gc_purges_dead_children_and_forgets_tokens(double: NomadDouble) -> None:
    register(double, task_api_job())
    child = dispatch(double, "taskapi-demo", token="once").json()["DispatchedJobID"]
    alloc_id = double.place(child) or ""
    double.start(alloc_id)
    double.finish(alloc_id)
    assert double.gc() == [child]
    assert get(double, f"/v1/job/{child}").status_code == 404
    assert get(double, f"/v1/allocation/{alloc_id}").status_code == 404
    again = dispatch(double, "taskapi-demo", token="once").json()
    assert again["DispatchedJobID"] != child and again["EvalID"]
    assert get(double, "/v1/job/taskapi-demo/summary").json()["Children"] == {"Pending": 1, "Running": 0, "Dead": 0}


def test_max_run_duration_only_on_new_versions() -> None:
    for version, supported in (("2.0.3", True), ("1.11.0", False)):
        with NomadDouble(version=version, auto_run=True) as nomad:
            nomad.add_node("n")
            register(nomad, task_api_job(MaxRunDuration=60 * 10**9))
            parent = get(nomad, "/v1/job/taskapi-demo").json()
            assert ("MaxRunDuration" in parent["TaskGroups"][0]) is supported
            child = child_of(nomad)
            alloc_id = nomad.latest_alloc(child) or ""
            nomad.advance(61)
            alloc = get(nomad, f"/v1/allocation/{alloc_id}").json()
            if supported:
                assert alloc["ClientStatus"] == "complete"
                messages = [e["DisplayMessage"] for e in alloc["TaskStates"]["main"]["Events"]]
                assert "allocation exceeded max_run_duration" in messages
            else:
                assert alloc["ClientStatus"] == "running"


def test_logs_plain_offsets_and_follow_ends_with_the_alloc(double: NomadDouble) -> None:
    child = child_of(double)
    alloc_id = double.place(child) or ""
    double.start(alloc_id)
    double.append_log(alloc_id, "stdout", b"line 1\n")
    double.append_log(alloc_id, "stderr", b"oops\n")
    url = f"{double.address}/v1/client/fs/logs/{alloc_id}"
    base = {"task": "main", "plain": "true"}
    assert requests.get(url, params={**base, "type": "stdout"}, timeout=5).text == "line 1\n"
    assert requests.get(url, params={**base, "type": "stderr"}, timeout=5).text == "oops\n"
    tail = requests.get(url, params={**base, "type": "stdout", "origin": "end", "offset": 2}, timeout=5)
    assert tail.text == "1\n"
    assert requests.get(url, params={**base, "type": "bogus"}, timeout=5).status_code == 400
    chunks: list[bytes] = []
    with requests.get(url, params={**base, "type": "stdout", "follow": "true"}, stream=True, timeout=10) as resp:
        for chunk in resp.iter_content(chunk_size=None):
            chunks.append(chunk)
            if b"".join(chunks) == b"line 1\n":
                double.append_log(alloc_id, "stdout", b"line 2\n")
            elif b"".join(chunks) == b"line 1\nline 2\n":
                double.finish(alloc_id, stdout=b"bye\n")
    assert b"".join(chunks) == b"line 1\nline 2\nbye\n"


def test_event_stream_topic_filter_and_heartbeat(double: NomadDouble) -> None:
    child = child_of(double)
    start = double.index
    alloc_id = double.place(child) or ""
    double.start(alloc_id)
    with requests.get(
        f"{double.address}/v1/event/stream", params={"topic": "Allocation", "index": start}, stream=True, timeout=5
    ) as resp:
        lines = resp.iter_lines()
        frames = []
        while True:
            line = next(lines)
            if line == b"{}":
                break
            frames.append(json.loads(line))
    events = [e for f in frames for e in f["Events"]]
    assert {e["Topic"] for e in events} == {"Allocation"}
    assert events[-1]["Payload"]["Allocation"]["ClientStatus"] == "running"
    assert all(f["Index"] >= start for f in frames)


# ---------------------------------------------------------------------------------------------- clients


def test_request_counter(double: NomadDouble) -> None:
    register(double, task_api_job())
    double.reset_requests()
    dispatch(double, "taskapi-demo")
    assert double.request_count() == 1
    assert double.request_count("POST", "/v1/job/taskapi-demo/dispatch") == 1


def test_hcl_parse_both_parsers() -> None:
    text = """
    job "taskapi-x" {
      type = "batch"   # comment
      node_pool = "cpu-spot"
      parameterized {
        payload = "optional"
        meta_required = ["task_id"]
      }
      group "main" {
        max_run_duration = "1h"
        reschedule {
          attempts = 2
          delay = "5s"
          delay_function = "exponential"
        }
        task "main" {
          driver = "docker"
          config { image = "busybox" }
          resources {
            cpu = 500
            memory = 256
            device "nvidia/gpu" { count = 1 }
          }
          dispatch_payload { file = "job.json" }
        }
      }
    }
    """
    assert load(text)["job"][0]["taskapi-x"]["type"] == load_builtin(text)["job"][0]["taskapi-x"]["type"]
    job = jobspec_to_json(text)
    assert job["ParameterizedJob"]["MetaRequired"] == ["task_id"]
    group = job["TaskGroups"][0]
    assert group["MaxRunDuration"] == 3600 * 10**9 and group["ReschedulePolicy"]["Delay"] == 5 * 10**9
    assert group["Tasks"][0]["Resources"] == {
        "CPU": 500,
        "MemoryMB": 256,
        "Devices": [{"Name": "nvidia/gpu", "Count": 1}],
    }


def test_python_nomad_client_works_against_the_double(double: NomadDouble) -> None:
    nomad = pytest.importorskip("nomad")
    client = nomad.Nomad(address=double.address, timeout=5)
    client.jobs.register_job({"Job": task_api_job()})
    assert client.job.get_job("taskapi-demo")["Status"] == "running"
    body = {"Payload": base64.b64encode(b"{}").decode(), "Meta": {"task_id": "py"}, "IdPrefixTemplate": "py"}
    resp = client.job.request("taskapi-demo", "dispatch", params={"idempotency_token": "tok"}, json=body, method="post")
    child = resp.json()["DispatchedJobID"]
    again = client.job.request(
        "taskapi-demo", "dispatch", params={"idempotency_token": "tok"}, json=body, method="post"
    )
    assert again.json()["DispatchedJobID"] == child
    alloc_id = double.place(child)
    allocs = client.job.get_allocations(child)
    assert [a["ID"] for a in allocs] == [alloc_id]
    assert client.job.get_summary(child)["Summary"]["main"]["Starting"] == 1
    assert [j["ID"] for j in client.jobs.get_jobs(prefix="taskapi-demo/")] == [child]
    assert client.allocation.get_allocation(alloc_id)["JobID"] == child
    with pytest.raises(nomad.api.exceptions.URLNotFoundNomadException):
        client.job.get_job("missing")
    blocking = client.job.request(child, "allocations", params={"index": 1, "wait": "1s"}, method="get")
    assert int(blocking.headers["X-Nomad-Index"]) > 1
    parsed = client.jobs.parse(
        'job "p" {\n  type = "batch"\n  group "g" {\n    task "t" {\n      driver = "docker"\n    }\n  }\n}',
        canonicalize=True,
    )
    assert parsed["ID"] == "p" and parsed["TaskGroups"][0]["Tasks"][0]["Driver"] == "docker"
    client.job.deregister_job(child, purge=True)
    assert not double.has_job(child)


# ---------------------------------------------------------------------------------------------- more behaviour


def test_follow_on_an_empty_log_gets_headers_at_once(double: NomadDouble) -> None:
    child = child_of(double)
    alloc_id = double.place(child) or ""
    double.start(alloc_id)
    url = f"{double.address}/v1/client/fs/logs/{alloc_id}"
    params = {"task": "main", "type": "stdout", "plain": "true", "follow": "true"}
    with requests.get(url, params=params, stream=True, timeout=5) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
        double.finish(alloc_id, stdout=b"only\n")
        assert resp.content == b"only\n"
    missing = requests.get(f"{double.address}/v1/client/fs/logs/nope", params=params, timeout=5)
    assert missing.status_code == 404 and missing.text == 'Unknown allocation "nope"'


def test_blocking_read_of_a_missing_job_waits_then_answers_404(double: NomadDouble) -> None:
    index = double.index
    result: dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("resp", get(double, "/v1/job/later", index=index, wait="20s"))
    )
    thread.start()
    assert double.wait_for_waiters(1, timeout=5)
    double.add_node("wakes-it")
    thread.join(timeout=10)
    assert result["resp"].status_code == 404 and result["resp"].text == "job not found"


def test_multi_task_group_sibling_failure(double: NomadDouble) -> None:
    job = task_api_job(attempts=0)
    job["TaskGroups"][0]["Tasks"].append({"Name": "sidecar", "Driver": "docker", "Config": {"image": "x"}})
    register(double, job)
    child = dispatch(double, "taskapi-demo").json()["DispatchedJobID"]
    alloc_id = double.place(child) or ""
    double.start(alloc_id)
    double.finish(alloc_id, exit_code=4, task="main")
    states = get(double, f"/v1/allocation/{alloc_id}").json()["TaskStates"]
    assert states["main"]["Failed"] is True and states["sidecar"]["State"] == "dead"
    assert "Sibling Task Failed" in [e["Type"] for e in states["sidecar"]["Events"]]
    assert get(double, f"/v1/job/{child}").json()["Status"] == "dead"


def test_driver_failure_and_restart_in_place(double: NomadDouble) -> None:
    child = child_of(double, attempts=0)
    alloc_id = double.place(child) or ""
    double.driver_failure(alloc_id, "Failed to pull `nope:latest`: not found")
    alloc = get(double, f"/v1/allocation/{alloc_id}").json()
    events = alloc["TaskStates"]["main"]["Events"]
    assert alloc["ClientStatus"] == "failed" and events[-2]["Type"] == "Driver Failure"
    assert events[-2]["DriverError"].startswith("Failed to pull")
    job = task_api_job("restarts")
    job["TaskGroups"][0]["RestartPolicy"]["Attempts"] = 1
    register(double, job)
    kid = dispatch(double, "restarts").json()["DispatchedJobID"]
    alloc_id = double.place(kid) or ""
    double.start(alloc_id)
    double.finish(alloc_id, exit_code=1)
    state = get(double, f"/v1/allocation/{alloc_id}").json()["TaskStates"]["main"]
    assert state["State"] == "running" and state["Restarts"] == 1
    assert [e["Type"] for e in state["Events"]][-3:] == ["Terminated", "Restarting", "Started"]


def test_namespaces_are_separate_and_advance_does_not_place_new_work(double: NomadDouble) -> None:
    job = task_api_job()
    job["Namespace"] = "team-a"
    register(double, job)
    assert get(double, "/v1/job/taskapi-demo").status_code == 404
    assert get(double, "/v1/job/taskapi-demo", namespace="team-a").status_code == 200
    resp = requests.post(
        f"{double.address}/v1/job/taskapi-demo/dispatch?namespace=team-a", json={"Meta": {"task_id": "x"}}, timeout=5
    )
    child = resp.json()["DispatchedJobID"]
    double.advance(3600)
    assert double.alloc_ids(child, "team-a") == []
    assert [j["ID"] for j in get(double, "/v1/jobs", namespace="*").json()] == ["taskapi-demo", child]


def test_event_stream_key_filter_and_index_zero_replays(double: NomadDouble) -> None:
    register(double, task_api_job())
    with requests.get(
        f"{double.address}/v1/event/stream", params={"topic": "Job:taskapi-demo"}, stream=True, timeout=5
    ) as resp:
        frame = json.loads(next(line for line in resp.iter_lines() if line and line != b"{}"))
    assert {e["Key"] for e in frame["Events"]} == {"taskapi-demo"}
    assert frame["Events"][0]["Type"] == "JobRegistered"


def test_purged_jobs_allocations_are_collected(double: NomadDouble) -> None:
    child = child_of(double)
    alloc_id = double.place(child) or ""
    double.start(alloc_id)
    resp = requests.delete(f"{double.address}/v1/job/{child}", params={"purge": "true"}, timeout=5)
    assert resp.status_code == 200 and resp.json()["EvalID"]
    assert get(double, f"/v1/job/{child}").status_code == 404
    assert get(double, f"/v1/allocation/{alloc_id}").json()["DesiredStatus"] == "stop"
    double.gc()
    assert get(double, f"/v1/allocation/{alloc_id}").status_code == 404


def test_ids_are_deterministic_per_seed() -> None:
    ids = []
    for _ in range(2):
        with NomadDouble(seed=3, clock_start=1_800_000_000) as nomad:
            nomad.add_node("n")
            register(nomad, task_api_job())
            ids.append((child_of(nomad), nomad.place(nomad.children("taskapi-demo")[0])))
    assert ids[0] == ids[1]
    assert ids[0][0].startswith("taskapi-demo/dispatch-t1-1800000000-")


def test_python_nomad_with_acl_token() -> None:
    nomad = pytest.importorskip("nomad")
    with NomadDouble(acl_token="s3cret") as double:
        with pytest.raises(nomad.api.exceptions.URLNotAuthorizedNomadException):
            nomad.Nomad(address=double.address, token="wrong", timeout=5).jobs.get_jobs()
        client = nomad.Nomad(address=double.address, token="s3cret", timeout=5)
        client.jobs.register_job({"Job": task_api_job()})
        assert [j["ID"] for j in client.jobs.get_jobs()] == ["taskapi-demo"]


def test_parse_refuses_filesystem_functions_as_nomad_does(double: NomadDouble) -> None:
    hcl_text = 'job "x" {\n  group "g" {\n    task "t" {\n      env { A = file("a") }\n    }\n  }\n}\n'
    response = requests.post(f"{double.address}/v1/jobs/parse", json={"JobHCL": hcl_text}, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    assert 'Call to function "file" failed: filesystem function disabled.' in response.text


def test_variables_and_acl_policies(double: NomadDouble) -> None:
    base = double.address
    missing = requests.get(f"{base}/v1/var/nomad/jobs/web", timeout=5)
    assert missing.status_code == 404 and missing.text == "variable not found"
    body = {"Namespace": "default", "Path": "nomad/jobs/web", "Items": {"api_keys": "k1\nk2"}}
    written = requests.put(f"{base}/v1/var/nomad/jobs/web", json=body, timeout=5).json()
    assert written["Items"] == {"api_keys": "k1\nk2"} and written["ModifyIndex"] >= written["CreateIndex"]
    stale = requests.put(f"{base}/v1/var/nomad/jobs/web?cas=1", json=body, timeout=5)
    assert stale.status_code == 409
    read = requests.get(f"{base}/v1/var/nomad/jobs/web", timeout=5)
    assert read.json()["Items"]["api_keys"] == "k1\nk2" and int(read.headers["X-Nomad-Index"]) > 0
    policy = {"Name": "web", "Rules": 'namespace "default" { policy = "read" }', "JobACL": {"JobID": "web"}}
    assert requests.post(f"{base}/v1/acl/policy/web", json=policy, timeout=5).status_code == 200
    assert double.policy("web")["JobACL"] == {"JobID": "web"}
    assert requests.post(f"{base}/v1/acl/policy/web", json={"Name": "web"}, timeout=5).status_code == 400
