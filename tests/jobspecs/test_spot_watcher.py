"""scripts/spot_watcher.py against the IMDS double (tests/jobspecs/imds_double.py) and the Nomad double.

The watcher runs in-process (its ``run`` loop in a thread with a short interval and a stop event) or as a
subprocess (``python -I -S``: no site-packages, so only the standard library can be imported). Nothing waits a
fixed time: tests wait for IMDS polls or Nomad state with deadlines.

The same interruption seen through the gateway's HTTP API is in test_spot_end_to_end.py.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.conftest import wait_for
from tests.jobspecs.imds_double import REBALANCE_PATH, SPOT_PATH, TOKEN_PATH, IMDSDouble
from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "spot_watcher.py"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ACL_TOKEN = "0b8c6d3e-test-only-management-token"  # the double's token for this test run, not a real secret


class Cluster:
    """A Nomad double with two spot nodes and one Task API task running on the first."""

    def __init__(self, nomad: NomadDouble) -> None:
        self.nomad = nomad
        self.node_a = nomad.add_node("spot-a", pool="cpu-spot", node_class="cpu-spot")
        self.node_b = nomad.add_node("spot-b", pool="cpu-spot", node_class="cpu-spot")
        parent = {
            "ID": "taskapi-demo", "Type": "batch", "Datacenters": ["dc1"], "NodePool": "cpu-spot",
            "ParameterizedJob": {"Payload": "optional", "MetaRequired": ["task_id"]},
            "TaskGroups": [{
                "Name": "task", "Count": 1,
                "RestartPolicy": {"Attempts": 0, "Interval": 86400 * 10**9, "Delay": 15 * 10**9, "Mode": "fail"},
                "ReschedulePolicy": {"Attempts": 0, "Interval": 86400 * 10**9, "Delay": 5 * 10**9,
                                     "DelayFunction": "constant", "MaxDelay": 3600 * 10**9, "Unlimited": False},
                "Tasks": [{"Name": "main", "Driver": "docker", "Leader": True, "Config": {"image": "busybox"},
                           "DispatchPayload": {"File": "job.json"}, "Resources": {"CPU": 500, "MemoryMB": 256}}],
            }],
        }
        self.post("/v1/jobs", {"Job": parent})
        answer = self.post("/v1/job/taskapi-demo/dispatch",
                           {"Payload": "e30=", "Meta": {"task_id": "t1"}, "IdPrefixTemplate": "t1"})
        self.child = str(answer["DispatchedJobID"])
        first = nomad.place(self.child)
        assert first is not None
        nomad.start_alloc(first)
        self.first_alloc = first
        assert self.alloc(first)["NodeID"] == self.node_a
        nomad.reset_requests()

    def headers(self) -> dict[str, str]:
        return {"X-Nomad-Token": ACL_TOKEN}

    def post(self, path: str, body: Any) -> Any:
        resp = requests.post(f"{self.nomad.address}{path}", json=body, headers=self.headers(), timeout=5)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def alloc(self, alloc_id: str) -> dict[str, Any]:
        return self.nomad.alloc(alloc_id)

    def metadata(self, node_id: str) -> dict[str, Any]:
        resp = requests.get(f"{self.nomad.address}/v1/client/metadata", params={"node_id": node_id},
                            headers=self.headers(), timeout=5)
        assert resp.status_code == 200, resp.text
        return dict(resp.json()["Dynamic"])

    def posts(self, path: str | None = None) -> int:
        return self.nomad.request_count(method="POST", path=path)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with NomadDouble(seed=11, acl_token=ACL_TOKEN) as nomad:
        yield Cluster(nomad)


class Running:
    """A watcher loop in a thread; :meth:`stop` ends it the way SIGTERM does (the stop event)."""

    def __init__(self, sw: ModuleType, imds: IMDSDouble, cluster: Cluster, **options: Any) -> None:
        self.stream = io.StringIO()
        self.watcher = sw.Watcher(
            sw.IMDS(sw.Endpoint(imds.url, 2.0)),
            sw.Nomad(sw.Endpoint(cluster.nomad.address, 5.0), ACL_TOKEN),
            cluster.node_a, sw.Log(self.stream), **options,
        )
        self.stop_event = threading.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(sw.run(self.watcher, 0.02, self.stop_event)), daemon=True)
        self.thread.start()

    def stop(self) -> int:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.result[0]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def names(self) -> list[str]:
        return [e["event"] for e in self.events()]


@pytest.fixture
def running(sw: ModuleType, imds: IMDSDouble, cluster: Cluster) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**options: Any) -> Running:
        started.append(Running(sw, imds, cluster, **options))
        return started[-1]

    yield start
    for item in started:
        item.stop_event.set()
        item.thread.join(10)


# ---------------------------------------------------------------------------------------------- the IMDS double


def test_imds_double_requires_a_token_and_404s_until_a_notice(imds: IMDSDouble) -> None:
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(imds.url + SPOT_PATH, timeout=5)
    assert missing.value.code == 401
    bad_ttl = urllib.request.Request(imds.url + TOKEN_PATH, method="PUT")
    with pytest.raises(urllib.error.HTTPError) as no_ttl:
        urllib.request.urlopen(bad_ttl, timeout=5)
    assert no_ttl.value.code == 400
    put = urllib.request.Request(imds.url + TOKEN_PATH, method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(put, timeout=5).read().decode()
    get = urllib.request.Request(imds.url + SPOT_PATH, headers={"X-aws-ec2-metadata-token": token})
    with pytest.raises(urllib.error.HTTPError) as none_yet:
        urllib.request.urlopen(get, timeout=5)
    assert none_yet.value.code == 404
    imds.set_spot_notice("terminate", "2026-12-04T17:02:00Z")
    assert json.loads(urllib.request.urlopen(get, timeout=5).read()) == {
        "action": "terminate", "time": "2026-12-04T17:02:00Z"}
    imds.expire_tokens()
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(get, timeout=5)
    assert expired.value.code == 401


# ---------------------------------------------------------------------------------------------- IMDSv2 client


def test_token_is_reused_refreshed_before_expiry_and_on_401(sw: ModuleType, imds: IMDSDouble) -> None:
    now = [1000.0]
    client = sw.IMDS(sw.Endpoint(imds.url, 2.0), token_ttl=600, clock=lambda: now[0])
    assert client.get(SPOT_PATH)[0] == 404
    assert client.get(REBALANCE_PATH)[0] == 404
    assert imds.token_requests == 1  # one token for both reads
    imds.expire_tokens()  # revoked or expired early: IMDS answers 401
    assert client.get(SPOT_PATH)[0] == 404
    assert imds.count("GET", SPOT_PATH, 401) == 1
    assert imds.token_requests == 2
    now[0] += 600 - 60  # the refresh margin: a tenth of the TTL, at most a minute
    assert client.get(SPOT_PATH)[0] == 404
    assert imds.token_requests == 3
    assert imds.count("GET", SPOT_PATH, 401) == 1  # refreshed before it expired: no second 401
    put_ttls = {k for k in imds.requests if k[0] == "PUT"}
    assert put_ttls == {("PUT", TOKEN_PATH, 200)}


@pytest.mark.parametrize(("setup", "kinds"), [
    ({}, []),
    ({"lifecycle": "InService"}, []),
    ({"lifecycle": None}, []),
    ({"spot": True}, ["spot-interruption"]),
    ({"rebalance": True}, ["rebalance-recommendation"]),
    ({"lifecycle": "Terminated"}, ["asg-lifecycle"]),
    ({"lifecycle": "Warmed:Stopped"}, ["asg-lifecycle"]),
    ({"rebalance": True, "spot": True, "lifecycle": "Terminated"},
     ["spot-interruption", "asg-lifecycle", "rebalance-recommendation"]),
])
def test_notices_most_severe_first(sw: ModuleType, imds: IMDSDouble, setup: dict[str, Any], kinds: list[str]) -> None:
    if setup.get("spot"):
        imds.set_spot_notice()
    if setup.get("rebalance"):
        imds.set_rebalance()
    if "lifecycle" in setup:
        imds.set_lifecycle(setup["lifecycle"])
    notices = sw.read_notices(sw.IMDS(sw.Endpoint(imds.url, 2.0)))
    assert [n.kind for n in notices] == kinds
    if setup.get("spot"):
        assert json.loads(notices[0].detail) == {"action": "terminate", "time": "2026-12-04T17:02:00Z"}


# ---------------------------------------------------------------------------------------------- with Nomad


def test_spot_notice_moves_the_task_to_another_node(imds: IMDSDouble, cluster: Cluster,
                                                    running: Callable[..., Running]) -> None:
    nomad, node_a, node_b, first = cluster.nomad, cluster.node_a, cluster.node_b, cluster.first_alloc
    watch = running()

    # No notice: the watcher only reads IMDS; an expired token is refreshed without a hiccup.
    imds.wait_for_polls(3)
    imds.expire_tokens()
    imds.wait_for_polls(3)
    assert imds.token_requests == 2
    assert cluster.posts() == 0
    assert cluster.alloc(first)["DesiredStatus"] == "run"

    # AWS gives its two-minute notice.
    imds.set_spot_notice("terminate", "2026-12-04T17:02:00Z")
    wait_for(lambda: first in watch.watcher.state.stopped, what="the allocation on node A to be stopped")

    node = nomad.node(node_a)
    assert node["SchedulingEligibility"] == "ineligible"
    assert nomad.node(node_b)["SchedulingEligibility"] == "eligible"
    meta = cluster.metadata(node_a)
    assert meta["taskapi_interruption"] == "spot-interruption"
    assert RFC3339.match(meta["taskapi_interruption_time"])
    assert json.loads(meta["taskapi_interruption_detail"])["action"] == "terminate"
    assert cluster.metadata(node_b) == {}

    stopped = cluster.alloc(first)
    assert stopped["DesiredStatus"] == "stop"
    assert stopped["DesiredTransition"]["Migrate"] is True  # what the gateway reports as a preempted attempt

    # Nomad places the replacement elsewhere; it runs to the end.
    replacement = nomad.place(cluster.child)
    assert replacement is not None and replacement != first
    assert cluster.alloc(replacement)["NodeID"] == node_b
    nomad.start_alloc(replacement)
    nomad.finish(replacement, exit_code=0)
    assert cluster.alloc(replacement)["ClientStatus"] == "complete"
    assert nomad.job(cluster.child)["Status"] == "dead"
    assert nomad.alloc_ids(cluster.child) == [first, replacement]

    # The notice stays up until the instance is gone: nothing more is written.
    posts = cluster.posts()
    assert posts == 3
    assert cluster.posts("/v1/client/metadata") == 1
    assert cluster.posts(f"/v1/node/{node_a}/eligibility") == 1
    assert cluster.posts(f"/v1/allocation/{first}/stop") == 1
    reads = nomad.request_count(method="GET", path=f"/v1/node/{node_a}/allocations")
    imds.wait_for_polls(5)
    assert cluster.posts() == posts
    assert cluster.metadata(node_a) == meta
    assert nomad.request_count(method="GET", path=f"/v1/node/{node_a}/allocations") >= reads + 4  # reads only
    assert list(watch.watcher.state.stopped) == [first]
    assert cluster.alloc(replacement)["ClientStatus"] == "complete"

    assert watch.stop() == 0
    names = watch.names()
    assert names[0] == "started" and names[-1] == "stopped"
    assert names.count("notice") == names.count("metadata_recorded") == names.count("node_ineligible") == 1
    assert names.count("allocation_stopped") == 1
    stop_line = next(e for e in watch.events() if e["event"] == "allocation_stopped")
    assert stop_line["alloc_id"] == first and stop_line["job_id"] == cluster.child
    assert all(RFC3339.match(e["time"]) and e["level"] for e in watch.events())


def test_rebalance_then_interruption_rewrites_only_the_kind(imds: IMDSDouble, cluster: Cluster,
                                                            running: Callable[..., Running]) -> None:
    watch = running()
    imds.set_rebalance()
    wait_for(lambda: cluster.first_alloc in watch.watcher.state.stopped, what="the evacuation on a rebalance")
    assert cluster.metadata(cluster.node_a)["taskapi_interruption"] == "rebalance-recommendation"
    imds.wait_for_polls(3)
    assert cluster.posts("/v1/client/metadata") == 1

    imds.set_spot_notice()
    wait_for(lambda: watch.watcher.state.recorded_kind == "spot-interruption", what="the escalation")
    imds.wait_for_polls(3)
    assert cluster.metadata(cluster.node_a)["taskapi_interruption"] == "spot-interruption"
    assert cluster.posts("/v1/client/metadata") == 2
    assert cluster.posts(f"/v1/node/{cluster.node_a}/eligibility") == 1
    assert cluster.posts(f"/v1/allocation/{cluster.first_alloc}/stop") == 1


def test_cordon_only_on_rebalance_when_told(imds: IMDSDouble, cluster: Cluster,
                                            running: Callable[..., Running]) -> None:
    watch = running(evacuate_on_rebalance=False)
    imds.set_rebalance()
    wait_for(lambda: watch.watcher.state.ineligible, what="the node to be cordoned")
    imds.wait_for_polls(3)
    assert cluster.alloc(cluster.first_alloc)["DesiredStatus"] == "run"
    assert cluster.posts("/v1/allocation/" + cluster.first_alloc + "/stop") == 0

    imds.set_lifecycle("Terminated")  # the ASG takes the instance after all: now evacuate
    wait_for(lambda: cluster.first_alloc in watch.watcher.state.stopped, what="the evacuation")
    assert cluster.metadata(cluster.node_a)["taskapi_interruption"] == "asg-lifecycle"


def test_node_id_from_the_watchers_own_allocation(sw: ModuleType, cluster: Cluster) -> None:
    client = sw.Nomad(sw.Endpoint(cluster.nomad.address, 5.0), ACL_TOKEN)
    assert client.node_id(cluster.first_alloc) == cluster.node_a
    with pytest.raises(sw.HTTPFailure) as denied:
        sw.Nomad(sw.Endpoint(cluster.nomad.address, 5.0), None).node_id(cluster.first_alloc)
    assert denied.value.status == 403


# ---------------------------------------------------------------------------------------------- decisions


class FakeNomad:
    """Records calls; fails the first ``fail`` calls of a method."""

    def __init__(self, allocs: list[dict[str, Any]], sw: ModuleType, fail: dict[str, int] | None = None) -> None:
        self.allocs = allocs
        self.sw = sw
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, Any]] = []

    def _call(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise self.sw.HTTPFailure(f"{name} failed", 500)

    def set_metadata(self, node_id: str, meta: dict[str, str]) -> None:
        self._call("set_metadata", meta["taskapi_interruption"])

    def mark_ineligible(self, node_id: str) -> None:
        self._call("mark_ineligible", node_id)

    def node_allocations(self, node_id: str) -> list[dict[str, Any]]:
        self._call("node_allocations", node_id)
        return self.allocs

    def stop_allocation(self, alloc_id: str, namespace: str) -> str:
        self._call("stop_allocation", (alloc_id, namespace))
        return f"eval-{alloc_id}"


def alloc(alloc_id: str, job_type: str = "batch", desired: str = "run", client: str = "running",
          namespace: str = "default") -> dict[str, Any]:
    return {"ID": alloc_id, "JobID": f"job-{alloc_id}", "Namespace": namespace, "DesiredStatus": desired,
            "ClientStatus": client, "Job": {"Type": job_type}}


def test_only_live_service_and_batch_allocations_of_others_are_stopped(sw: ModuleType) -> None:
    allocs = [
        alloc("batch-running"), alloc("batch-pending", client="pending"), alloc("svc", job_type="service"),
        alloc("other-ns", namespace="team-a"), alloc("system", job_type="system"),
        alloc("sysbatch", job_type="sysbatch"), alloc("done", client="complete"),
        alloc("stopping", desired="stop"), alloc("self"),
    ]
    fake = FakeNomad(allocs, sw)
    watcher = sw.Watcher(None, fake, "node-a", sw.Log(io.StringIO()), own_alloc_id="self")
    watcher.handle(sw.Notice("spot-interruption", "{}"))
    stops = [arg for name, arg in fake.calls if name == "stop_allocation"]
    assert stops == [("batch-running", "default"), ("batch-pending", "default"), ("svc", "default"),
                     ("other-ns", "team-a")]


def test_a_failed_step_is_retried_on_the_next_notice_and_done_steps_are_not(sw: ModuleType) -> None:
    fake = FakeNomad([alloc("a1"), alloc("a2")], sw, fail={"mark_ineligible": 1, "set_metadata": 1,
                                                            "stop_allocation": 1})
    log = io.StringIO()
    watcher = sw.Watcher(None, fake, "node-a", sw.Log(log))
    notice = sw.Notice("spot-interruption", "{}")
    watcher.handle(notice)
    assert watcher.state.recorded_kind is None and not watcher.state.ineligible
    assert list(watcher.state.stopped) == ["a2"]
    watcher.handle(notice)
    watcher.handle(notice)
    names = [name for name, _ in fake.calls]
    assert names.count("set_metadata") == 2 and names.count("mark_ineligible") == 2
    assert [arg for name, arg in fake.calls if name == "stop_allocation"] == [
        ("a1", "default"), ("a2", "default"), ("a1", "default")]
    assert watcher.state.recorded_kind == "spot-interruption" and watcher.state.ineligible
    errors = [json.loads(line)["event"] for line in log.getvalue().splitlines()
              if json.loads(line)["level"] == "error"]
    assert errors == ["metadata_failed", "eligibility_failed", "stop_failed"]


# ---------------------------------------------------------------------------------------------- transport


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def test_nomad_over_the_task_api_unix_socket(sw: ModuleType) -> None:
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def address_string(self) -> str:
            return "unix"

        def do_POST(self) -> None:
            seen.append((self.path, self.headers.get("X-Nomad-Token")))
            body = b'{"EvalID": "e1", "Index": 7}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    directory = tempfile.mkdtemp(prefix="sw-", dir="/tmp")
    path = os.path.join(directory, "api.sock")
    server = _UnixHTTPServer(path, Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = sw.Nomad(sw.Endpoint(f"unix://{path}", 5.0), "workload-identity-jwt")
        assert client.stop_allocation("a1", "default") == "e1"
        assert seen == [("/v1/allocation/a1/stop?namespace=default", "workload-identity-jwt")]
    finally:
        server.shutdown()
        server.server_close()
        os.unlink(path)
        os.rmdir(directory)


# ---------------------------------------------------------------------------------------------- as a process


def test_as_a_process_with_the_standard_library_only(imds: IMDSDouble, cluster: Cluster) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "NOMAD_TOKEN": ACL_TOKEN, "NOMAD_ADDR": cluster.nomad.address,
           "NOMAD_NODE_ID": cluster.node_a}
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(SCRIPT), "--imds-url", imds.url, "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True)
    reader.start()

    def next_event(name: str) -> dict[str, Any]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                record = json.loads(lines.get(timeout=0.2))
            except queue.Empty:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                continue
            if record["event"] == name:
                return record
        raise AssertionError(f"no {name!r} line from the watcher")

    try:
        started = next_event("started")
        assert started["node_id"] == cluster.node_a and started["interval"] == 0.05
        imds.set_spot_notice()
        stopped = next_event("allocation_stopped")
        assert stopped["alloc_id"] == cluster.first_alloc
        assert cluster.alloc(cluster.first_alloc)["DesiredTransition"]["Migrate"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert next_event("stopped")["allocations_stopped"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
