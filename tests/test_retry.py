"""Delays between attempts (Nomad's reschedule delay functions), capped by max_delay."""

from __future__ import annotations

import pytest

from gateway.retry import retry_delay
from gateway.spec import Retry


def _delays(retry: Retry, count: int) -> list[float]:
    return [retry_delay(retry, n) for n in range(1, count + 1)]


def test_defaults() -> None:
    retry = Retry()
    assert retry.attempts == 0
    assert _delays(retry, 3) == [5, 5, 5]


def test_constant() -> None:
    assert _delays(Retry(attempts=5, delay="10s"), 5) == [10, 10, 10, 10, 10]


def test_exponential() -> None:
    assert _delays(Retry(delay="1s", delay_function="exponential"), 6) == [1, 2, 4, 8, 16, 32]


def test_fibonacci() -> None:
    assert _delays(Retry(delay="2s", delay_function="fibonacci"), 7) == [2, 2, 4, 6, 10, 16, 26]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("constant", [10, 10, 10, 10, 10]),
        ("exponential", [10, 20, 30, 30, 30]),
        ("fibonacci", [10, 10, 20, 30, 30]),
    ],
)
def test_max_delay_caps_every_delay(function: str, expected: list[float]) -> None:
    retry = Retry(delay="10s", delay_function=function, max_delay="30s")
    assert _delays(retry, 5) == expected


def test_constant_longer_than_max_delay_is_capped() -> None:
    assert retry_delay(Retry(delay="2m", max_delay="1m"), 1) == 60


def test_many_retries_stay_capped() -> None:
    retry = Retry(delay="1s", delay_function="exponential", max_delay="1h")
    assert retry_delay(retry, 100) == 3600
    retry = Retry(delay="1s", delay_function="fibonacci", max_delay="1h")
    assert retry_delay(retry, 100) == 3600


def test_durations_in_any_form() -> None:
    assert retry_delay(Retry(delay=1.5, delay_function="exponential", max_delay="1m30s"), 3) == 6
    assert retry_delay(Retry(delay="500ms"), 1) == 0.5
    assert retry_delay(Retry(delay=0), 4) == 0
