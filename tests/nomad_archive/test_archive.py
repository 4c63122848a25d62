"""The archive of finished tasks, the same suite on a directory and on S3 (a real moto server)."""

from __future__ import annotations

import io
import os
import random
import threading
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from gateway.backends.base import Unavailable, Unprocessable
from gateway.backends.nomad.archive import (
    CHUNK_SIZE,
    Archive,
    DirectoryArchive,
    S3Archive,
    open_archive,
)
from gateway.models import Attempt, JobStatus
from gateway.task_states import Outcome, TaskStatus
from tests.conftest import free_port
from tests.moto_server import MotoServer

API = "resnet-batch"


def task_id(n: int) -> str:
    return f"{n:016x}"


def finished(n: int, status: TaskStatus = TaskStatus.SUCCEEDED, second: int | None = None, api: str = API) -> JobStatus:
    """A finished task submitted ``second`` seconds into the day (default ``n``), with two attempts."""
    second = n if second is None else second
    start = f"2026-12-04T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.250Z"
    return JobStatus(
        job_id=task_id(n),
        api_name=api,
        config={"n": n, "nested": {"list": [1, 2.5, None, "é"]}},
        timeout=600,
        start_time=start,
        status=status,
        end_time="2026-12-05T00:00:00.000Z",
        message="archived by a test",
        attempts=[
            Attempt(attempt=1, node="spot-1", started_at=start, ended_at=start, outcome=Outcome.PREEMPTED),
            Attempt(attempt=2, node="spot-2", started_at=start, ended_at=start, exit_code=0, outcome=Outcome.SUCCEEDED),
        ],
    )


def read_log(archive: Archive, task: str, attempt: int, stream: str) -> bytes:
    chunks = archive.logs(API, task, attempt, stream)
    assert chunks is not None
    return b"".join(chunks)


def test_put_then_get_round_trips_the_record(archive: Archive) -> None:
    job = finished(1)
    archive.put(API, job, {(1, "stdout"): b"one\n", (2, "stdout"): b"two\n", (2, "stderr"): b""})
    assert archive.get(API, job.job_id) == job
    assert archive.has(API, job.job_id)
    assert read_log(archive, job.job_id, 1, "stdout") == b"one\n"
    assert read_log(archive, job.job_id, 2, "stdout") == b"two\n"
    assert read_log(archive, job.job_id, 2, "stderr") == b""


def test_logs_stream_back_byte_exact_in_chunks(archive: Archive) -> None:
    big = random.Random(7).randbytes(9 * 1024 * 1024 + 13)  # past boto3's 8 MiB multipart threshold
    job = finished(2)
    archive.put(API, job, {(1, "stdout"): io.BytesIO(big), (2, "stderr"): big[:1000]})
    chunks = archive.logs(API, job.job_id, 1, "stdout")
    assert chunks is not None
    sizes = []
    received = bytearray()
    for chunk in chunks:
        sizes.append(len(chunk))
        received += chunk
    assert bytes(received) == big
    assert len(sizes) > 1
    assert max(sizes) <= CHUNK_SIZE
    assert read_log(archive, job.job_id, 2, "stderr") == big[:1000]


