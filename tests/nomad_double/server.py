"""``NomadDouble``: the Nomad HTTP double on a loopback port plus the control API tests drive it with."""

from __future__ import annotations

import base64
import copy
import threading
from collections import Counter
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .api import NomadApp
from .cluster import Cluster, NomadError
from .util import Clock, Ids, snappy_decode


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request to stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence access logs."""


class NomadDouble:
    """A deterministic HTTP double of the Nomad API.

    Serve it with :meth:`start` (or as a context manager); point a client at :attr:`address`. Scheduling is
    driven by the test: :meth:`add_node`, :meth:`place`, :meth:`start_alloc` (or ``start(alloc_id)``),
    :meth:`finish`, :meth:`lose_node`, :meth:`advance`, :meth:`gc`... unless an auto mode does it.

    Args:
        version: the Nomad version to emulate (``"2.0.3"`` supports group ``MaxRunDuration``; ``"1.11.0"``
            silently drops the field as an older server's JSON decoder does).
        acl_token: when set, ACLs are on and every request but ``/v1/status/*`` needs this ``X-Nomad-Token``.
        auto_place: run the scheduler after every write (placements happen as soon as a node fits).
        auto_start: start placed allocations immediately.
        auto_run: both of the above.
        seed: seed of the generator behind IDs (same seed, same IDs).
        clock_start: Unix time the virtual clock starts at (default: now). It only moves by :meth:`advance`.
        real_clock: use wall-clock time (plus :meth:`advance` offsets) instead of a frozen clock.
        heartbeat: seconds between ``{}`` heartbeats on the event stream (Nomad: 10 s).
        max_wait: cap of a blocking query's ``wait`` in seconds (Nomad: 10 min).
    """

    def __init__(self, version: str = "2.0.3", *, region: str = "global", acl_token: str | None = None,
                 auto_place: bool = False, auto_start: bool = False, auto_run: bool = False, seed: int = 0,
                 clock_start: float | None = None, real_clock: bool = False, heartbeat: float = 10.0,
                 max_wait: float = 600.0) -> None:
        self.version = version
        self.clock = Clock(clock_start, real_clock)
        self.cluster = Cluster(version, region, self.clock, Ids(seed), auto_place or auto_run,
                               auto_start or auto_run)
        self.app = NomadApp(self.cluster, {acl_token} if acl_token else None, heartbeat, max_wait)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ server lifecycle

    def start(self, alloc_id: str | None = None) -> NomadDouble:
        """Without an argument: serve on a free loopback port. With an allocation ID: start that allocation."""
        if alloc_id is not None:
            self.start_alloc(alloc_id)
            return self
        if self._server is not None:
            return self
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="nomad-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; open streams and blocking queries return."""
        with self.cluster.lock:
            self.cluster.closed = True
            self.cluster.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> NomadDouble:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("NomadDouble is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def port(self) -> int:
        """The TCP port."""
        if self._server is None:
            raise RuntimeError("NomadDouble is not started")
        return int(self._server.server_port)

    # ------------------------------------------------------------------ request accounting

    @property
    def requests(self) -> Counter[tuple[str, str]]:
        """Requests served so far, counted by ``(method, decoded path)``."""
        return self.app.requests

    @property
    def request_log(self) -> list[tuple[str, str, str]]:
        """Every request as ``(method, decoded path, query string)`` in arrival order."""
        return self.app.request_log

    def request_count(self, method: str | None = None, path: str | None = None, prefix: str | None = None) -> int:
        """How many requests matched the method and exact path or path prefix."""
        return sum(n for (m, p), n in list(self.app.requests.items())
                   if (method is None or m == method) and (path is None or p == path)
                   and (prefix is None or p.startswith(prefix)))

    def variable(self, path: str, namespace: str = "default") -> dict[str, str]:
        """The items of a Nomad Variable (``NomadError`` 404 if missing)."""
        return dict(self.app.secrets.get_variable(namespace, path)["Items"])

    def policy(self, name: str) -> dict[str, Any]:
        """An ACL policy as written (``NomadError`` 404 if missing)."""
        return self.app.secrets.get_policy(name)

    def reset_requests(self) -> None:
        """Forget the request counts and log."""
        self.app.requests.clear()
        self.app.request_log.clear()

    def wait_for_waiters(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``count`` blocking queries are parked (lets a test change state after a query blocks)."""
        return self.cluster.wait_for_change(lambda: self.cluster.waiters >= count, timeout)

    # ------------------------------------------------------------------ cluster control

    def _locked(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.cluster.lock:
            return fn(*args, **kwargs)

    def add_node(self, name: str, pool: str = "default", node_class: str | None = None, datacenter: str = "dc1",
                 meta: dict[str, str] | None = None, *, cpu: int = 4000, memory_mb: int = 16384, gpus: int = 0,
                 attributes: dict[str, str] | None = None) -> str:
        """Register a ready, eligible client node; returns its ID. Blocked placements may now fit."""
        node = self._locked(self.cluster.add_node, name, pool, node_class, datacenter, meta, cpu, memory_mb, gpus,
                            attributes)
        return str(node.id)

    def lose_node(self, node_id: str) -> list[str]:
        """The node goes down: its live allocations become ``lost`` and are replaced. Returns the lost IDs."""
        with self.cluster.lock:
            return self.cluster.lose_node(self.cluster.node(node_id), remove=False)

    def remove_node(self, node_id: str) -> list[str]:
        """Like :meth:`lose_node`, then the node is deregistered (gone from ``/v1/nodes``)."""
        with self.cluster.lock:
            return self.cluster.lose_node(self.cluster.node(node_id), remove=True)

    def restore_node(self, node_id: str) -> None:
        """A down node heartbeats again."""
        with self.cluster.lock:
            self.cluster.restore_node(self.cluster.node(node_id))

    def set_eligibility(self, node_id: str, eligible: bool) -> None:
        """Same as ``POST /v1/node/<id>/eligibility``."""
        with self.cluster.lock:
            self.cluster.set_eligibility(self.cluster.node(node_id), "eligible" if eligible else "ineligible")

    def drain_node(self, node_id: str, deadline_s: float = 3600.0, meta: dict[str, str] | None = None) -> None:
        """Same as ``POST /v1/node/<id>/drain``: ineligible; batch allocations keep running (Nomad >= 1.11)."""
        with self.cluster.lock:
            self.cluster.drain(self.cluster.node(node_id), {"Deadline": int(deadline_s * 1e9)}, False, meta)

    def place(self, job_id: str, namespace: str = "default") -> str | None:
        """Run the scheduler for one job now (delayed reschedules included); the first new alloc ID or None.

        None means nothing fit: the group is ``Queued`` in the job summary and a blocked evaluation waits.
        """
        with self.cluster.lock:
            self.cluster.job(namespace, job_id)
            placed = self.cluster.schedule((namespace, job_id), force=True)
            if self.cluster.auto_start:
                self.cluster.auto()
            return placed[0] if placed else None

    def schedule(self) -> list[str]:
        """Run the scheduler over every due placement; returns the new allocation IDs."""
        with self.cluster.lock:
            return self.cluster.schedule()

    def receive(self, alloc_id: str) -> None:
        """The client receives the allocation (TaskStates appear, still pending)."""
        with self.cluster.lock:
            alloc = self.cluster.alloc(alloc_id)
            self.cluster.receive(alloc)
            self.cluster.client_update(alloc)

    def start_alloc(self, alloc_id: str) -> None:
        """The allocation's tasks start running."""
        with self.cluster.lock:
            self.cluster.start(self.cluster.alloc(alloc_id))

    def finish(self, alloc_id: str, exit_code: int = 0, oom: bool = False, stdout: bytes = b"",
               stderr: bytes = b"", *, task: str | None = None, signal: int = 0) -> None:
        """Tasks exit (all, or ``task``). Failures follow the restart policy, then the reschedule policy."""
        with self.cluster.lock:
            self.cluster.finish(self.cluster.alloc(alloc_id), exit_code, oom, signal, task, stdout, stderr)

    def driver_failure(self, alloc_id: str, message: str, task: str | None = None) -> None:
        """A task fails before starting (``Driver Failure``, e.g. an image that cannot be pulled)."""
        with self.cluster.lock:
            self.cluster.finish(self.cluster.alloc(alloc_id), 0, False, 0, task, b"", b"", driver_error=message)

    def append_log(self, alloc_id: str, stream: str, data: bytes | str, task: str | None = None) -> None:
        """Append to a task's stdout or stderr (the first task unless ``task``); wakes followers."""
        if stream not in ("stdout", "stderr"):
            raise ValueError("stream must be stdout or stderr")
        with self.cluster.lock:
            alloc = self.cluster.alloc(alloc_id)
            self.cluster.receive(alloc)
            assert alloc.tasks is not None
            name = task or next(iter(alloc.tasks))
            alloc.tasks[name].logs[stream] += data.encode() if isinstance(data, str) else data
            self.cluster.cond.notify_all()

    def stop_alloc(self, alloc_id: str) -> str:
        """Same as ``POST /v1/allocation/<id>/stop``; returns the evaluation ID."""
        with self.cluster.lock:
            return str(self.cluster.stop_alloc(self.cluster.alloc(alloc_id))["EvalID"])

    def stop_alloc_for_spot(self, alloc_id: str) -> str:
        """What the spot watcher does for each allocation on an interrupted node (stop = migrate)."""
        return self.stop_alloc(alloc_id)

    def advance(self, seconds: float) -> None:
        """Move the clock: max_run_duration, drain deadlines and delayed reschedules fire when due."""
        with self.cluster.lock:
            self.cluster.advance(seconds)

    def gc(self) -> list[str]:
        """Garbage-collect dead jobs with their allocations and evaluations; returns the job IDs removed."""
        with self.cluster.lock:
            return self.cluster.gc()

    # ------------------------------------------------------------------ inspection

    @property
    def index(self) -> int:
        """The current raft index."""
        return self.cluster.index

    def job(self, job_id: str, namespace: str = "default") -> dict[str, Any]:
        """A copy of a job's JSON."""
        with self.cluster.lock:
            return copy.deepcopy(self.cluster.job(namespace, job_id))

    def has_job(self, job_id: str, namespace: str = "default") -> bool:
        """Whether the job exists (not purged or garbage-collected)."""
        with self.cluster.lock:
            return (namespace, job_id) in self.cluster.jobs

    def children(self, parent_id: str, namespace: str = "default") -> list[str]:
        """IDs of the jobs dispatched from a parameterized job, oldest first."""
        with self.cluster.lock:
            kids = [j for (ns, _), j in self.cluster.jobs.items() if ns == namespace and j["ParentID"] == parent_id]
            return [j["ID"] for j in sorted(kids, key=lambda j: j["CreateIndex"])]

    def alloc_ids(self, job_id: str, namespace: str = "default") -> list[str]:
        """The job's allocation IDs in creation order."""
        with self.cluster.lock:
            return [a.id for a in self.cluster.job_allocs(namespace, job_id)]

    def latest_alloc(self, job_id: str, namespace: str = "default") -> str | None:
        """The job's newest allocation ID."""
        ids = self.alloc_ids(job_id, namespace)
        return ids[-1] if ids else None

    def alloc(self, alloc_id: str) -> dict[str, Any]:
        """An allocation's full JSON."""
        with self.cluster.lock:
            return self.cluster.alloc(alloc_id).wire()

    def summary(self, job_id: str, namespace: str = "default") -> dict[str, Any]:
        """A job's summary JSON."""
        with self.cluster.lock:
            self.cluster.job(namespace, job_id)
            return self.cluster.summary((namespace, job_id))

    def payload(self, job_id: str, namespace: str = "default") -> bytes:
        """A dispatched job's payload, decoded (Nomad stores it snappy-compressed, base64 on the wire)."""
        raw = self.job(job_id, namespace).get("Payload")
        return snappy_decode(base64.b64decode(raw)) if raw else b""

    def node(self, node_id: str) -> dict[str, Any]:
        """A node's JSON."""
        with self.cluster.lock:
            return self.cluster.node(node_id).wire()


__all__ = ["NomadDouble", "NomadError"]
