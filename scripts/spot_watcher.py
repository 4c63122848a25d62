#!/usr/bin/env python3
"""Spot watcher: move work off a spot node before AWS takes it (runs on every spot node as a Nomad system job).

STANDARD LIBRARY ONLY: it runs on bare nodes with the system ``python3`` (see ``jobspecs/spot-watcher.nomad.hcl``).

Every ``--interval`` seconds (default 5) it reads three IMDSv2 paths:

- ``/latest/meta-data/spot/instance-action``: 200 with ``{"action": "terminate|stop|hibernate", "time": ...}``
  about two minutes before AWS interrupts the spot instance (404 otherwise) → kind ``spot-interruption``;
- ``/latest/meta-data/events/recommendations/rebalance``: 200 with ``{"noticeTime": ...}`` when the instance is
  at elevated risk of interruption (the ASG's capacity rebalance starts a replacement) → ``rebalance-recommendation``;
- ``/latest/meta-data/autoscaling/target-lifecycle-state``: ``InService`` normally; ``Terminated``, ``Detached``,
  ``Standby`` or ``Warmed:*`` means the ASG is taking the instance out of service → ``asg-lifecycle``.

On a notice it, in this order and once each:

1. records the interruption in the node's dynamic metadata (``POST /v1/client/metadata``):
   ``taskapi_interruption=<kind>``, ``taskapi_interruption_time=<RFC 3339 UTC>``, ``taskapi_interruption_detail``;
2. marks the node ineligible (``POST /v1/node/<id>/eligibility {"Eligibility": "ineligible"}``);
3. stops each live allocation of a service or batch job on the node (``GET /v1/node/<id>/allocations``, then
   ``POST /v1/allocation/<id>/stop``): Nomad marks each one for migration and places a replacement on another
   node. A drain would not do it: since Nomad 1.11 a drain leaves batch allocations running, unreplaced.

Idempotent: a repeated notice writes nothing again (the metadata is rewritten only when a MORE severe kind
arrives, e.g. a rebalance recommendation followed by the interruption itself; the node is marked ineligible once;
an allocation is stopped once). Each poll with an active notice re-reads the node's allocations (a read) so an
allocation that slipped in while the node was being marked ineligible is stopped too. A step that failed is
retried on the next poll. The watcher never makes the node eligible again: the node is going away.

Nomad access: ``NOMAD_ADDR`` (``http://``, ``https://`` or ``unix://`` — the Task API socket
``${NOMAD_UNIX_ADDR}``) and ``NOMAD_TOKEN`` (the task's workload identity, ``identity { env = true }``); TLS via
``NOMAD_CACERT``, ``NOMAD_CLIENT_CERT``, ``NOMAD_CLIENT_KEY``. The node ID comes from ``--node-id`` /
``NOMAD_NODE_ID`` (the jobspec sets it to ``${node.unique.id}``: Nomad gives tasks no node-ID variable of its
own), else from the watcher's own allocation (``NOMAD_ALLOC_ID``), else from ``GET /v1/agent/self``.

Logs: one JSON object per line on stdout (``time``, ``level``, ``event`` and fields). Exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

IMDS_DEFAULT = "http://169.254.169.254"
TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
SPOT_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"
LIFECYCLE_PATH = "/latest/meta-data/autoscaling/target-lifecycle-state"

KIND_SPOT = "spot-interruption"
KIND_LIFECYCLE = "asg-lifecycle"
KIND_REBALANCE = "rebalance-recommendation"
SEVERITY = {KIND_REBALANCE: 1, KIND_LIFECYCLE: 2, KIND_SPOT: 3}
LEAVING_STATES = ("Terminated", "Detached", "Standby")

META_KIND = "taskapi_interruption"
META_TIME = "taskapi_interruption_time"
META_DETAIL = "taskapi_interruption_detail"

LIVE_CLIENT_STATES = ("pending", "running")
NODE_LOCAL_JOB_TYPES = ("system", "sysbatch")  # placed per node: stopping them moves nothing


class HTTPFailure(Exception):
    """A request that could not be made or was answered with an unexpected status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------------- HTTP


