"""Tasks under the process driver, driven through LocalBackend and a real runner process."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

from gateway.backends.base import Conflict, NotFound
from gateway.task_states import TaskStatus

from .conftest import Local, wait_for

PY = sys.executable


def test_success_reads_job_file(local: Local) -> None:
    script = (
        "import json, os; job = json.load(open(os.environ['TASKAPI_JOB_FILE'])); "
        "print(job['config']['greeting'], job['job_id'] == os.environ['TASKAPI_JOB_ID'], "
        "os.environ['TASKAPI_API_NAME'], os.environ['TASKAPI_ATTEMPT'], os.environ['EXTRA'])"
    )
    local.deploy("hello", [PY, "-c", script], env={"EXTRA": "x"})
    submitted = local.backend.submit("hello", {"greeting": "hi"}, None)
    assert submitted.created
    record = submitted.record
    assert len(record.job_id) == 16 and record.timeout == 3600 and record.start_time.endswith("Z")
    status = local.wait_final("hello", record.job_id)
    assert status.status is TaskStatus.SUCCEEDED
    assert status.worker_counts is None and status.end_time and status.end_time.endswith("Z")
    [attempt] = status.attempts
    assert attempt.outcome == "succeeded" and attempt.exit_code == 0 and attempt.node
    out = b"".join(local.backend.logs("hello", record.job_id, "stdout", None, False))
    assert out == b"hi True hello 1 x\n"


def test_exit_code_is_worker_error(local: Local) -> None:
    local.deploy("fails", ["sh", "-c", "echo oops >&2; exit 3"])
    task_id = local.backend.submit("fails", {}, None).record.job_id
    status = local.wait_final("fails", task_id)
    assert status.status is TaskStatus.WORKER_ERROR
    assert [(a.exit_code, a.outcome) for a in status.attempts] == [(3, "failed")]
    assert b"".join(local.backend.logs("fails", task_id, "stderr", 1, False)) == b"oops\n"
    with pytest.raises(NotFound):
        local.backend.logs("fails", task_id, "stdout", 2, False)


def test_retries_until_success(local: Local) -> None:
    script = "import os, sys; sys.exit(0 if os.environ['TASKAPI_ATTEMPT'] == '3' else 1)"
    local.deploy("flaky", [PY, "-c", script], retry={"attempts": 2, "delay": "100ms"})
    task_id = local.backend.submit("flaky", {}, None).record.job_id
    status = local.wait_final("flaky", task_id)
    assert status.status is TaskStatus.SUCCEEDED
    assert [a.outcome for a in status.attempts] == ["failed", "failed", "succeeded"]


def test_retries_exhausted(local: Local) -> None:
    local.deploy("broken", ["false"], retry={"attempts": 1, "delay": "5s"})
    task_id = local.backend.submit("broken", {}, None).record.job_id
    waiting = wait_for(
        lambda: (s := local.backend.get_task("broken", task_id)).message and "retrying" in s.message and s,
        what="the retry wait",
    )
    assert waiting.status is TaskStatus.PENDING and waiting.worker_counts == {"pending": 1}
    assert waiting.message == "retrying in 5s, attempt 2 of 2"


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie waiting for its reaper is gone for our purposes.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_timeout_kills_the_task(local: Local) -> None:
    # The task ignores SIGTERM, so only the SIGKILL after kill_timeout ends it.
    local.deploy("slow", ["sh", "-c", "trap '' TERM; echo $$ > pid; sleep 60 & wait"], kill_timeout="500ms")
    task_id = local.backend.submit("slow", {}, 1).record.job_id
    status = local.wait_final("slow", task_id)
    assert status.status is TaskStatus.TIMED_OUT
    assert status.attempts[0].outcome == "timed_out"
    pid = int((local.state_dir / "attempts" / task_id / "1" / "pid").read_text())
    assert _pid_gone(pid)


def test_pending_task_times_out_without_attempt(local: Local) -> None:
    local.deploy("queue", ["sleep", "30"], max_concurrency=1)
    blocker = local.backend.submit("queue", {}, None).record.job_id
    local.wait_status("queue", blocker, "running")
    waiting = local.backend.submit("queue", {}, 1).record.job_id
    status = local.wait_final("queue", waiting)
    assert status.status is TaskStatus.TIMED_OUT and status.attempts == []


def test_stop(local: Local) -> None:
    local.deploy("stoppable", ["sleep", "60"], max_concurrency=1)
    running = local.backend.submit("stoppable", {}, None).record.job_id
    local.wait_status("stoppable", running, "running")
    pending = local.backend.submit("stoppable", {}, None).record.job_id
    wait_for(lambda: local.backend.get_task("stoppable", pending).message, what="a pending message")
    assert local.backend.get_task("stoppable", pending).message == "waiting for max_concurrency (1 running)"
    local.backend.stop_task("stoppable", pending)
    assert local.backend.get_task("stoppable", pending).status is TaskStatus.STOPPED
    local.backend.stop_task("stoppable", running)
    status = local.wait_final("stoppable", running)
    assert status.status is TaskStatus.STOPPED and status.attempts[0].outcome == "stopped"
    with pytest.raises(Conflict):
        local.backend.stop_task("stoppable", running)


def test_max_concurrency(local: Local, tmp_path: Path) -> None:
    script = (
        "import os, sys, time; start = time.time(); time.sleep(0.3); "
        "open(os.path.join(sys.argv[1], os.environ['TASKAPI_JOB_ID']), 'w').write(f'{start} {time.time()}')"
    )
    local.deploy("limited", [PY, "-c", script, str(tmp_path)], max_concurrency=2)
    ids = [local.backend.submit("limited", {}, None).record.job_id for _ in range(6)]
    for task_id in ids:
        assert local.wait_final("limited", task_id).status is TaskStatus.SUCCEEDED
    spans = [tuple(map(float, (tmp_path / t).read_text().split())) for t in ids]
    peak = max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)
    assert peak == 2


def test_capacity_is_fifo(local: Local) -> None:
    # 8 CPUs in all: a 6-CPU task waits behind the running one, and a small later task waits behind it.
    local.deploy("big", ["sleep", "60"], compute={"cpu": "6"})
    local.deploy("small", ["true"], compute={"cpu": "1"})
    first = local.backend.submit("big", {}, None).record.job_id
    local.wait_status("big", first, "running")
    second = local.backend.submit("big", {}, None).record.job_id
    third = local.backend.submit("small", {}, None).record.job_id
    wait_for(lambda: local.backend.get_task("big", second).message, what="a capacity message")
    assert local.backend.get_task("big", second).message == "waiting for capacity: needs 6000m CPU, 2000m free"
    assert local.backend.get_task("small", third).status is TaskStatus.PENDING
    local.backend.stop_task("big", first)
    local.wait_status("big", second, "running")
    local.backend.stop_task("big", second)
    assert local.wait_final("small", third).status is TaskStatus.SUCCEEDED


def test_idempotency(local: Local) -> None:
    local.deploy("idem", ["true"])
    first = local.backend.submit("idem", {"a": 1}, None, idempotency_key="k1")
    again = local.backend.submit("idem", {"a": 1}, None, idempotency_key="k1")
    assert first.created and not again.created
    assert again.record.job_id == first.record.job_id
    with pytest.raises(Conflict):
        local.backend.submit("idem", {"a": 2}, None, idempotency_key="k1")
    with pytest.raises(Conflict):
        local.backend.submit("idem", {"a": 1}, 10, idempotency_key="k1")
    other = local.backend.submit("idem", {"a": 1}, None, idempotency_key="k2")
    assert other.created and other.record.job_id != first.record.job_id
    with pytest.raises(NotFound):
        local.backend.submit("nope", {}, None, idempotency_key="k1")


def test_concurrent_submissions(local: Local) -> None:
    local.deploy("many", ["true"], compute={"cpu": "100m"})
    ids: list[str] = []
    lock = threading.Lock()

    def submit_some() -> None:
        for _ in range(20):
            task_id = local.backend.submit("many", {}, None).record.job_id
            with lock:
                ids.append(task_id)

    threads = [threading.Thread(target=submit_some) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 200

    def all_done() -> bool:
        counts = local.backend.status_counts()
        return counts.get(("many", "succeeded"), 0) == 200

    wait_for(all_done, 90, "200 tasks to succeed")
    tasks, cursor = local.backend.list_tasks("many", TaskStatus.SUCCEEDED, 150, None)
    rest, end = local.backend.list_tasks("many", TaskStatus.SUCCEEDED, 150, cursor)
    assert end is None and len(tasks) == 150 and len(rest) == 50
    assert {t.job_id for t in tasks + rest} == set(ids)
    assert all(len(t.attempts) == 1 for t in tasks + rest)


def test_logs_follow(local: Local) -> None:
    local.deploy("chatty", ["sh", "-c", "echo one; sleep 0.3; echo two; sleep 0.3; echo three"], max_concurrency=1)
    blocker = local.backend.submit("chatty", {}, None).record.job_id
    task_id = local.backend.submit("chatty", {}, None).record.job_id
    # Followed from before the task starts: waits for its first attempt, then streams until it ends.
    chunks = list(local.backend.logs("chatty", task_id, "stdout", None, True))
    assert b"".join(chunks) == b"one\ntwo\nthree\n"
    assert local.wait_final("chatty", blocker).status is TaskStatus.SUCCEEDED
    assert b"".join(local.backend.logs("chatty", task_id, "stdout", 1, True)) == b"one\ntwo\nthree\n"


def test_delete_api_stops_tasks_and_keeps_records(local: Local) -> None:
    local.deploy("doomed", ["sleep", "60"], max_concurrency=1)
    running = local.backend.submit("doomed", {}, None).record.job_id
    local.wait_status("doomed", running, "running")
    pending = local.backend.submit("doomed", {}, None).record.job_id
    local.backend.delete_api("doomed")
    assert local.wait_final("doomed", running).status is TaskStatus.STOPPED
    assert local.backend.get_task("doomed", pending).status is TaskStatus.STOPPED
    with pytest.raises(NotFound):
        local.backend.get_api("doomed")
    with pytest.raises(NotFound):
        local.backend.submit("doomed", {}, None)


def test_job_file_matches_the_record(local: Local) -> None:
    local.deploy("record", ["true"])
    record = local.backend.submit("record", {"x": [1, 2]}, 99).record
    local.wait_final("record", record.job_id)
    job = json.loads((local.state_dir / "attempts" / record.job_id / "1" / "job.json").read_text())
    assert job == record.model_dump()


def test_a_saturated_api_does_not_starve_others(local: Local) -> None:
    local.deploy("busy", ["sleep", "60"], max_concurrency=1)
    local.deploy("quick", ["true"])
    first = local.backend.submit("busy", {}, None).record.job_id
    local.wait_status("busy", first, "running")
    # More queued tasks than the runner scans in one pass.
    queued = [local.backend.submit("busy", {}, None).record.job_id for _ in range(600)]
    quick = local.backend.submit("quick", {}, None).record.job_id
    assert local.wait_final("quick", quick).status is TaskStatus.SUCCEEDED
    newest = local.backend.get_task("busy", queued[-1])
    assert newest.status is TaskStatus.PENDING
    wait_for(
        lambda: local.backend.get_task("busy", queued[-1]).message == "waiting for max_concurrency (1 running)",
        what="the max_concurrency message",
    )
