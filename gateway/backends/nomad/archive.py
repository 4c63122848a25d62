"""The archive of finished tasks: their records and logs, kept after Nomad has forgotten them (DESIGN 5.2).

The reconciler archives every finished task before Nomad's garbage collector removes it; ``GET``, list and
logs then answer from here. ``TASKAPI_ARCHIVE`` names the archive: ``s3://bucket/prefix`` (boto3, which honours
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``) or a directory.

Layout, the same under a directory and under an S3 prefix (``<sortkey>`` is ``<inverted-time>-<task_id>``,
where ``<inverted-time>`` is ``99999999999999999`` minus the submission time in microseconds since the epoch,
as 17 digits, so that ascending key order, the only order S3's ListObjectsV2 knows, is newest first)::

    <api>/logs/<task_id>/<attempt>/<stream>   an attempt's stdout or stderr, raw bytes
    <api>/status/<status>/<sortkey>           empty marker: lists one status newest first
    <api>/ids/<task_id>                       the task's <sortkey>: finds the record from the task ID
    <api>/tasks/<sortkey>.json                the JobStatus (record and attempts) as JSON

A put writes in that order, so a present record means the task is completely archived; readers ignore
markers and index entries whose record is not there yet. Every object is written whole (a temporary file
renamed into place on disk, a single PutObject or managed upload on S3), so two reconcilers archiving the
same task at once write identical objects and the last one wins harmlessly. API names must be DNS labels
and task IDs 16 lowercase hex digits: nothing else ever reaches a path or a key.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import boto3
import botocore.exceptions
from botocore.config import Config
from pydantic import ValidationError

from gateway.backends.base import Unavailable, Unprocessable
from gateway.models import JobStatus
from gateway.spec import DNS_LABEL
from gateway.task_states import TaskStatus

TASK_ID = re.compile(r"[0-9a-f]{16}")
SORT_KEY = re.compile(r"[0-9]{17}-[0-9a-f]{16}")
STREAMS = ("stdout", "stderr")
CHUNK_SIZE = 64 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TIME_CEILING = 10**17 - 1
_S3_FETCH_THREADS = 16


class Readable(Protocol):
    """A binary file-like object a log can be copied from."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""


LogSource = bytes | Readable
"""A log handed to ``put``: its bytes, or a binary file-like object read once to its end."""


class Archive(Protocol):
    """Where finished tasks live once Nomad has forgotten them."""

    def put(self, api: str, job: JobStatus, logs: dict[tuple[int, str], LogSource]) -> None:
        """Archive a finished task: its logs per (attempt, stream), then its record. Idempotent."""

    def get(self, api: str, task_id: str) -> JobStatus | None:
        """The archived record of a task, or None if it is not (completely) archived."""

    def logs(self, api: str, task_id: str, attempt: int, stream: str) -> Iterator[bytes] | None:
        """An archived attempt's stdout or stderr in chunks, or None if it is not archived."""

    def list(
        self, api: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[JobStatus], str | None]:
        """A page of archived tasks, newest first, and the cursor of the next page (None at the end)."""

    def has(self, api: str, task_id: str) -> bool:
        """Whether a task is completely archived."""


def valid_api(api: str) -> bool:
    """Whether ``api`` is a DNS label, the only API names the archive stores."""
    return isinstance(api, str) and DNS_LABEL.fullmatch(api) is not None


def valid_task_id(task_id: str) -> bool:
    """Whether ``task_id`` is 16 lowercase hex digits, the only task IDs the archive stores."""
    return isinstance(task_id, str) and TASK_ID.fullmatch(task_id) is not None


def sort_key(job: JobStatus) -> str:
    """``<inverted submission time>-<task_id>``: ascending order of these keys is newest first."""
    text = job.start_time
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"task {job.job_id}: start_time {job.start_time!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    if not 0 <= micros <= _TIME_CEILING:
        raise ValueError(f"task {job.job_id}: start_time {job.start_time!r} is out of range")
    return f"{_TIME_CEILING - micros:017d}-{job.job_id}"