class _UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix domain socket (Nomad's Task API socket)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        """Connect to the socket file instead of a TCP address."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests: ``http://host:port``, ``https://host:port`` or ``unix:///path/to.sock``."""

    url: str
    timeout: float = 5.0
    ssl_context: ssl.SSLContext | None = None

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, bytes]:
        """One request; returns (status, body). Connection problems raise :class:`HTTPFailure`."""
        parsed = urllib.parse.urlsplit(self.url)
        conn: http.client.HTTPConnection
        if parsed.scheme == "unix":
            conn = _UnixHTTPConnection(parsed.path or parsed.netloc, self.timeout)
        elif parsed.scheme == "https":
            conn = http.client.HTTPSConnection(parsed.netloc, timeout=self.timeout, context=self.ssl_context)
        elif parsed.scheme == "http":
            conn = http.client.HTTPConnection(parsed.netloc, timeout=self.timeout)
        else:
            raise HTTPFailure(f"unsupported address {self.url!r}: use http://, https:// or unix://")
        prefix = parsed.path.rstrip("/") if parsed.scheme != "unix" else ""
        try:
            conn.request(method, prefix + path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise HTTPFailure(f"{method} {path}: {exc}") from exc
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------------- IMDS


class IMDS:
    """An IMDSv2 client: a session token, refreshed before it expires and whenever IMDS answers 401."""

    def __init__(self, endpoint: Endpoint, token_ttl: int = 21600, clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint
        self.token_ttl = token_ttl
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self.refreshes = 0

    def _refresh(self) -> str:
        status, body = self.endpoint.request("PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: str(self.token_ttl)})
        if status != 200:
            raise HTTPFailure(f"IMDS token request answered {status}", status)
        self._token = body.decode().strip()
        # Refresh a little before the token's end: a tenth of its life, at most a minute.
        self._expires = self.clock() + self.token_ttl - min(60.0, self.token_ttl / 10)
        self.refreshes += 1
        return self._token

    def token(self) -> str:
        """A valid session token (a new one when the current one is about to expire)."""
        if self._token is None or self.clock() >= self._expires:
            return self._refresh()
        return self._token

    def get(self, path: str) -> tuple[int, str]:
        """GET a metadata path with the token; a 401 (expired or revoked token) refreshes it and retries once."""
        status, body = self.endpoint.request("GET", path, {TOKEN_HEADER: self.token()})
        if status == 401:
            status, body = self.endpoint.request("GET", path, {TOKEN_HEADER: self._refresh()})
        return status, body.decode(errors="replace")


@dataclass(frozen=True)
class Notice:
    """Something IMDS says about the instance leaving."""

    kind: str
    detail: str

    @property
    def severity(self) -> int:
        """Higher is more urgent."""
        return SEVERITY[self.kind]


def read_notices(imds: IMDS) -> list[Notice]:
    """The notices IMDS shows right now, most severe first (an empty list: nothing is happening)."""
    notices: list[Notice] = []
    status, body = imds.get(SPOT_PATH)
    if status == 200 and body.strip():
        notices.append(Notice(KIND_SPOT, _compact(body)))
    status, body = imds.get(LIFECYCLE_PATH)
    state = body.strip()
    if status == 200 and (state in LEAVING_STATES or state.startswith("Warmed:")):
        notices.append(Notice(KIND_LIFECYCLE, state))
    status, body = imds.get(REBALANCE_PATH)
    if status == 200 and body.strip():
        notices.append(Notice(KIND_REBALANCE, _compact(body)))
    return sorted(notices, key=lambda n: n.severity, reverse=True)


def _compact(body: str) -> str:
    """A JSON body on one line (other text as is), short enough for a metadata value."""
    try:
        text = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True)
    except ValueError:
        text = body.strip()
    return text[:500]


# ---------------------------------------------------------------------------------------------------- Nomad


class Nomad:
    """The few Nomad API calls the watcher makes."""

    def __init__(self, endpoint: Endpoint, token: str | None = None) -> None:
        self.endpoint = endpoint
        self.token = token

    def call(self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None) -> Any:
        """JSON in, JSON out; a non-200 answer raises :class:`HTTPFailure` with Nomad's text."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["X-Nomad-Token"] = self.token
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        data = json.dumps(body).encode() if body is not None else None
        status, raw = self.endpoint.request(method, path + query, headers, data)
        if status != 200:
            raise HTTPFailure(f"{method} {path} answered {status}: {raw.decode(errors='replace').strip()}", status)
        return json.loads(raw) if raw.strip() else None

    def node_id(self, alloc_id: str | None) -> str:
        """This node's ID: from the watcher's own allocation if known, else from the local agent."""
        if alloc_id:
            alloc = self.call("GET", f"/v1/allocation/{urllib.parse.quote(alloc_id)}")
            if alloc and alloc.get("NodeID"):
                return str(alloc["NodeID"])
        info = self.call("GET", "/v1/agent/self") or {}
        node = ((info.get("stats") or {}).get("client") or {}).get("node_id")
        if not node:
            raise HTTPFailure("the local agent did not report a client node_id (is this a Nomad client?)")
        return str(node)

    def set_metadata(self, node_id: str, meta: dict[str, str]) -> None:
        """``POST /v1/client/metadata?node_id=``: set dynamic node metadata."""
        self.call("POST", "/v1/client/metadata", {"node_id": node_id}, {"Meta": meta})

    def mark_ineligible(self, node_id: str) -> None:
        """``POST /v1/node/<id>/eligibility``: no new placements on the node."""
        self.call("POST", f"/v1/node/{node_id}/eligibility", None, {"Eligibility": "ineligible"})

    def node_allocations(self, node_id: str) -> list[dict[str, Any]]:
        """``GET /v1/node/<id>/allocations``."""
        return list(self.call("GET", f"/v1/node/{node_id}/allocations") or [])

    def stop_allocation(self, alloc_id: str, namespace: str) -> str:
        """``POST /v1/allocation/<id>/stop``: stop and migrate (Nomad places a replacement). Returns the eval ID."""
        answer = self.call("POST", f"/v1/allocation/{alloc_id}/stop", {"namespace": namespace}) or {}
        return str(answer.get("EvalID", ""))


# ---------------------------------------------------------------------------------------------------- logging


class Log:
    """Structured log lines: one JSON object per line."""

    def __init__(self, stream: TextIO | None = None, node: str = "") -> None:
        self.stream = stream or sys.stdout
        self.node = node
        self._lock = threading.Lock()

    def __call__(self, level: str, event: str, **fields: Any) -> None:
        """Write one line: ``{"time", "level", "event", "node"?, ...fields}``."""
        record: dict[str, Any] = {"time": rfc3339(time.time()), "level": level, "event": event}
        if self.node:
            record["node"] = self.node
        record.update(fields)
        with self._lock:
            self.stream.write(json.dumps(record, sort_keys=False) + "\n")
            self.stream.flush()


def rfc3339(ts: float) -> str:
    """RFC 3339 UTC with seconds: ``2026-12-04T17:01:00Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------- watcher


@dataclass
class Evacuation:
    """What the watcher has done for this node (kept for the life of the process)."""

    recorded_kind: str | None = None
    ineligible: bool = False
    stopped: dict[str, str] = field(default_factory=dict)  # alloc ID -> eval ID


class Watcher:
    """Polls IMDS and evacuates the node on a notice. :meth:`poll` is one iteration; :func:`run` loops."""

    def __init__(self, imds: IMDS, nomad: Nomad, node_id: str, log: Log, *, own_alloc_id: str | None = None,
                 evacuate_on_rebalance: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.imds = imds
        self.nomad = nomad
        self.node_id = node_id
        self.log = log
        self.own_alloc_id = own_alloc_id
        self.evacuate_on_rebalance = evacuate_on_rebalance
        self.clock = clock
        self.state = Evacuation()
        self.polls = 0

    def poll(self) -> Notice | None:
        """Read IMDS once and act on the most severe notice; returns it (None: no notice)."""
        self.polls += 1
        try:
            notices = read_notices(self.imds)
        except HTTPFailure as exc:
            self.log("warning", "imds_unavailable", error=str(exc))
            return None
        if not notices:
            return None
        notice = notices[0]
        self.handle(notice)
        return notice

    def handle(self, notice: Notice) -> None:
        """Record, cordon, evacuate: each step once; a failed step is retried on the next notice."""
        recorded = self.state.recorded_kind
        if recorded is None or notice.severity > SEVERITY[recorded]:
            self.log("warning", "notice", kind=notice.kind, detail=notice.detail)
            meta = {META_KIND: notice.kind, META_TIME: rfc3339(self.clock()), META_DETAIL: notice.detail}
            try:
                self.nomad.set_metadata(self.node_id, meta)
                self.state.recorded_kind = notice.kind
                self.log("info", "metadata_recorded", **meta)
            except HTTPFailure as exc:
                self.log("error", "metadata_failed", error=str(exc))
        if not self.state.ineligible:
            try:
                self.nomad.mark_ineligible(self.node_id)
                self.state.ineligible = True
                self.log("info", "node_ineligible")
            except HTTPFailure as exc:
                self.log("error", "eligibility_failed", error=str(exc))
        if notice.kind == KIND_REBALANCE and not self.evacuate_on_rebalance:
            return
        self.evacuate()

    def evacuate(self) -> None:
        """Stop every live service/batch allocation on the node that was not stopped yet."""
        try:
            allocs = self.nomad.node_allocations(self.node_id)
        except HTTPFailure as exc:
            self.log("error", "list_allocations_failed", error=str(exc))
            return
        for alloc in allocs:
            alloc_id = str(alloc.get("ID", ""))
            if not self._movable(alloc) or alloc_id in self.state.stopped:
                continue
            namespace = str(alloc.get("Namespace") or "default")
            try:
                eval_id = self.nomad.stop_allocation(alloc_id, namespace)
            except HTTPFailure as exc:
                self.log("error", "stop_failed", alloc_id=alloc_id, job_id=alloc.get("JobID"), error=str(exc))
                continue
            self.state.stopped[alloc_id] = eval_id
            self.log("info", "allocation_stopped", alloc_id=alloc_id, job_id=alloc.get("JobID"),
                     namespace=namespace, eval_id=eval_id)

    def _movable(self, alloc: dict[str, Any]) -> bool:
        if alloc.get("ID") == self.own_alloc_id:
            return False
        if alloc.get("DesiredStatus") != "run" or alloc.get("ClientStatus") not in LIVE_CLIENT_STATES:
            return False
        job_type = alloc.get("JobType") or (alloc.get("Job") or {}).get("Type")
        return job_type not in NODE_LOCAL_JOB_TYPES


def run(watcher: Watcher, interval: float, stop: threading.Event, once: bool = False) -> int:
    """Poll every ``interval`` seconds until ``stop`` is set (or once). Returns the exit code (0)."""
    watcher.log("info", "started", interval=interval, node_id=watcher.node_id)
    while not stop.is_set():
        started = time.monotonic()
        try:
            watcher.poll()
        except Exception as exc:  # a watcher that dies protects nothing: log and keep polling
            watcher.log("error", "poll_failed", error=f"{type(exc).__name__}: {exc}")
        if once:
            break
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    watcher.log("info", "stopped", polls=watcher.polls, allocations_stopped=len(watcher.state.stopped))
    return 0


# ---------------------------------------------------------------------------------------------------- CLI


def _ssl_context() -> ssl.SSLContext | None:
    cafile = os.environ.get("NOMAD_CACERT") or None
    cert = os.environ.get("NOMAD_CLIENT_CERT") or None
    if not cafile and not cert:
        return None
    context = ssl.create_default_context(cafile=cafile)
    if cert:
        context.load_cert_chain(cert, os.environ.get("NOMAD_CLIENT_KEY") or None)
    if os.environ.get("NOMAD_SKIP_VERIFY", "").lower() in ("1", "true"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults from the environment)."""
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=float(env.get("SPOT_WATCHER_INTERVAL", "5")),
                        help="seconds between IMDS polls (default 5, $SPOT_WATCHER_INTERVAL)")
    parser.add_argument("--imds-url", default=env.get("SPOT_WATCHER_IMDS_URL", IMDS_DEFAULT),
                        help="instance metadata service (default %(default)s)")
    parser.add_argument("--imds-timeout", type=float, default=2.0, help="seconds per IMDS request")
    parser.add_argument("--token-ttl", type=int, default=21600, help="IMDSv2 session token TTL in seconds")
    parser.add_argument("--nomad-addr", default=env.get("NOMAD_ADDR", "http://127.0.0.1:4646"),
                        help="Nomad agent: http(s)://host:port or unix:///path ($NOMAD_ADDR)")
    parser.add_argument("--nomad-timeout", type=float, default=10.0, help="seconds per Nomad request")
    parser.add_argument("--node-id", default=env.get("NOMAD_NODE_ID", ""),
                        help="this node's Nomad ID ($NOMAD_NODE_ID; default: asked from Nomad)")
    parser.add_argument("--rebalance", choices=("evacuate", "cordon"), default=env.get("SPOT_WATCHER_REBALANCE",
                        "evacuate"), help="on a rebalance recommendation: stop allocations too, or only cordon")
    parser.add_argument("--once", action="store_true", help="poll once and exit")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    return args


def build(args: argparse.Namespace, stream: TextIO | None = None) -> Watcher:
    """A watcher from parsed options and the environment (``NOMAD_TOKEN``, ``NOMAD_ALLOC_ID``)."""
    imds = IMDS(Endpoint(args.imds_url, args.imds_timeout), args.token_ttl)
    nomad = Nomad(Endpoint(args.nomad_addr, args.nomad_timeout, _ssl_context()), os.environ.get("NOMAD_TOKEN"))
    own_alloc = os.environ.get("NOMAD_ALLOC_ID") or None
    node_id = args.node_id or nomad.node_id(own_alloc)
    return Watcher(imds, nomad, node_id, Log(stream), own_alloc_id=own_alloc,
                   evacuate_on_rebalance=args.rebalance == "evacuate")


def main(argv: list[str] | None = None, stop: threading.Event | None = None) -> int:
    """Entry point: parse options, find the node, poll until SIGTERM/SIGINT (or ``stop``)."""
    args = parse_args(argv)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log = Log()
    while True:
        try:
            watcher = build(args)
            break
        except HTTPFailure as exc:  # the local agent may still be starting: wait for it
            log("error", "startup_failed", error=str(exc))
            if args.once or stop.wait(args.interval):
                return 0 if stop.is_set() else 1
    return run(watcher, args.interval, stop, once=args.once)


if __name__ == "__main__":
    sys.exit(main())
