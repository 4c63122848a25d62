"""A real ``moto_server`` process on a free loopback port, shared by the whole test session.

Use it from a conftest (or a test module) by importing the fixture::

    from tests.moto_server import moto_server  # noqa: F401

then ask for ``moto_server`` in a test: it is a :class:`MotoServer` with the ``endpoint_url``, an ``env`` of
fake credentials (plus ``AWS_ENDPOINT_URL``, for subprocesses and ``monkeypatch``) and a ``client()`` helper.
The server's state is shared for the session: give each test its own bucket. Without ``moto_server``
installed the tests that need it are skipped, except in CI (``CI=true``) where that is a failure.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import free_port, require_tool, wait_for

REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    """A running moto server: where it listens and the environment that points AWS clients at it."""

    endpoint_url: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` on this server, with the fake credentials."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            **kwargs,
        )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """Start ``moto_server`` on 127.0.0.1 for the session; stop it at the end."""
    binary = require_tool("moto_server")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        wait_for(
            lambda: process.poll() is not None or _answers(f"{endpoint}/moto-api/"),
            timeout=30,
            what=f"moto_server on port {port}",
        )
        if process.returncode is not None:
            pytest.fail(f"moto_server exited with {process.returncode}: {log_path.read_text(errors='replace')}")
        yield MotoServer(
            endpoint_url=endpoint,
            env={
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_EC2_METADATA_DISABLED": "true",
            },
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
