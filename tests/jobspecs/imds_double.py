"""A small IMDSv2 double for the spot watcher's tests (http.server on a free loopback port, in a thread).

Like EC2's instance metadata service with ``http_tokens = "required"``:

- ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds: 1..21600`` → a session token (text);
  a missing or out-of-range TTL → 400;
- every ``GET`` needs a valid ``X-aws-ec2-metadata-token`` → otherwise 401 (missing, unknown or expired token);
- ``/latest/meta-data/spot/instance-action``: 404 until :meth:`set_spot_notice`, then 200 JSON
  ``{"action": ..., "time": ...}``;
- ``/latest/meta-data/events/recommendations/rebalance``: 404 until :meth:`set_rebalance`, then 200 JSON
  ``{"noticeTime": ...}``;
- ``/latest/meta-data/autoscaling/target-lifecycle-state``: 200 ``InService`` (or :meth:`set_lifecycle`'s state);
  404 when set to None (an instance outside an ASG).

:meth:`expire_tokens` makes every issued token invalid (the next GET answers 401, forcing a refresh). Requests are
counted per (method, path, status); :meth:`wait_for_polls` waits for the watcher to read the spot path N more times
(no fixed sleeps in tests).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

TOKEN_PATH = "/latest/api/token"
SPOT_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"
LIFECYCLE_PATH = "/latest/meta-data/autoscaling/target-lifecycle-state"


class IMDSDouble:
    """The IMDSv2 paths the spot watcher reads, with tokens, notices and request counts."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.spot: dict[str, str] | None = None
        self.rebalance: dict[str, str] | None = None
        self.lifecycle: str | None = "InService"
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> IMDSDouble:
        """Serve on a free loopback port."""
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_PUT(self) -> None:
                double._put(self)

            def do_GET(self) -> None:
                double._get(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="imds-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> IMDSDouble:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None, "start() the double first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ control

    def set_spot_notice(self, action: str = "terminate", when: str = "2026-12-04T17:02:00Z") -> None:
        """AWS decided to interrupt the instance (two minutes ahead)."""
        with self.cond:
            self.spot = {"action": action, "time": when}

    def set_rebalance(self, notice_time: str = "2026-12-04T17:00:00Z") -> None:
        """The instance is at elevated risk of interruption."""
        with self.cond:
            self.rebalance = {"noticeTime": notice_time}

    def set_lifecycle(self, state: str | None) -> None:
        """The ASG's target lifecycle state (None: the path answers 404)."""
        with self.cond:
            self.lifecycle = state

    def clear(self) -> None:
        """No notice at all."""
        with self.cond:
            self.spot = self.rebalance = None
            self.lifecycle = "InService"

    def expire_tokens(self) -> None:
        """Every issued token is expired: the next GET with one answers 401."""
        with self.cond:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    # ------------------------------------------------------------------ inspection

    def count(self, method: str, path: str, status: int | None = None) -> int:
        """Requests answered for (method, path), with one status or any."""
        with self.cond:
            return sum(n for (m, p, s), n in self.requests.items()
                       if m == method and p == path and (status is None or s == status))

    @property
    def token_requests(self) -> int:
        """Tokens handed out."""
        return self.count("PUT", TOKEN_PATH, 200)

    @property
    def polls(self) -> int:
        """Authorized reads of the spot path (one per watcher poll)."""
        with self.cond:
            return sum(n for (m, p, s), n in self.requests.items() if m == "GET" and p == SPOT_PATH and s != 401)

    def wait_for_polls(self, more: int, timeout: float = 10.0) -> None:
        """Wait until the watcher has polled ``more`` more times than now (AssertionError after ``timeout``)."""
        target = self.polls + more
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._polls_locked() < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the watcher polled IMDS {self._polls_locked()} times, expected {target}")
                self.cond.wait(left)

    def _polls_locked(self) -> int:
        return sum(n for (m, p, s), n in self.requests.items() if m == "GET" and p == SPOT_PATH and s != 401)

    # ------------------------------------------------------------------ HTTP

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: str,
                content_type: str = "text/plain") -> None:
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        with self.cond:
            self.requests[(handler.command, handler.path, status)] += 1
            self.cond.notify_all()

    def _put(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path != TOKEN_PATH:
            self._answer(handler, 404, "Not Found")
            return
        try:
            ttl = int(handler.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            self._answer(handler, 400, "Bad Request")
            return
        token = uuid.uuid4().hex
        with self.cond:
            self.tokens[token] = time.monotonic() + ttl
        self._answer(handler, 200, token)

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        token = handler.headers.get("X-aws-ec2-metadata-token", "")
        with self.cond:
            valid = token in self.tokens and self.tokens[token] > time.monotonic()
            spot, rebalance, lifecycle = self.spot, self.rebalance, self.lifecycle
        if not valid:
            self._answer(handler, 401, "Unauthorized")
            return
        if handler.path == SPOT_PATH and spot is not None:
            self._answer(handler, 200, json.dumps(spot), "application/json")
        elif handler.path == REBALANCE_PATH and rebalance is not None:
            self._answer(handler, 200, json.dumps(rebalance), "application/json")
        elif handler.path == LIFECYCLE_PATH and lifecycle is not None:
            self._answer(handler, 200, lifecycle)
        else:
            self._answer(handler, 404, "Not Found")