def test_list_is_newest_first_with_cursor_paging_and_status_filter(archive: Archive) -> None:
    statuses = [TaskStatus.SUCCEEDED, TaskStatus.WORKER_ERROR, TaskStatus.STOPPED]
    jobs = [finished(n, statuses[n % 3], second=100 + 7 * n) for n in range(1, 11)]
    for job in random.Random(3).sample(jobs, len(jobs)):
        archive.put(API, job, {})
    archive.put("other-api", finished(99, second=1_000, api="other-api"), {})
    newest_first = [job.job_id for job in reversed(jobs)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = archive.list(API, None, 3, cursor)
        pages += 1
        seen += [job.job_id for job in page]
        assert len(page) == 3 or cursor is None
        if cursor is None:
            break
    assert seen == newest_first
    assert pages == 4

    failed = [job for job in reversed(jobs) if job.status == TaskStatus.WORKER_ERROR]
    page, cursor = archive.list(API, TaskStatus.WORKER_ERROR, 2, None)
    assert page == failed[:2]
    rest, end = archive.list(API, TaskStatus.WORKER_ERROR, 2, cursor)
    assert rest == failed[2:]
    assert end is None

    everything, end = archive.list(API, None, 10, None)
    assert [job.job_id for job in everything] == newest_first
    assert end is None  # a page that ends exactly at the last task has no next page
    assert archive.list(API, TaskStatus.RUNNING, 5, None) == ([], None)
    assert archive.list("never-deployed", None, 5, None) == ([], None)


def test_same_second_tasks_keep_a_stable_order(archive: Archive) -> None:
    jobs = [finished(n, second=42) for n in (5, 3, 9)]
    for job in jobs:
        archive.put(API, job, {})
    first, cursor = archive.list(API, None, 2, None)
    second, end = archive.list(API, None, 2, cursor)
    assert [job.job_id for job in first + second] == sorted(job.job_id for job in jobs)
    assert end is None


def test_double_put_is_idempotent(archive: Archive) -> None:
    job = finished(3)
    logs = {(1, "stdout"): b"hello\n"}
    archive.put(API, job, logs)
    archive.put(API, job, {(1, "stdout"): io.BytesIO(b"hello\n")})
    assert archive.get(API, job.job_id) == job
    assert archive.list(API, None, 10, None) == ([job], None)
    assert archive.list(API, job.status, 10, None) == ([job], None)
    assert read_log(archive, job.job_id, 1, "stdout") == b"hello\n"


def test_concurrent_puts_of_the_same_task(archive: Archive) -> None:
    jobs = [finished(n) for n in range(20, 24)]
    log = os.urandom(300 * 1024)
    errors: list[BaseException] = []

    def archive_all(barrier: threading.Barrier) -> None:
        try:
            for job in jobs:
                barrier.wait(timeout=10)
                archive.put(API, job, {(1, "stdout"): io.BytesIO(log), (2, "stderr"): b"err"})
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=archive_all, args=(barrier,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    for job in jobs:
        assert archive.get(API, job.job_id) == job
        assert read_log(archive, job.job_id, 1, "stdout") == log
        assert read_log(archive, job.job_id, 2, "stderr") == b"err"
    listed, end = archive.list(API, None, 10, None)
    assert listed == list(reversed(jobs))
    assert end is None


def test_missing_tasks_and_logs_are_none(archive: Archive) -> None:
    job = finished(4)
    archive.put(API, job, {(1, "stdout"): b"x"})
    assert archive.get(API, task_id(5)) is None
    assert not archive.has(API, task_id(5))
    assert archive.get("other-api", job.job_id) is None
    assert archive.logs(API, task_id(5), 1, "stdout") is None
    assert archive.logs(API, job.job_id, 1, "stderr") is None
    assert archive.logs(API, job.job_id, 2, "stdout") is None


@pytest.mark.parametrize(
    ("api", "task"),
    [
        ("..", task_id(1)),
        ("../other", task_id(1)),
        ("a/b", task_id(1)),
        ("UPPER", task_id(1)),
        ("", task_id(1)),
        (API, "../../../etc/passwd"),
        (API, "0000000000000001/../x"),
        (API, "ABCDEF0123456789"),
        (API, task_id(1) + "0"),
        (API, ""),
        (API + "\n", task_id(1)),
        (API, task_id(1) + "\n"),
    ],
)
def test_path_tricks_are_refused(archive: Archive, api: str, task: str) -> None:
    good = finished(1)
    archive.put(API, good, {(1, "stdout"): b"secret"})
    assert archive.get(api, task) is None
    assert not archive.has(api, task)
    assert archive.logs(api, task, 1, "stdout") is None
    if api != API:
        assert archive.list(api, None, 5, None) == ([], None)
    bad = good.model_copy(update={"job_id": task, "api_name": api})
    with pytest.raises(ValueError, match=r"not a DNS label|not 16 lowercase hex digits"):
        archive.put(api, bad, {})


@pytest.mark.parametrize(
    "log_key",
    [(0, "stdout"), (-1, "stdout"), (1, "../stdout"), (1, "stdin"), (True, "stdout"), ("1", "stdout")],
)
def test_bad_log_keys_are_refused(archive: Archive, log_key: tuple) -> None:
    job = finished(6)
    with pytest.raises(ValueError, match="log"):
        archive.put(API, job, {log_key: b"x"})
    assert not archive.has(API, job.job_id)
    assert archive.logs(API, job.job_id, *log_key) is None


def test_bad_cursors_are_unprocessable(archive: Archive) -> None:
    for cursor in ("../x", "12", "9" * 17 + "-" + "../" * 6):
        with pytest.raises(Unprocessable):
            archive.list(API, None, 5, cursor)


def test_only_finished_tasks_of_the_named_api_are_archived(archive: Archive) -> None:
    with pytest.raises(ValueError, match="only finished tasks"):
        archive.put(API, finished(7, TaskStatus.RUNNING), {})
    with pytest.raises(ValueError, match="belongs to API"):
        archive.put("other-api", finished(7), {})
    with pytest.raises(ValueError, match="RFC 3339"):
        archive.put(API, finished(7).model_copy(update={"start_time": "yesterday"}), {})
    assert not archive.has(API, task_id(7))


def test_nothing_escapes_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    archive = DirectoryArchive(root)
    (tmp_path / "0000000000000001").write_text("outside")
    archive.put(API, finished(1), {(1, "stdout"): b"x"})
    for bad in ("..", "../..", "/etc"):
        with pytest.raises(ValueError):
            archive.put(bad, finished(1, api=bad), {})
    assert archive.get("..", task_id(1)) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000000000000001", "archive"]
    assert sorted(p.name for p in root.iterdir()) == [API]
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_s3_keys_stay_under_the_prefix(moto_server: MotoServer, s3_bucket: str) -> None:
    client = moto_server.client("s3")
    archive = S3Archive(s3_bucket, "/team/archive/", client)
    job = finished(1, TaskStatus.WORKER_OOM)
    archive.put(API, job, {(1, "stderr"): b"killed"})
    keys = sorted(obj["Key"] for obj in client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    sort = keys[-1].rsplit("/", 1)[1].removesuffix(".json")
    assert keys == [
        f"team/archive/{API}/ids/{job.job_id}",
        f"team/archive/{API}/logs/{job.job_id}/1/stderr",
        f"team/archive/{API}/status/worker_oom/{sort}",
        f"team/archive/{API}/tasks/{sort}.json",
    ]
    assert sort.endswith(f"-{job.job_id}")


def test_a_record_without_its_logs_is_never_visible(archive: Archive) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:
            raise ConnectionResetError("nomad went away mid-log")

    job = finished(8)
    with pytest.raises(ConnectionResetError, match="nomad went away"):  # the source's error, as it is
        archive.put(API, job, {(1, "stdout"): b"first", (2, "stdout"): io.BufferedReader(Broken())})
    assert not archive.has(API, job.job_id)
    assert archive.get(API, job.job_id) is None
    assert archive.list(API, None, 5, None) == ([], None)
    assert archive.list(API, job.status, 5, None) == ([], None)
    archive.put(API, job, {(1, "stdout"): b"first", (2, "stdout"): b"second"})
    assert archive.get(API, job.job_id) == job


def test_open_archive_reads_the_url(tmp_path: Path) -> None:
    directory = open_archive(str(tmp_path / "dir"))
    assert isinstance(directory, DirectoryArchive)
    assert directory.root == tmp_path / "dir"
    s3 = open_archive("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Archive)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert s3.client.meta.endpoint_url == "http://127.0.0.1:1"
    for bad in ("s3://", "s3:///prefix", "gs://bucket/x", ""):
        with pytest.raises(ValueError):
            open_archive(bad)


def test_open_archive_honours_the_endpoint_environment(
    moto_server: MotoServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    archive = open_archive(f"s3://{s3_bucket}/env")
    job = finished(9)
    archive.put(API, job, {(1, "stdout"): b"via env"})
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    explicit = open_archive(f"s3://{s3_bucket}/env", endpoint_url=moto_server.endpoint_url)
    assert explicit.get(API, job.job_id) == job
    assert read_log(explicit, job.job_id, 1, "stdout") == b"via env"


def test_s3_down_is_unavailable(moto_server: MotoServer) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    client = boto3.client(
        "s3",
        endpoint_url=down,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1),
    )
    archive = S3Archive("bucket", "p", client)
    calls = [
        lambda: archive.put(API, finished(1), {(1, "stdout"): b"x"}),
        lambda: archive.put(API, finished(1), {(1, "stdout"): io.BytesIO(b"x")}),
        lambda: archive.get(API, task_id(1)),
        lambda: archive.has(API, task_id(1)),
        lambda: archive.logs(API, task_id(1), 1, "stdout"),
        lambda: archive.list(API, None, 5, None),
    ]
    for call in calls:
        with pytest.raises(Unavailable, match=r"archive s3://bucket/p/.*: cannot .*(connect|Connect)"):
            call()


def test_s3_missing_bucket_is_unavailable(moto_server: MotoServer) -> None:
    archive = S3Archive("no-such-bucket-here", "", moto_server.client("s3"))
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        archive.put(API, finished(1), {})
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        archive.put(API, finished(1), {(1, "stdout"): io.BytesIO(b"streamed")})
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        archive.get(API, task_id(1))
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        archive.list(API, None, 5, None)


def test_a_log_stream_can_be_abandoned(archive: Archive) -> None:
    job = finished(1)
    archive.put(API, job, {(1, "stdout"): os.urandom(3 * CHUNK_SIZE)})
    chunks = archive.logs(API, job.job_id, 1, "stdout")
    assert chunks is not None
    assert len(next(chunks)) == CHUNK_SIZE
    chunks.close()  # a client that hangs up mid-stream releases the file or connection
    assert len(read_log(archive, job.job_id, 1, "stdout")) == 3 * CHUNK_SIZE


def test_unusable_directory_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("not a directory")
    archive = DirectoryArchive(root)
    with pytest.raises(Unavailable, match="archive directory"):
        archive.put(API, finished(1), {(1, "stdout"): b"x"})
    assert archive.get(API, task_id(1)) is None
    assert archive.list(API, None, 5, None) == ([], None)


def test_corrupt_record_is_unavailable(tmp_path: Path) -> None:
    archive = DirectoryArchive(tmp_path)
    job = finished(1)
    archive.put(API, job, {})
    (record,) = (tmp_path / API / "tasks").iterdir()
    record.write_text("{not json")
    with pytest.raises(Unavailable, match="corrupt"):
        archive.get(API, job.job_id)
