"""A spot interruption end to end: IMDS notice -> the watcher -> Nomad -> the gateway's HTTP API.

A task runs on spot node A; AWS posts its two-minute notice; the watcher marks A ineligible and stops the task's
allocation; Nomad places the replacement on node B, where it succeeds. Through the gateway the task ends
``succeeded`` with attempts ``preempted`` (on A) and ``succeeded`` (on B), and a notice that stays up changes
nothing more.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import wait_for
from tests.jobspecs.imds_double import IMDSDouble
from tests.nomad.conftest import NomadGateway, container_spec
from tests.nomad_double import NomadDouble


@pytest.fixture
def cluster() -> Iterator[NomadDouble]:
    with NomadDouble(seed=7) as nomad:
        yield nomad


def test_interrupted_task_is_preempted_then_succeeds_elsewhere(
    sw: ModuleType, imds: IMDSDouble, cluster: NomadDouble, tmp_path: Path
) -> None:
    node_a = cluster.add_node("spot-a", pool="cpu-spot", node_class="cpu-spot")
    node_b = cluster.add_node("spot-b", pool="cpu-spot", node_class="cpu-spot")
    gateway = NomadGateway(tmp_path / "gw", cluster).start()
    try:
        gateway.deploy(container_spec("trainer", node_groups=["cpu-spot"]))
        task_id = gateway.submit("trainer", {"epochs": 3})
        first = gateway.place("trainer", task_id)
        assert first is not None and cluster.alloc(first)["NodeID"] == node_a
        cluster.start_alloc(first)
        gateway.wait_status("trainer", task_id, "running")

        watcher = sw.Watcher(
            sw.IMDS(sw.Endpoint(imds.url, 2.0)),
            sw.Nomad(sw.Endpoint(cluster.address, 5.0), None),
            node_a,
            sw.Log(io.StringIO()),
        )
        stop = threading.Event()
        thread = threading.Thread(target=sw.run, args=(watcher, 0.02, stop), daemon=True)
        thread.start()
        try:
            imds.set_spot_notice("terminate")
            wait_for(lambda: first in watcher.state.stopped, what="the watcher to stop the allocation on node A")
            assert cluster.node(node_a)["SchedulingEligibility"] == "ineligible"

            waiting = gateway.wait_status("trainer", task_id, "pending")
            assert [a["outcome"] for a in waiting["attempts"]] == ["preempted"]

            second = gateway.place("trainer", task_id)
            assert second is not None and cluster.alloc(second)["NodeID"] == node_b
            cluster.start_alloc(second)
            cluster.finish(second, exit_code=0)

            done = gateway.wait_final("trainer", task_id)
            assert done["status"] == "succeeded"
            assert [a["outcome"] for a in done["attempts"]] == ["preempted", "succeeded"]
            assert done["attempts"][0]["node"] != done["attempts"][1]["node"]

            # The notice stays up until the instance is gone: nothing more is written to Nomad.
            writes = cluster.request_count(method="POST")
            imds.wait_for_polls(5)
            assert cluster.request_count(method="POST") == writes
            assert gateway.task("trainer", task_id)["attempts"] == done["attempts"]
        finally:
            stop.set()
            thread.join(10)
    finally:
        gateway.stop()
