"""Fixtures of the archive suite: the same archive behaviour on a directory and on S3 (a real moto server)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gateway.backends.nomad.archive import Archive, DirectoryArchive, S3Archive
from tests.moto_server import MotoServer


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"archive-{uuid.uuid4().hex[:12]}"
    moto_server.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["directory", "s3"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Archive:
    """An empty archive: a directory, or a prefix of a bucket on the moto server."""
    if request.param == "directory":
        return DirectoryArchive(tmp_path / "archive")
    server: MotoServer = request.getfixturevalue("moto_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    return S3Archive(bucket, "taskapi/archive", server.client("s3"))