def _record_key(api: str, key: str) -> str:
    return f"{api}/tasks/{key}.json"


def _log_key(api: str, task_id: str, attempt: int, stream: str) -> str:
    return f"{api}/logs/{task_id}/{attempt}/{stream}"


def _check_log_key(attempt: object, stream: object) -> None:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"log attempt {attempt!r} is not a positive integer")
    if stream not in STREAMS:
        raise ValueError(f"log stream {stream!r} is not one of {', '.join(STREAMS)}")


class _SourceFailed(Exception):
    """Reading a log source failed: its error is the caller's, not the archive's."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _pieces(source: LogSource) -> Iterator[bytes]:
    """A log source's bytes in chunks of at most ``CHUNK_SIZE`` (bytes as they are)."""
    if isinstance(source, bytes):
        yield source
        return
    while True:
        try:
            chunk = source.read(CHUNK_SIZE)
        except Exception as error:
            raise _SourceFailed(error) from error
        if not chunk:
            return
        yield chunk


class _ObjectArchive(ABC):
    """The archive's logic over a store of whole objects by key; subclasses supply the store."""

    def put(self, api: str, job: JobStatus, logs: dict[tuple[int, str], LogSource]) -> None:
        """Archive a finished task: its logs, its status marker, its index entry, then its record.

        A task already archived is left as it is. Raises ValueError for an invalid API name, task ID,
        log key or start time, or a task still in progress; Unavailable if the storage fails.
        """
        if not valid_api(api):
            raise ValueError(f"API name {api!r} is not a DNS label")
        if job.api_name != api:
            raise ValueError(f"task {job.job_id!r} belongs to API {job.api_name!r}, not {api!r}")
        if not valid_task_id(job.job_id):
            raise ValueError(f"task ID {job.job_id!r} is not 16 lowercase hex digits")
        if not job.status.final:
            raise ValueError(f"task {job.job_id} is {job.status.value}: only finished tasks are archived")
        for attempt, stream in logs:
            _check_log_key(attempt, stream)
        key = sort_key(job)
        if self._exists(_record_key(api, key)):
            return
        for (attempt, stream), source in logs.items():
            self._write(_log_key(api, job.job_id, attempt, stream), source)
        self._write(f"{api}/status/{job.status.value}/{key}", b"")
        self._write(f"{api}/ids/{job.job_id}", key.encode())
        self._write(_record_key(api, key), job.model_dump_json().encode())

    def get(self, api: str, task_id: str) -> JobStatus | None:
        """The archived record; None if the task is not completely archived or the names are invalid."""
        key = self._sort_key_of(api, task_id)
        if key is None:
            return None
        return self._parse(key, self._read(_record_key(api, key)))

    def has(self, api: str, task_id: str) -> bool:
        """Whether the task's record is archived (which means its logs are too)."""
        key = self._sort_key_of(api, task_id)
        return key is not None and self._exists(_record_key(api, key))

    def logs(self, api: str, task_id: str, attempt: int, stream: str) -> Iterator[bytes] | None:
        """An archived log in chunks of at most ``CHUNK_SIZE`` bytes; None if absent or the names are invalid."""
        if not (valid_api(api) and valid_task_id(task_id)):
            return None
        try:
            _check_log_key(attempt, stream)
        except ValueError:
            return None
        return self._open(_log_key(api, task_id, attempt, stream))

    def _sort_key_of(self, api: str, task_id: str) -> str | None:
        if not (valid_api(api) and valid_task_id(task_id)):
            return None
        blob = self._read(f"{api}/ids/{task_id}")
        if blob is None:
            return None
        key = blob.decode("ascii", "replace")
        if not SORT_KEY.fullmatch(key) or not key.endswith(task_id):
            raise Unavailable(f"archive index entry of task {task_id} of API {api} is corrupt")
        return key

    def _parse(self, key: str, blob: bytes | None) -> JobStatus | None:
        if blob is None:
            return None
        try:
            return JobStatus.model_validate_json(blob)
        except ValidationError:
            raise Unavailable(f"archived record {key} is corrupt") from None

    def _read_many(self, keys: list[str]) -> list[bytes | None]:
        return [self._read(key) for key in keys]

    def list(
        self, api: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[JobStatus], str | None]:
        """A page of archived tasks newest first, optionally of one status, after ``cursor``.

        The cursor is the sort key of the last task of the previous page; an invalid one is Unprocessable.
        """
        if limit < 1:
            raise ValueError(f"limit {limit} is not positive")
        if cursor is not None and not SORT_KEY.fullmatch(cursor):
            raise Unprocessable(f"invalid cursor {cursor!r}: use the next_cursor of a previous page")
        if not valid_api(api):
            return [], None
        if status is None:
            prefix, suffix = f"{api}/tasks/", ".json"
        else:
            prefix, suffix = f"{api}/status/{status.value}/", ""
        start_after = None if cursor is None else prefix + cursor + suffix
        keys = (
            name[: len(name) - len(suffix)]
            for name in self._names(prefix, start_after, limit + 1)
            if name.endswith(suffix) and SORT_KEY.fullmatch(name[: len(name) - len(suffix)])
        )
        page: list[tuple[str, JobStatus]] = []
        while len(page) < limit:
            batch = list(islice(keys, limit - len(page)))
            if not batch:
                return [job for _, job in page], None
            blobs = self._read_many([_record_key(api, key) for key in batch])
            for key, blob in zip(batch, blobs, strict=True):
                job = self._parse(key, blob)
                # Skips a marker whose record is not written yet, or one a crashed put left for another status.
                if job is not None and (status is None or job.status == status):
                    page.append((key, job))
        more = next(keys, None) is not None
        return [job for _, job in page], page[-1][0] if more else None

    @abstractmethod
    def _write(self, key: str, source: LogSource) -> None:
        """Store ``source`` whole at ``key``, replacing any object there; readers never see part of it."""

    @abstractmethod
    def _read(self, key: str) -> bytes | None:
        """The object at ``key``, or None if there is none."""

    @abstractmethod
    def _exists(self, key: str) -> bool:
        """Whether an object is at ``key``."""

    @abstractmethod
    def _open(self, key: str) -> Iterator[bytes] | None:
        """The object at ``key`` in chunks of at most ``CHUNK_SIZE`` bytes, or None if there is none."""

    @abstractmethod
    def _names(self, prefix: str, start_after: str | None, page_size: int) -> Iterator[str]:
        """Names (keys without ``prefix``) directly under ``prefix``, ascending, after ``start_after``.

        ``page_size`` is how many the caller expects to need; more may be asked for lazily.
        """


