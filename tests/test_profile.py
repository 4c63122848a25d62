"""The saved gateway: written by `taskapi cluster up`, used by the SDK only for the gateway it names."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.client import DEFAULT_URL, TaskAPIClient
from gateway.profile import forget_profile, load_profile, save_profile


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "taskapi" / "config.json"
    monkeypatch.setenv("TASKAPI_CONFIG", str(path))
    monkeypatch.delenv("TASKAPI_URL", raising=False)
    monkeypatch.delenv("TASKAPI_API_KEY", raising=False)
    return path


def test_saved_gateway_and_key_are_the_defaults(isolated: Path) -> None:
    save_profile("https://tasks.example.com", "k-123")
    assert stat.S_IMODE(isolated.stat().st_mode) == 0o600
    client = TaskAPIClient()
    assert client.url == "https://tasks.example.com"
    assert client.session.headers["Authorization"] == "Bearer k-123"


def test_saved_key_never_goes_to_another_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    save_profile("https://tasks.example.com", "k-123")
    monkeypatch.setenv("TASKAPI_URL", "http://127.0.0.1:9999")
    assert "Authorization" not in TaskAPIClient().session.headers
    assert "Authorization" not in TaskAPIClient("http://elsewhere:8080").session.headers


def test_no_profile_means_the_local_gateway() -> None:
    assert load_profile() == {}
    assert TaskAPIClient().url == DEFAULT_URL


def test_unreadable_profile_is_ignored(isolated: Path) -> None:
    isolated.parent.mkdir(parents=True)
    isolated.write_text("{not json")
    assert TaskAPIClient().url == DEFAULT_URL


def test_forget_only_the_named_gateway() -> None:
    save_profile("https://a.example.com", None)
    assert not forget_profile("https://b.example.com")
    assert forget_profile("https://a.example.com")
    assert load_profile() == {}
