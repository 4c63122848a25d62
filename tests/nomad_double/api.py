"""The HTTP face of the Nomad double: a werkzeug WSGI application speaking Nomad's wire format."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from . import hcl, jobspec
from .bexpr import FilterError, compile_filter
from .cluster import Cluster, NomadError
from .secrets_api import SecretsStore
from .util import NS, ZERO_TIME, parse_go_duration

MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0
JOB_SUFFIXES = ("/allocations", "/evaluations", "/summary", "/dispatch", "/evaluate", "/versions")
Handler = Callable[[Request, str], Response]


def json_response(body: Any, index: int | None = None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A JSON reply with Nomad's query-meta headers."""
    resp = Response(json.dumps(body), status=status, mimetype="application/json")
    if index is not None:
        resp.headers["X-Nomad-Index"] = str(max(index, 1))
        resp.headers["X-Nomad-KnownLeader"] = "true"
        resp.headers["X-Nomad-LastContact"] = "0"
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def go_bool(value: str | None) -> bool:
    """Go's ``strconv.ParseBool`` truth values (python-nomad sends ``True``)."""
    return (value or "") in ("1", "t", "T", "true", "TRUE", "True")


def error_response(status: int, message: str) -> Response:
    """Nomad's error format: the bare message as text/plain."""
    return Response(message, status=status, content_type="text/plain; charset=utf-8")