class DirectoryArchive(_ObjectArchive):
    """The archive in a local (or mounted) directory; keys are paths below it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)

    def __repr__(self) -> str:
        return f"DirectoryArchive({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _fail(self, error: OSError) -> Unavailable:
        where = error.filename or self.root
        return Unavailable(f"archive directory {self.root} failed at {where}: {error.strerror or error}")

    def _write(self, key: str, source: LogSource) -> None:
        target = self._path(key)
        temp: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temp = Path(name)
            with os.fdopen(fd, "wb") as out:
                for piece in _pieces(source):
                    out.write(piece)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
            temp = None
        except _SourceFailed as failed:
            raise failed.error from None
        except OSError as error:
            raise self._fail(error) from None
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def _read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise self._fail(error) from None

    def _exists(self, key: str) -> bool:
        try:
            self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as error:
            raise self._fail(error) from None
        return True

    def _open(self, key: str) -> Iterator[bytes] | None:
        try:
            handle = self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise self._fail(error) from None
        return self._chunks(handle)

    def _chunks(self, handle: io.BufferedReader) -> Iterator[bytes]:
        with handle:
            try:
                while chunk := handle.read(CHUNK_SIZE):
                    yield chunk
            except OSError as error:
                raise self._fail(error) from None

    def _names(self, prefix: str, start_after: str | None, page_size: int) -> Iterator[str]:
        directory = self._path(prefix.rstrip("/"))
        after = "" if start_after is None else start_after[len(prefix) :]
        try:
            names = sorted(entry.name for entry in os.scandir(directory) if not entry.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return iter(())
        except OSError as error:
            raise self._fail(error) from None
        return (name for name in names if name > after)


class S3Archive(_ObjectArchive):
    """The archive in an S3 bucket under a key prefix."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client

    def __repr__(self) -> str:
        return f"S3Archive('s3://{self.bucket}/{self.prefix}')"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, error: Exception) -> Unavailable:
        if isinstance(error, botocore.exceptions.ClientError):
            info = error.response.get("Error", {})
            reason = f"{info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")
        else:
            reason = str(error)
        return Unavailable(f"archive s3://{self.bucket}/{self._key(key)}: cannot {action}: {reason}")

    @staticmethod
    def _missing(error: botocore.exceptions.ClientError) -> bool:
        code = error.response.get("Error", {}).get("Code")
        return code in ("NoSuchKey", "404", "NotFound")

    def _write(self, key: str, source: LogSource) -> None:
        try:
            if isinstance(source, bytes):
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=source)
            else:
                self.client.upload_fileobj(source, self.bucket, self._key(key))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._fail("write", key, error) from None

    def _get(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except botocore.exceptions.ClientError as error:
            if self._missing(error):
                return None
            raise self._fail("read", key, error) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._fail("read", key, error) from None

    def _read(self, key: str) -> bytes | None:
        body = self._get(key)
        if body is None:
            return None
        try:
            with body:
                return bytes(body.read())
        except (botocore.exceptions.BotoCoreError, OSError) as error:
            raise self._fail("read", key, error) from None

    def _read_many(self, keys: list[str]) -> list[bytes | None]:
        if len(keys) < 2:
            return [self._read(key) for key in keys]
        with ThreadPoolExecutor(max_workers=min(_S3_FETCH_THREADS, len(keys))) as pool:
            return list(pool.map(self._read, keys))

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as error:
            if self._missing(error):
                return False
            raise self._fail("look up", key, error) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._fail("look up", key, error) from None
        return True

    def _open(self, key: str) -> Iterator[bytes] | None:
        body = self._get(key)
        return None if body is None else self._chunks(key, body)

    def _chunks(self, key: str, body: Any) -> Iterator[bytes]:
        with body:
            try:
                yield from body.iter_chunks(CHUNK_SIZE)
            except (botocore.exceptions.BotoCoreError, OSError) as error:
                raise self._fail("read", key, error) from None

    def _names(self, prefix: str, start_after: str | None, page_size: int) -> Iterator[str]:
        full_prefix = self._key(prefix)
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix, "MaxKeys": min(page_size, 1000)}
        if start_after is not None:
            request["StartAfter"] = self._key(start_after)
        while True:
            try:
                answer = self.client.list_objects_v2(**request)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
                raise self._fail("list", prefix, error) from None
            for item in answer.get("Contents", []):
                yield item["Key"][len(full_prefix) :]
            if not answer.get("IsTruncated"):
                return
            request.pop("StartAfter", None)
            request["ContinuationToken"] = answer["NextContinuationToken"]
            request["MaxKeys"] = 1000


def open_archive(url: str, endpoint_url: str | None = None) -> Archive:
    """The archive ``url`` names: ``s3://bucket[/prefix]`` or a directory path.

    ``endpoint_url`` points S3 elsewhere (MinIO, moto); without it boto3 reads ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL``, then AWS itself. Credentials and region come from boto3's usual chain.
    """
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"archive URL {url!r} names no bucket: use s3://bucket/prefix")
        config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 3})
        try:
            client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        except (botocore.exceptions.BotoCoreError, ValueError) as error:
            raise Unavailable(f"archive {url}: cannot set up the S3 client: {error}") from None
        return S3Archive(bucket, prefix, client)
    if "://" in url:
        raise ValueError(f"archive URL {url!r}: use s3://bucket/prefix or a directory path")
    if not url:
        raise ValueError("archive URL is empty: use s3://bucket/prefix or a directory path")
    return DirectoryArchive(url)
