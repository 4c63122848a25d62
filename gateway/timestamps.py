"""How the gateway writes times: RFC 3339, UTC, millisecond precision, a trailing 'Z'."""

from __future__ import annotations

from datetime import datetime, timezone


def rfc3339(seconds: float | None) -> str | None:
    """An epoch time (seconds) as RFC 3339 UTC with milliseconds; None stays None."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