class NomadApp:
    """WSGI application: routing, ACLs, region/namespace, blocking queries, request counting."""

    def __init__(self, cluster: Cluster, acl_tokens: set[str] | None, heartbeat: float,
                 max_wait: float = MAX_WAIT) -> None:
        self.cluster = cluster
        self.secrets = SecretsStore(cluster)
        self.acl_tokens = acl_tokens
        self.heartbeat = heartbeat
        self.max_wait = max_wait
        self.requests: Counter[tuple[str, str]] = Counter()
        self.request_log: list[tuple[str, str, str]] = []
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        path = self._path(environ)
        with self._count_lock:
            self.requests[(request.method, path)] += 1
            self.request_log.append((request.method, path, request.query_string.decode()))
        try:
            response = self.dispatch(request, path)
        except NomadError as exc:
            response = error_response(exc.status, exc.message)
        except (ValueError, TypeError) as exc:
            response = error_response(400, str(exc))
        return response(environ, start_response)

    @staticmethod
    def _path(environ: dict[str, Any]) -> str:
        """The decoded request path (``%2F`` becomes ``/``, as Go's ``URL.Path``)."""
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
        if raw:
            return unquote(raw.split("?", 1)[0])
        return str(environ.get("PATH_INFO", ""))

    def dispatch(self, request: Request, path: str) -> Response:
        """Authenticate, check the region and route."""
        if not path.startswith("/v1/status/") and self.acl_tokens is not None:
            token = request.headers.get("X-Nomad-Token", "")
            auth = request.headers.get("Authorization", "")
            if not token and auth.lower().startswith("bearer "):
                token = auth[7:].strip()
            if not token:
                raise NomadError(403, "Permission denied")
            if token not in self.acl_tokens:
                raise NomadError(403, "ACL token not found")
        region = request.args.get("region")
        if region and region != self.cluster.region:
            raise NomadError(500, "No path to region")
        routes: list[tuple[str, Handler]] = [
            ("/v1/jobs/parse", self.jobs_parse), ("/v1/jobs", self.jobs), ("/v1/job/", self.job_any),
            ("/v1/allocations", self.allocations), ("/v1/allocation/", self.allocation),
            ("/v1/client/fs/logs/", self.logs), ("/v1/client/metadata", self.client_metadata),
            ("/v1/client/allocation/", self.client_allocation),
            ("/v1/nodes", self.nodes), ("/v1/node/", self.node_any), ("/v1/evaluations", self.evaluations),
            ("/v1/evaluation/", self.evaluation), ("/v1/event/stream", self.event_stream),
            ("/v1/agent/self", self.agent_self), ("/v1/agent/health", self.agent_health),
            ("/v1/status/leader", self.status_leader), ("/v1/status/peers", self.status_peers),
            ("/v1/regions", self.regions), ("/v1/var/", self.variable), ("/v1/acl/policy/", self.acl_policy),
        ]
        for prefix, handler in routes:
            if prefix.endswith("/") and path.startswith(prefix):
                return handler(request, path[len(prefix):])
            if path == prefix:
                return handler(request, "")
        return error_response(404, "404 page not found")

    # ------------------------------------------------------------------ helpers

    def namespace(self, request: Request) -> str:
        """The request namespace (``?namespace=``, default ``default``)."""
        return request.args.get("namespace") or "default"

    @staticmethod
    def body(request: Request) -> Any:
        """The JSON body, or a 400 like Go's decoder."""
        raw = request.get_data()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise NomadError(400, f"Failed to decode request body: {exc}") from exc

    @staticmethod
    def methods(request: Request, *allowed: str) -> None:
        """405 for anything else."""
        if request.method not in allowed:
            raise NomadError(405, "Invalid method")

    def blocking(self, request: Request, compute: Callable[[], tuple[int, Any]],
                 headers: Callable[[], dict[str, str]] | None = None) -> Response:
        """Serve a read as a blocking query: wait until the index passes ``?index=`` or ``?wait=`` elapses."""
        cluster = self.cluster
        min_index = int(request.args.get("index") or 0)
        wait_text = request.args.get("wait")
        try:
            wait = parse_go_duration(wait_text) / NS if wait_text else DEFAULT_WAIT
        except ValueError as exc:
            raise NomadError(400, f"Invalid wait time: {exc}") from exc
        wait = min(max(wait, 0.0), self.max_wait)
        deadline = time.monotonic() + wait
        with cluster.lock:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    index, body = compute()
                except NomadError as exc:
                    # A missing object blocks too: the query returns once anything changes or the wait ends.
                    if exc.status != 404 or min_index <= 0 or cluster.index > min_index or cluster.closed \
                            or remaining <= 0:
                        raise
                else:
                    if min_index <= 0 or index > min_index or remaining <= 0 or cluster.closed:
                        return json_response(body, index, headers=headers() if headers else {})
                cluster.waiters += 1
                cluster.cond.notify_all()
                try:
                    cluster.cond.wait(timeout=remaining)
                finally:
                    cluster.waiters -= 1

    def filtered(self, request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``?filter=`` (see :mod:`bexpr` for the subset)."""
        text = request.args.get("filter")
        if not text:
            return items
        try:
            predicate = compile_filter(text)
        except FilterError as exc:
            raise NomadError(400, f"failed to read filter expression: {exc}") from exc
        return [item for item in items if predicate(item)]

    # ------------------------------------------------------------------ jobs

    def jobs(self, request: Request, _: str) -> Response:
        """``GET /v1/jobs`` (list with paging) and ``POST /v1/jobs`` (register)."""
        self.methods(request, "GET", "PUT", "POST")
        cluster = self.cluster
        if request.method in ("PUT", "POST"):
            body = self.body(request)
            with cluster.lock:
                return json_response(self.register(request, body, None))
        namespace = self.namespace(request)
        prefix = request.args.get("prefix", "")
        with_meta = go_bool(request.args.get("meta"))
        per_page = int(request.args.get("per_page") or 0)
        next_token = request.args.get("next_token", "")
        page_info: dict[str, str] = {}

        def compute() -> tuple[int, Any]:
            rows = []
            for key in sorted(cluster.jobs, key=lambda k: (k[0], k[1])):
                job = cluster.jobs[key]
                if namespace != "*" and key[0] != namespace:
                    continue
                if not key[1].startswith(prefix):
                    continue
                summary = cluster.summary(key)
                full = {**job, "JobSummary": summary}
                rows.append((key, full, jobspec.stub(job, summary, with_meta)))
            text = request.args.get("filter")
            if text:
                try:
                    predicate = compile_filter(text)
                except FilterError as exc:
                    raise NomadError(400, f"failed to read filter expression: {exc}") from exc
                rows = [r for r in rows if predicate(r[1])]
            if next_token:
                rows = [r for r in rows if self._token(r[0], namespace) >= next_token]
            page_info.clear()
            if per_page and len(rows) > per_page:
                page_info["X-Nomad-NextToken"] = self._token(rows[per_page][0], namespace)
                rows = rows[:per_page]
            return cluster.tables["jobs"], [r[2] for r in rows]

        return self.blocking(request, compute, lambda: dict(page_info))

    @staticmethod
    def _token(key: tuple[str, str], namespace: str) -> str:
        return f"{key[0]}.{key[1]}" if namespace == "*" else key[1]

    def register(self, request: Request, body: Any, job_id: str | None) -> dict[str, Any]:
        """Shared by ``POST /v1/jobs`` and ``POST /v1/job/<id>``."""
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise NomadError(400, "Job must be specified")
        job = body["Job"]
        if job_id is not None and job.get("ID") != job_id:
            raise NomadError(400, "Job ID does not match name")
        namespace = job.get("Namespace") or self.namespace(request)
        if body.get("EnforceIndex"):
            existing = self.cluster.jobs.get((namespace, job.get("ID", "")))
            want = int(body.get("JobModifyIndex") or 0)
            have = existing["JobModifyIndex"] if existing else 0
            if want != have:
                if existing is None:
                    raise NomadError(500, f"Enforcing job modify index {want}: job does not exist")
                raise NomadError(500, f"Enforcing job modify index {want}: job exists with conflicting job "
                                      f"modify index: {have}")
        return self.cluster.register(job, namespace)

    def jobs_parse(self, request: Request, _: str) -> Response:
        """``POST /v1/jobs/parse``: HCL → JSON job."""
        self.methods(request, "PUT", "POST")
        body = self.body(request)
        text = body.get("JobHCL") if isinstance(body, dict) else None
        if not text:
            raise NomadError(400, "Job spec is empty")
        try:
            job = hcl.jobspec_to_json(text)
            hcl.check_variables(text, body.get("Variables") or "")
        except hcl.HCLError as exc:
            raise NomadError(400, str(exc)) from exc
        if body.get("Canonicalize"):
            job = jobspec.canonicalize(job, self.cluster.supports_max_run_duration, validate=False)
        return json_response(hcl.api_job(job))

    def job_any(self, request: Request, rest: str) -> Response:
        """``/v1/job/<id>[/suffix]``: the ID may contain ``/`` (raw or ``%2F``); the suffix is matched last."""
        cluster = self.cluster
        namespace = self.namespace(request)
        for suffix in JOB_SUFFIXES:
            if rest.endswith(suffix) and len(rest) > len(suffix):
                job_id = rest[: -len(suffix)]
                return getattr(self, "job_" + suffix.strip("/"))(request, namespace, job_id)
        if rest.endswith("/dispatch/payload"):
            return self.job_dispatch(request, namespace, rest[: -len("/dispatch/payload")], raw=True)
        job_id = rest
        if request.method == "GET":
            def compute() -> tuple[int, Any]:
                return cluster.job(namespace, job_id)["ModifyIndex"], cluster.job(namespace, job_id)
            return self.blocking(request, compute)
        if request.method in ("PUT", "POST"):
            body = self.body(request)
            with cluster.lock:
                return json_response(self.register(request, body, job_id))
        if request.method == "DELETE":
            purge = go_bool(request.args.get("purge"))
            with cluster.lock:
                return json_response(cluster.deregister(job_id, namespace, purge))
        raise NomadError(405, "Invalid method")

    def job_allocations(self, request: Request, namespace: str, job_id: str) -> Response:
        """``GET /v1/job/<id>/allocations``."""
        self.methods(request, "GET")
        cluster = self.cluster

        def compute() -> tuple[int, Any]:
            return cluster.tables["allocs"], [a.stub() for a in cluster.job_allocs(namespace, job_id)]
        return self.blocking(request, compute)

    def job_evaluations(self, request: Request, namespace: str, job_id: str) -> Response:
        """``GET /v1/job/<id>/evaluations``."""
        self.methods(request, "GET")
        cluster = self.cluster

        def compute() -> tuple[int, Any]:
            evals = [e for e in cluster.evals.values() if e["Namespace"] == namespace and e["JobID"] == job_id]
            return cluster.tables["evals"], evals
        return self.blocking(request, compute)

    def job_summary(self, request: Request, namespace: str, job_id: str) -> Response:
        """``GET /v1/job/<id>/summary``."""
        self.methods(request, "GET")
        cluster = self.cluster

        def compute() -> tuple[int, Any]:
            cluster.job(namespace, job_id)
            summary = cluster.summary((namespace, job_id))
            return summary["ModifyIndex"], summary
        return self.blocking(request, compute)

    def job_versions(self, request: Request, namespace: str, job_id: str) -> Response:
        """``GET /v1/job/<id>/versions`` (only the current version is kept)."""
        self.methods(request, "GET")
        cluster = self.cluster

        def compute() -> tuple[int, Any]:
            job = cluster.job(namespace, job_id)
            return job["ModifyIndex"], {"Versions": [job], "Diffs": None}
        return self.blocking(request, compute)

    def job_evaluate(self, request: Request, namespace: str, job_id: str) -> Response:
        """``POST /v1/job/<id>/evaluate``: a new evaluation that queues missing allocations."""
        self.methods(request, "PUT", "POST")
        cluster = self.cluster
        with cluster.lock:
            job = cluster.job(namespace, job_id)
            if job.get("ParameterizedJob") is not None and not job.get("Dispatched"):
                raise NomadError(500, "can't evaluate parameterized job")
            ev = cluster.new_eval(job, "job-register")
            cluster.want_missing((namespace, job_id), ev["ID"])
            cluster.refresh_job((namespace, job_id))
            cluster.auto()
            return json_response({"EvalID": ev["ID"], "EvalCreateIndex": ev["CreateIndex"],
                                  "JobModifyIndex": job["JobModifyIndex"], "Warnings": "",
                                  "Index": ev["CreateIndex"], "LastContact": 0, "KnownLeader": False})

    def job_dispatch(self, request: Request, namespace: str, job_id: str, raw: bool = False) -> Response:
        """``POST /v1/job/<id>/dispatch`` (JSON body) and ``.../dispatch/payload`` (raw body as payload)."""
        self.methods(request, "PUT", "POST")
        token = request.args.get("idempotency_token", "")
        if raw:
            data = request.get_data()
            meta = {k[5:]: v for k, v in request.args.items() if k.startswith("meta:")}
            body: dict[str, Any] = {"Payload": base64.b64encode(data).decode() if data else None, "Meta": meta,
                                    "IdPrefixTemplate": request.args.get("id_prefix_template", "")}
        else:
            body = self.body(request)
            if not isinstance(body, dict):
                raise NomadError(400, "Failed to decode request body")
            if body.get("JobID") and body["JobID"] != job_id:
                raise NomadError(400, "Job ID does not match")
        with self.cluster.lock:
            return json_response(self.cluster.dispatch(job_id, namespace, body, token))

    # ------------------------------------------------------------------ allocations

    def allocations(self, request: Request, _: str) -> Response:
        """``GET /v1/allocations``."""
        self.methods(request, "GET")
        cluster = self.cluster
        namespace = self.namespace(request)
        prefix = request.args.get("prefix", "")
        task_states = go_bool(request.args.get("task_states", "true"))

        def compute() -> tuple[int, Any]:
            out = []
            for alloc in cluster.allocs.values():
                if (namespace != "*" and alloc.namespace != namespace) or not alloc.id.startswith(prefix):
                    continue
                stub = alloc.stub()
                if not task_states:
                    stub["TaskStates"] = None
                out.append(stub)
            return cluster.tables["allocs"], self.filtered(request, out)
        return self.blocking(request, compute)

    def allocation(self, request: Request, rest: str) -> Response:
        """``GET /v1/allocation/<id>`` and ``POST /v1/allocation/<id>/stop``."""
        cluster = self.cluster
        if rest.endswith("/stop"):
            self.methods(request, "PUT", "POST")
            with cluster.lock:
                return json_response(cluster.stop_alloc(cluster.alloc(rest[:-5])))
        self.methods(request, "GET")

        def compute() -> tuple[int, Any]:
            alloc = cluster.alloc(rest)
            return alloc.modify_index, alloc.wire()
        return self.blocking(request, compute)

    def logs(self, request: Request, alloc_id: str) -> Response:
        """``GET /v1/client/fs/logs/<alloc>``: plain or framed, optionally following until the alloc ends."""
        self.methods(request, "GET")
        cluster = self.cluster
        args = request.args
        task = args.get("task", "")
        stream = args.get("type", "")
        origin = args.get("origin", "start")
        follow = go_bool(args.get("follow"))
        plain = go_bool(args.get("plain"))
        try:
            offset = int(args.get("offset") or 0)
        except ValueError as exc:
            raise NomadError(400, f"Failed to parse offset: {exc}") from exc
        if not task:
            raise NomadError(400, "must provide task name")
        if stream not in ("stdout", "stderr"):
            raise NomadError(400, "must provide log type (stdout/stderr)")
        if origin not in ("start", "end"):
            raise NomadError(400, "origin must be start or end")
        with cluster.lock:
            try:
                alloc = cluster.alloc(alloc_id)
            except NomadError as exc:
                raise NomadError(404, f'Unknown allocation "{alloc_id}"') from exc
            if task not in [t["Name"] for t in alloc.group()["Tasks"]]:
                raise NomadError(400, f'Failed to lookup task "{task}" in allocation')
            data = self._log_bytes(alloc, task, stream)
            start = max(0, len(data) - offset) if origin == "end" else min(offset, len(data))
        file_name = f"alloc/logs/{task}.{stream}.0"
        return Response(self._log_stream(alloc.id, task, stream, start, follow, plain, file_name),
                        content_type="text/plain; charset=utf-8" if plain else "application/json",
                        direct_passthrough=True)

    def client_allocation(self, request: Request, rest: str) -> Response:
        """``POST /v1/client/allocation/<id>/signal`` and ``.../restart`` (answer ``{}``)."""
        self.methods(request, "PUT", "POST")
        alloc_id, _, action = rest.partition("/")
        body = self.body(request) or {}
        cluster = self.cluster
        with cluster.lock:
            alloc = cluster.alloc(alloc_id)
            if action == "signal":
                cluster.signal(alloc, str(body.get("Signal") or "SIGKILL"), str(body.get("Task") or ""))
            elif action == "restart":
                cluster.restart(alloc, str(body.get("TaskName") or ""))
            else:
                return error_response(404, "404 page not found")
        return json_response({})

    @staticmethod
    def _log_bytes(alloc: Any, task: str, stream: str) -> bytes:
        if not alloc.tasks or task not in alloc.tasks:
            return b""
        return bytes(alloc.tasks[task].logs[stream])

    def _log_stream(self, alloc_id: str, task: str, stream: str, pos: int, follow: bool, plain: bool,
                    file_name: str) -> Iterator[bytes]:
        cluster = self.cluster
        yield b""  # send the headers now, as Nomad does, even before any log data exists
        while True:
            with cluster.lock:
                alloc = cluster.allocs.get(alloc_id)
                data = self._log_bytes(alloc, task, stream)[pos:] if alloc else b""
                done = alloc is None or alloc.client_terminal() or cluster.closed
            if data:
                if plain:
                    yield data
                else:
                    frame = {"Offset": pos + len(data), "Data": base64.b64encode(data).decode(), "File": file_name}
                    yield json.dumps(frame).encode()
                pos += len(data)
            if not follow or done:
                return
            size = pos

            def changed(alloc_id: str = alloc_id, size: int = size) -> bool:
                current = cluster.allocs.get(alloc_id)
                return current is None or current.client_terminal() or \
                    len(self._log_bytes(current, task, stream)) > size
            cluster.wait_for_change(changed, timeout=1.0)

    # ------------------------------------------------------------------ nodes

    def _node_for_request(self, request: Request) -> Any:
        node_id = request.args.get("node_id", "")
        if node_id:
            return self.cluster.node(node_id)
        if not self.cluster.nodes:
            raise NomadError(400, "Nomad client agent is not running on this agent")
        return next(iter(self.cluster.nodes.values()))

    def variable(self, request: Request, path: str) -> Response:
        """``GET/PUT /v1/var/<path>`` (``?cas=`` for check-and-set)."""
        namespace = self.namespace(request)
        if request.method == "GET":
            found = self.secrets.get_variable(namespace, path)
            return json_response(found, found["ModifyIndex"])
        self.methods(request, "PUT")
        cas = request.args.get("cas")
        return json_response(self.secrets.put_variable(namespace, path, self.body(request), int(cas) if cas else None))

    def acl_policy(self, request: Request, name: str) -> Response:
        """``GET/POST /v1/acl/policy/<name>``."""
        if request.method == "GET":
            return json_response(self.secrets.get_policy(name))
        self.methods(request, "PUT", "POST")
        self.secrets.put_policy(name, self.body(request))
        return Response(b"", status=200, mimetype="application/json")

    def client_metadata(self, request: Request, _: str) -> Response:
        """``GET/POST /v1/client/metadata?node_id=``."""
        cluster = self.cluster
        if request.method == "GET":
            with cluster.lock:
                node = self._node_for_request(request)
                return json_response(cluster.metadata(node), node.modify_index)
        self.methods(request, "PUT", "POST")
        body = self.body(request)
        meta = body.get("Meta") if isinstance(body, dict) else None
        if not isinstance(meta, dict):
            raise NomadError(400, "Meta must be specified")
        with cluster.lock:
            return json_response(cluster.update_metadata(self._node_for_request(request), meta))

    def nodes(self, request: Request, _: str) -> Response:
        """``GET /v1/nodes``."""
        self.methods(request, "GET")
        cluster = self.cluster
        prefix = request.args.get("prefix", "")
        with_os = go_bool(request.args.get("os"))

        def compute() -> tuple[int, Any]:
            stubs = [n.stub(cluster.version, with_os) for n in cluster.nodes.values() if n.id.startswith(prefix)]
            return cluster.tables["nodes"], self.filtered(request, stubs)
        return self.blocking(request, compute)

    def node_any(self, request: Request, rest: str) -> Response:
        """``/v1/node/<id>``, ``.../allocations``, ``.../eligibility``, ``.../drain``."""
        cluster = self.cluster
        node_id, _, action = rest.partition("/")
        if action == "":
            self.methods(request, "GET")

            def compute() -> tuple[int, Any]:
                node = cluster.node(node_id)
                return node.modify_index, node.wire()
            return self.blocking(request, compute)
        if action == "allocations":
            self.methods(request, "GET")

            def compute_allocs() -> tuple[int, Any]:
                node = cluster.node(node_id)
                return cluster.tables["allocs"], [a.wire() for a in cluster.allocs.values() if a.node_id == node.id]
            return self.blocking(request, compute_allocs)
        self.methods(request, "PUT", "POST")
        body = self.body(request)
        with cluster.lock:
            node = cluster.node(node_id)
            if action == "eligibility":
                return json_response(cluster.set_eligibility(node, str(body.get("Eligibility", ""))))
            if action == "drain":
                return json_response(cluster.drain(node, body.get("DrainSpec"), bool(body.get("MarkEligible")),
                                                   body.get("Meta")))
        return error_response(404, "404 page not found")

    # ------------------------------------------------------------------ evaluations

    def evaluations(self, request: Request, _: str) -> Response:
        """``GET /v1/evaluations``."""
        self.methods(request, "GET")
        cluster = self.cluster
        namespace = self.namespace(request)
        prefix = request.args.get("prefix", "")
        status = request.args.get("status", "")
        job_id = request.args.get("job", "")

        def compute() -> tuple[int, Any]:
            evals = [e for e in cluster.evals.values()
                     if (namespace == "*" or e["Namespace"] == namespace) and e["ID"].startswith(prefix)
                     and (not status or e["Status"] == status) and (not job_id or e["JobID"] == job_id)]
            return cluster.tables["evals"], self.filtered(request, evals)
        return self.blocking(request, compute)

    def evaluation(self, request: Request, rest: str) -> Response:
        """``GET /v1/evaluation/<id>`` (``?related=true``) and ``.../allocations``."""
        self.methods(request, "GET")
        cluster = self.cluster
        eval_id, _, action = rest.partition("/")

        def lookup() -> dict[str, Any]:
            ev = cluster.evals.get(eval_id)
            if ev is None:
                raise NomadError(404, "eval not found")
            return ev

        if action == "allocations":
            def compute_allocs() -> tuple[int, Any]:
                lookup()
                return cluster.tables["allocs"], [a.stub() for a in cluster.allocs.values() if a.eval_id == eval_id]
            return self.blocking(request, compute_allocs)

        def compute() -> tuple[int, Any]:
            ev = dict(lookup())
            if go_bool(request.args.get("related")):
                ev["RelatedEvals"] = [self._eval_stub(e) for e in cluster.evals.values()
                                      if e["JobID"] == ev["JobID"] and e["ID"] != ev["ID"]]
            return ev["ModifyIndex"], ev
        return self.blocking(request, compute)

    @staticmethod
    def _eval_stub(ev: dict[str, Any]) -> dict[str, Any]:
        keys = ("ID", "Namespace", "Priority", "Type", "TriggeredBy", "JobID", "NodeID", "DeploymentID", "Status",
                "StatusDescription", "WaitUntil", "NextEval", "PreviousEval", "BlockedEval", "CreateIndex",
                "ModifyIndex", "CreateTime", "ModifyTime")
        stub = {k: ev.get(k) for k in keys}
        if stub["WaitUntil"] == ZERO_TIME:
            stub["WaitUntil"] = None  # the stub's WaitUntil is a pointer in Nomad
        return stub

    # ------------------------------------------------------------------ events

    def event_stream(self, request: Request, _: str) -> Response:
        """``GET /v1/event/stream``: newline-delimited JSON frames and ``{}`` heartbeats."""
        self.methods(request, "GET")
        topics: dict[str, set[str]] = {}
        for raw in request.args.getlist("topic"):
            topic, _, key = raw.partition(":")
            topics.setdefault(topic, set()).add(key or "*")
        if not topics:
            topics = {"*": {"*"}}
        namespace = self.namespace(request)
        start = int(request.args.get("index") or 0)
        return Response(self._events(topics, namespace, start), content_type="application/json",
                        direct_passthrough=True)

    @staticmethod
    def _wanted(event: dict[str, Any], topics: dict[str, set[str]], namespace: str) -> bool:
        keys = topics.get(event["Topic"], set()) | topics.get("*", set())
        if not keys:
            return False
        if namespace != "*" and event["Namespace"] not in ("", namespace):
            return False
        if "*" in keys:
            return True
        return event["Key"] in keys or any(k in keys for k in (event["FilterKeys"] or []))

    def _events(self, topics: dict[str, set[str]], namespace: str, start: int) -> Iterator[bytes]:
        cluster = self.cluster
        with cluster.lock:
            position = cluster.events_dropped  # like Nomad: index 0 replays the buffer from its oldest event
        last_beat = time.monotonic()
        yield b""
        while True:
            with cluster.lock:
                if cluster.closed:
                    return
                batch = cluster.events[max(0, position - cluster.events_dropped):]
                position = cluster.events_dropped + len(cluster.events)
            frames: dict[int, list[dict[str, Any]]] = {}
            for event in batch:
                if event["Index"] < start or not self._wanted(event, topics, namespace):
                    continue
                frames.setdefault(event["Index"], []).append(event)
            for index in sorted(frames):
                yield (json.dumps({"Index": index, "Events": frames[index]}) + "\n").encode()
                last_beat = time.monotonic()
            if time.monotonic() - last_beat >= self.heartbeat:
                yield b"{}\n"
                last_beat = time.monotonic()
            seen = position
            cluster.wait_for_change(lambda seen=seen: cluster.events_dropped + len(cluster.events) != seen,
                                    timeout=max(0.05, self.heartbeat - (time.monotonic() - last_beat)))

    # ------------------------------------------------------------------ agent and status

    def agent_self(self, request: Request, _: str) -> Response:
        """``GET /v1/agent/self`` (minimal)."""
        self.methods(request, "GET")
        cluster = self.cluster
        version = {"Version": cluster.version, "VersionPrerelease": "", "VersionMetadata": "", "Revision": ""}
        return json_response({
            "config": {"Region": cluster.region, "Datacenter": "dc1", "NodeName": "nomad-double",
                       "Version": version, "ACL": {"Enabled": self.acl_tokens is not None},
                       "Server": {"Enabled": True}, "Client": {"Enabled": bool(cluster.nodes)}},
            "member": {"Name": "nomad-double.global", "Addr": "127.0.0.1", "Port": 4648, "Status": "alive",
                       "Tags": {"region": cluster.region, "dc": "dc1", "build": cluster.version, "role": "nomad"}},
            "stats": {"nomad": {"leader": "true", "server": "true"}},
        })

    def agent_health(self, request: Request, _: str) -> Response:
        """``GET /v1/agent/health``."""
        self.methods(request, "GET")
        return json_response({"server": {"ok": True, "message": "ok"}, "client": {"ok": True, "message": "ok"}})

    def status_leader(self, request: Request, _: str) -> Response:
        """``GET /v1/status/leader``."""
        self.methods(request, "GET")
        return json_response("127.0.0.1:4647")

    def status_peers(self, request: Request, _: str) -> Response:
        """``GET /v1/status/peers``."""
        self.methods(request, "GET")
        return json_response(["127.0.0.1:4647"])

    def regions(self, request: Request, _: str) -> Response:
        """``GET /v1/regions``."""
        self.methods(request, "GET")
        return json_response([self.cluster.region])

