"""The CLI's saved gateway (URL and key), written by ``taskapi cluster up`` and read by the SDK's defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def profile_path() -> Path:
    """``$TASKAPI_CONFIG``, else ``$XDG_CONFIG_HOME/taskapi/config.json`` (``~/.config/...``)."""
    configured = os.environ.get("TASKAPI_CONFIG")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "taskapi" / "config.json"


def load_profile() -> dict[str, Any]:
    """The saved gateway, or an empty dict when there is none or it cannot be read."""
    try:
        document = json.loads(profile_path().read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def save_profile(url: str, api_key: str | None) -> Path:
    """Save the gateway for later ``taskapi`` commands; readable by the owner only (it may hold a key)."""
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": url, "api_key": api_key}, handle)
    temporary.replace(path)
    return path


def forget_profile(url: str) -> bool:
    """Remove the saved gateway if it is ``url``; whether it was removed."""
    if load_profile().get("url") != url:
        return False
    profile_path().unlink(missing_ok=True)
    return True
