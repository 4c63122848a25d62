"""Delays between attempts, following Nomad's reschedule delay functions."""

from __future__ import annotations

from gateway.spec import Retry


def retry_delay(retry: Retry, retry_number: int) -> float:
    """Seconds to wait before retry number ``retry_number`` (1 for the first retry).

    constant: delay every time; exponential: delay, 2x, 4x, ...; fibonacci: delay, delay, 2x, 3x, 5x, ...
    Each is capped at ``max_delay``.
    """
    base = retry.delay_seconds
    if retry.delay_function == "exponential":
        delay = base * 2 ** (retry_number - 1)
    elif retry.delay_function == "fibonacci":
        previous, current = 0, 1
        for _ in range(retry_number - 1):
            previous, current = current, previous + current
        delay = base * current
    else:
        delay = base
    return min(delay, retry.max_delay_seconds)
