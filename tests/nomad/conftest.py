"""Fixtures for the Nomad backend: a Nomad double on a loopback port and a real gateway (gunicorn) pointed at it."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.nomad_double import NomadDouble

IMAGE = "docker.io/library/busybox:1.36"
# The cluster's pools plus two that single tests own (their nodes hold nothing of other tests).
TEST_POOLS = Path(__file__).with_name("pools.json")
_names = itertools.count(1)


def container_spec(name: str, command: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A Task API spec with one docker container."""
    container = {"name": "main", "image": IMAGE, "command": command or ["sh", "-c", "echo hello"]}
    return {"name": name, "kind": "TaskAPI", "pod": {"containers": [container]}, **extra}


def unique(prefix: str) -> str:
    """An API name no other test of the session uses."""
    return f"{prefix}-{next(_names)}"


class NomadGateway(Gateway):
    """A gateway on the Nomad backend, with helpers that find a task's child job in the double."""

    def __init__(self, state_dir: Path, nomad: NomadDouble, **settings: Any) -> None:
        super().__init__(state_dir, backend="nomad", nomad_addr=nomad.address, **settings)
        self.env["TASKAPI_POOLS_FILE"] = str(TEST_POOLS)
        self.nomad = nomad
        for name in [n for n in self.env if n.startswith("NOMAD_")]:
            del self.env[name]  # a real cluster's NOMAD_TOKEN, NOMAD_REGION... must not reach the double

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Close the keep-alive connection first, so that gunicorn need not wait it out."""
        self.http.close()
        super().stop(sig)

    def child(self, api: str, task_id: str) -> str:
        """The child job ID of a task."""
        matches = [c for c in self.nomad.children(f"taskapi-{api}") if f"/dispatch-{task_id}-" in c]
        assert len(matches) == 1, matches
        return matches[0]

    def place(self, api: str, task_id: str) -> str | None:
        """Run the double's scheduler for the task's child job."""
        return self.nomad.place(self.child(api, task_id))

    def problem(self, response: Any, status: int) -> dict[str, Any]:
        """Assert an RFC 9457 problem with ``status``; return its body."""
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json"), response.headers
        body = dict(response.json())
        assert body["status"] == status
        return body


@pytest.fixture(scope="module")
def nomad() -> Iterator[NomadDouble]:
    """One Nomad double per test module, with one ordinary node."""
    with NomadDouble() as double:
        double.add_node("cpu-1", pool="cpu-spot", node_class="cpu-spot")
        yield double


@pytest.fixture(scope="module")
def gw(nomad: NomadDouble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadGateway]:
    """A gateway (2 gunicorn workers) on the Nomad backend, shared by a module."""
    server = NomadGateway(tmp_path_factory.mktemp("nomad-gw"), nomad)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_nomad_gateway(tmp_path: Path) -> Iterator[Callable[..., NomadGateway]]:
    """Gateways of a test's own (e.g. one worker, or a Nomad that goes away); all stopped at the end."""
    started: list[NomadGateway] = []

    def make(nomad: NomadDouble, **settings: Any) -> NomadGateway:
        server = NomadGateway(tmp_path / f"gw{len(started)}", nomad, **settings)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
