#!/usr/bin/env python3
"""Benchmark the gateway with the local runner (process driver) and print a table of what it measured.

Each figure is printed next to its target and next to a baseline measured in the same run on the same
machine: a bare fork/exec of /bin/true, and a bare Flask endpoint inserting one SQLite WAL row under
``gunicorn -w 2``. Load comes from wrk (Debian package ``wrk``) with 8 connections.

    ./.venv/bin/python scripts/bench.py                 # the full run (about 3 minutes)
    ./.venv/bin/python scripts/bench.py --stored 10000  # fewer stored tasks, for a quick look
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.backends.local.backend import LocalBackend  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.spec import validate_spec  # noqa: E402

KEY = "bench-key"
WRK_CONNECTIONS = 8
BARE_APP = textwrap.dedent(
    """
    import sqlite3, threading
    from flask import Flask, request
    app = Flask(__name__)
    local = threading.local()

    def db():
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(DB, isolation_level=None, timeout=30)
            local.conn.execute("PRAGMA journal_mode=WAL")
            local.conn.execute("PRAGMA synchronous=NORMAL")
            local.conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
        return local.conn

    @app.post("/bare")
    def bare():
        db().execute("INSERT INTO t (body) VALUES (?)", (request.get_data(as_text=True),))
        return {"ok": True}
    """
)


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


class Http:
    """One keep-alive HTTP/1.1 connection, as a client library would hold it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        """Status, decoded JSON (or text) and the seconds it took."""
        data = None if body is None else json.dumps(body)
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=self.headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closed an idle keep-alive connection: open a new one, as a client library would.
            self.conn.close()
            started = time.perf_counter()
            self.conn.request(method, path, body=data, headers=self.headers)
            response = self.conn.getresponse()
        raw = response.read()
        took = time.perf_counter() - started
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(raw) if "json" in kind else raw.decode(), took


def timed_requests(http: Http, method: str, paths: list[str], body: Any = None) -> list[float]:
    """Latencies in milliseconds of one request per path, one after another."""
    out = []
    for path in paths:
        status, answer, took = http.request(method, path, body)
        if status != 200:
            raise click.ClickException(f"{method} {path} answered {status}: {answer}")
        out.append(took * 1000)
    return out


def fork_exec_ms(runs: int = 300) -> float:
    """p50 of a bare posix_spawn + wait of /bin/true, in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["true"], os.environ)
        os.waitpid(pid, 0)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50)


def wrk_post(url: str, body: str, seconds: int, headers: dict[str, str]) -> float:
    """Accepted (2xx) POSTs per second from wrk with 8 connections."""
    wrk = shutil.which("wrk")
    if not wrk:
        raise click.ClickException("wrk is needed for the throughput figures: apt-get install wrk")
    lines = ["wrk.method = 'POST'", f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        out = subprocess.run(
            [wrk, "-t2", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    elapsed = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if errors:
        click.echo(f"  wrk: {errors.group(0)}", err=True)
    return (total - (int(bad.group(1)) if bad else 0)) / elapsed


def tree_memory_mb(root_pid: int) -> tuple[float, float]:
    """RSS and PSS (MB) summed over ``root_pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    rss = pss = 0
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


