"""What each HTTP operation costs in Nomad calls, counted by the double (one gunicorn worker, so one API cache)."""

from __future__ import annotations

from collections.abc import Callable

from tests.nomad.conftest import NomadGateway, container_spec
from tests.nomad_double import NomadDouble


def test_calls_per_operation(make_nomad_gateway: Callable[..., NomadGateway]) -> None:
    with NomadDouble() as nomad:
        nomad.add_node("cpu-1", pool="cpu-spot", node_class="cpu-spot", cpu=100_000, memory_mb=1_000_000)
        gw = make_nomad_gateway(nomad, workers=1)
        gw.deploy(container_spec("busy"))
        gw.submit("busy")  # warms the gateway's cache of API definitions

        nomad.reset_requests()
        task_id = gw.submit("busy", {"i": 0})
        assert [(m, p) for m, p, _ in nomad.request_log] == [("POST", "/v1/job/taskapi-busy/dispatch")]

        alloc = gw.place("busy", task_id)
        assert alloc is not None
        nomad.start(alloc)
        nomad.finish(alloc, exit_code=0)
        for path in (f"/v1/apis/busy/tasks/{task_id}", f"/busy?jobID={task_id}"):
            nomad.reset_requests()
            assert gw("GET", path).json()
            assert len(nomad.request_log) <= 3, nomad.request_log

        ids = [gw.submit("busy", {"i": i}) for i in range(60)]
        for task in ids[::3]:
            placed = gw.place("busy", task)
            assert placed is not None
            nomad.start(placed)
        costs = {}
        for limit in (10, 50):
            nomad.reset_requests()
            page = gw("GET", f"/v1/apis/busy/tasks?limit={limit}").json()
            assert len(page["tasks"]) == limit and page["next_cursor"]
            costs[limit] = len(nomad.request_log)
        assert costs[50] == costs[10] <= 3, costs
        running = [t for t in page["tasks"] if t["status"] == "running"]
        assert running and all(t["attempts"][0]["node"] == "cpu-1" for t in running)