@contextmanager
def served(command: list[str], env: dict[str, str], port: int, ready_path: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends."""
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip

    def ready() -> bool:
        if process.poll() is not None:
            raise click.ClickException(f"{command[0]} exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", ready_path)
            return conn.getresponse().status < 500
        except OSError:
            return False

    try:
        wait_until(ready, 60, f"{' '.join(command[:3])} to listen")
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def spec(name: str, argv: list[str], **extra: Any) -> Any:
    """A process-driver Task API spec."""
    container = {"name": "main", "command": argv, "compute": {"cpu": "10m"}}
    document = {"name": name, "kind": "TaskAPI", "driver": "process", "pod": {"containers": [container]}, **extra}
    return validate_spec(document)


def seed(settings: Settings, stored: int) -> dict[str, list[str]]:
    """Store ``stored`` + 1,000 tasks before the gateway starts; they time out at once and stay as history."""
    backend = LocalBackend(settings)
    ids: dict[str, list[str]] = {}
    for name, count in (("big", stored), ("small", 1000)):
        backend.deploy(spec(name, ["true"], timeout=1))
        ids[name] = [backend.submit(name, {"n": i}, None).record.job_id for i in range(count)]
    return ids


def pending_count(http: Http) -> int:
    """Tasks not yet ended, from the metrics page."""
    _, text, _ = http.request("GET", "/metrics")
    return sum(int(float(v)) for v in re.findall(r'taskapi_tasks\{[^}]*status="(?:pending|running)"\} (\S+)', text))


def submit_to_running_ms(http: Http, api: str) -> float:
    """Submit one task, wait until its first attempt has started; milliseconds between the two (server clock)."""
    _, record, _ = http.request("POST", f"/{api}", {"config": {}})
    path = f"/v1/apis/{api}/tasks/{record['job_id']}"
    task = wait_until(lambda: (t := http.request("GET", path)[1])["attempts"] and t, 30, "the task to start", 0.002)
    return (parse_time(task["attempts"][0]["started_at"]) - parse_time(task["start_time"])) * 1000


def parse_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@click.command()
@click.option("--stored", default=100_000, show_default=True, help="Tasks stored before the read figures.")
@click.option("--seconds", default=10, show_default=True, help="Length of each wrk run.")
@click.option("--json-out", type=click.Path(dir_okay=False), help="Also write the figures as JSON here.")
def main(stored: int, seconds: int, json_out: str | None) -> None:
    """Measure the figures of the performance targets and print them as a table."""
    rows: list[tuple[str, str, str, str]] = []
    state = Path(tempfile.mkdtemp(prefix="taskapi-bench-"))
    port = free_port()
    env = dict(os.environ, TASKAPI_API_KEYS=KEY, TASKAPI_STATE_DIR=str(state), TASKAPI_PORT=str(port),
               TASKAPI_WORKERS="2", TASKAPI_LOG_LEVEL="warning")  # fmt: skip
    settings = Settings(state_dir=state)

    click.echo(f"seeding {stored:,} stored tasks in {state} ...", err=True)
    ids = seed(settings, stored)
    bare_spawn = fork_exec_ms()

    serve = [sys.executable, "-m", "gateway.cli", "serve"]
    with served(serve, env, port, "/readyz") as server:
        http = Http(port)
        wait_until(lambda: pending_count(http) == 0, 300, "the seeded tasks to time out", interval=0.5)

        time.sleep(2)  # let the workers settle after start-up before reading memory at idle
        rss, pss = tree_memory_mb(server.pid)
        rows.append(("idle memory, gateway + runner: PSS (RSS summed)", f"{pss:.0f} MB ({rss:.0f} MB)", "<= 150 MB",
                     "PSS counts pages shared by the forked workers once"))  # fmt: skip

        sample = random.sample(ids["big"], 2000)
        gets = timed_requests(http, "GET", [f"/v1/apis/big/tasks/{i}" for i in sample])
        rows.append((f"status GET p50 / p99 ({stored:,} stored)", f"{percentile(gets, 50):.2f} / "
                     f"{percentile(gets, 99):.2f} ms", "<= 3 / <= 15 ms", "Ray Jobs: 2.8 ms p50"))  # fmt: skip
        cortex = timed_requests(http, "GET", [f"/big?jobID={i}" for i in sample[:500]])
        rows.append(("Cortex GET /<api>?jobID= p50", f"{percentile(cortex, 50):.2f} ms", "<= 3 ms", ""))
        pages = {name: percentile(timed_requests(http, "GET", [f"/v1/apis/{name}/tasks?limit=50"] * 300), 50)
                 for name in ("small", "big")}  # fmt: skip
        rows.append(("list page of 50: 1,000 vs all stored (p50)",
                     f"{pages['small']:.2f} vs {pages['big']:.2f} ms ({pages['big'] / pages['small']:.2f}x)",
                     "within 1.5x", ""))  # fmt: skip

        http.request("PUT", "/v1/apis/quick", spec("quick", ["true"]).to_document())
        submits = [took * 1000 for _, _, took in (http.request("POST", "/quick", {"config": {"i": i}})
                                                  for i in range(1000))]  # fmt: skip
        rows.append(("submit latency p50 / p99", f"{percentile(submits, 50):.2f} / {percentile(submits, 99):.2f} ms",
                     "p50 <= 5 ms", "Ray Jobs: 19 ms"))  # fmt: skip
        wait_until(lambda: pending_count(http) == 0, 120, "the submitted tasks to finish", interval=0.2)
        # One task at a time, so the figure is the path's latency rather than a queue's length.
        delays = [submit_to_running_ms(http, "quick") for _ in range(200)]
        rows.append(("submit -> running p50 (one at a time)", f"{percentile(delays, 50):.2f} ms", "<= 50 ms",
                     f"bare fork/exec of /bin/true: {bare_spawn:.2f} ms; Ray Jobs: 855 ms"))  # fmt: skip

        http.request("PUT", "/v1/apis/burst", spec("burst", ["true"]).to_document())
        burst = 1000
        started = time.perf_counter()
        for i in range(burst):
            http.request("POST", "/burst", {"config": {"i": i}})
        wait_until(lambda: pending_count(http) == 0, 300, "the burst to finish", interval=0.02)
        rate = burst / (time.perf_counter() - started)
        rows.append((f"trivial tasks completed per second ({burst:,} x true)", f"{rate:.0f}/s", ">= 100/s",
                     "Ray Jobs: 1.2/s"))  # fmt: skip

        # Tasks that queue: the API is deleted afterwards, which stops everything still waiting.
        http.request("PUT", "/v1/apis/flood", spec("flood", ["true"], max_concurrency=1).to_document())
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        ours = wrk_post(f"http://127.0.0.1:{port}/flood", '{"config": {"n": 1}}', seconds, headers)
        http.request("DELETE", "/v1/apis/flood")

    bare_port = free_port()
    bare_dir = Path(tempfile.mkdtemp(prefix="taskapi-bare-"))
    (bare_dir / "bare.py").write_text(f"DB = {str(bare_dir / 'bare.db')!r}\n" + BARE_APP)
    bare_env = dict(os.environ, PYTHONPATH=str(bare_dir))
    bare_cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{bare_port}", "bare:app"]
    with served(bare_cmd, bare_env, bare_port, "/"):
        bare = wrk_post(f"http://127.0.0.1:{bare_port}/bare", '{"config": {"n": 1}}', seconds,
                        {"Content-Type": "application/json"})  # fmt: skip
    rows.append((f"accepted submits per second ({WRK_CONNECTIONS} connections)", f"{ours:,.0f}/s", ">= 1,000/s",
                 f"bare Flask + SQLite insert, gunicorn -w 2: {bare:,.0f}/s; Ray Jobs: 48/s"))  # fmt: skip

    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(bare_dir, ignore_errors=True)
    print_table(rows)
    if json_out:
        Path(json_out).write_text(json.dumps([dict(zip(("metric", "measured", "target", "reference"), r, strict=True))
                                              for r in rows], indent=2))  # fmt: skip


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    """Rows as a Markdown table (paste it into the README)."""
    header = ("metric", "measured", "target", "reference (same machine)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        click.echo("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
