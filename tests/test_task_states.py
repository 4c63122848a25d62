"""The task state machine: what an attempt's outcome means for its task."""

from __future__ import annotations

import itertools

import pytest

from gateway.task_states import (
    FINAL,
    IN_PROGRESS,
    REPLACED_OUTCOMES,
    RETRIED_OUTCOMES,
    TRANSITIONS,
    Next,
    Outcome,
    TaskStatus,
    after_attempt,
    can_transition,
    ended_before_start,
)


def test_status_values_are_cortex_status_codes() -> None:
    assert {s.value for s in TaskStatus} == {
        "pending",
        "running",
        "succeeded",
        "worker_error",
        "worker_oom",
        "timed_out",
        "stopped",
        "unexpected_error",
    }


def test_outcome_values() -> None:
    assert {o.value for o in Outcome} == {
        "succeeded",
        "failed",
        "oom",
        "preempted",
        "lost",
        "stopped",
        "timed_out",
    }


def test_statuses_are_strings() -> None:
    assert TaskStatus("worker_oom") is TaskStatus.WORKER_OOM
    assert TaskStatus.RUNNING == "running"
    assert Outcome.LOST == "lost"


def test_final_and_in_progress_partition_the_statuses() -> None:
    assert IN_PROGRESS == {TaskStatus.PENDING, TaskStatus.RUNNING}
    assert FINAL | IN_PROGRESS == set(TaskStatus)
    assert not FINAL & IN_PROGRESS
    for status in TaskStatus:
        assert status.final == (status in FINAL)


def test_outcome_classes() -> None:
    assert REPLACED_OUTCOMES == {Outcome.PREEMPTED, Outcome.LOST}
    assert RETRIED_OUTCOMES == {Outcome.FAILED, Outcome.OOM}


# --- after_attempt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Outcome.PREEMPTED, Outcome.LOST])
@pytest.mark.parametrize(("used", "allowed"), [(0, 0), (0, 3), (3, 3), (5, 2)])
def test_preempted_and_lost_are_replaced_without_using_a_retry(outcome: Outcome, used: int, allowed: int) -> None:
    assert after_attempt(outcome, used, allowed) == Next(TaskStatus.PENDING, another_attempt=True)
    assert after_attempt(outcome, used, allowed).counts_as_retry is False


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.OOM])
@pytest.mark.parametrize(("used", "allowed"), [(0, 1), (0, 3), (2, 3)])
def test_failed_and_oom_use_a_retry_while_any_are_left(outcome: Outcome, used: int, allowed: int) -> None:
    assert after_attempt(outcome, used, allowed) == Next(TaskStatus.PENDING, another_attempt=True, counts_as_retry=True)


@pytest.mark.parametrize(
    ("outcome", "status"), [(Outcome.FAILED, TaskStatus.WORKER_ERROR), (Outcome.OOM, TaskStatus.WORKER_OOM)]
)
@pytest.mark.parametrize(("used", "allowed"), [(0, 0), (1, 1), (3, 3), (4, 3)])
def test_failed_and_oom_end_the_task_once_retries_are_used_up(
    outcome: Outcome, status: TaskStatus, used: int, allowed: int
) -> None:
    assert after_attempt(outcome, used, allowed) == Next(status, another_attempt=False)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome.SUCCEEDED, TaskStatus.SUCCEEDED),
        (Outcome.STOPPED, TaskStatus.STOPPED),
        (Outcome.TIMED_OUT, TaskStatus.TIMED_OUT),
    ],
)
@pytest.mark.parametrize(("used", "allowed"), [(0, 0), (0, 5), (2, 5), (5, 5)])
def test_succeeded_stopped_and_timed_out_are_final_whatever_the_retries(
    outcome: Outcome, status: TaskStatus, used: int, allowed: int
) -> None:
    result = after_attempt(outcome, used, allowed)
    assert result == Next(status, another_attempt=False)
    assert result.status.final


def test_every_outcome_has_an_answer() -> None:
    for outcome, used, allowed in itertools.product(Outcome, range(3), range(3)):
        result = after_attempt(outcome, used, allowed)
        assert result.another_attempt == (result.status == TaskStatus.PENDING)
        assert result.another_attempt or result.status.final
        assert not result.counts_as_retry or outcome in RETRIED_OUTCOMES
        assert result.status != TaskStatus.UNEXPECTED_ERROR  # the platform's failures are decided elsewhere


def _simulate(outcomes: list[Outcome], allowed: int) -> tuple[TaskStatus, int, int]:
    """Feed attempts through after_attempt as a backend does: (final status, attempts run, retries used)."""
    used = 0
    attempts = 0
    status = TaskStatus.PENDING
    for outcome in outcomes:
        attempts += 1
        result = after_attempt(outcome, used, allowed)
        used += result.counts_as_retry
        status = result.status
        if not result.another_attempt:
            break
    return status, attempts, used


def test_scenario_flaky_example_succeeds_on_the_third_attempt() -> None:
    assert _simulate([Outcome.FAILED, Outcome.FAILED, Outcome.SUCCEEDED], allowed=2) == (
        TaskStatus.SUCCEEDED,
        3,
        2,
    )


def test_scenario_one_retry_too_few() -> None:
    assert _simulate([Outcome.FAILED, Outcome.FAILED, Outcome.SUCCEEDED], allowed=1) == (
        TaskStatus.WORKER_ERROR,
        2,
        1,
    )


def test_scenario_preemptions_do_not_count() -> None:
    outcomes = [Outcome.PREEMPTED, Outcome.LOST, Outcome.PREEMPTED, Outcome.FAILED, Outcome.LOST, Outcome.OOM]
    assert _simulate(outcomes, allowed=1) == (TaskStatus.WORKER_OOM, 6, 1)
    assert _simulate([*outcomes, Outcome.SUCCEEDED], allowed=2) == (TaskStatus.SUCCEEDED, 7, 2)


def test_scenario_no_retries_by_default_as_in_cortex() -> None:
    assert _simulate([Outcome.FAILED, Outcome.SUCCEEDED], allowed=0) == (TaskStatus.WORKER_ERROR, 1, 0)
    assert _simulate([Outcome.OOM], allowed=0) == (TaskStatus.WORKER_OOM, 1, 0)


# --- transitions -----------------------------------------------------------------------------------------


def test_every_status_has_transitions() -> None:
    assert set(TRANSITIONS) == set(TaskStatus)


@pytest.mark.parametrize("target", sorted(FINAL))
@pytest.mark.parametrize("current", [TaskStatus.PENDING, TaskStatus.RUNNING])
def test_in_progress_can_end_in_any_final_status(current: TaskStatus, target: TaskStatus) -> None:
    assert can_transition(current, target)


def test_pending_and_running_alternate() -> None:
    assert can_transition(TaskStatus.PENDING, TaskStatus.RUNNING)
    assert can_transition(TaskStatus.RUNNING, TaskStatus.PENDING)  # an attempt ended and another is due


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING])
def test_no_self_transitions_in_progress(status: TaskStatus) -> None:
    assert not can_transition(status, status)


@pytest.mark.parametrize("target", list(TaskStatus))
@pytest.mark.parametrize("current", sorted(FINAL))
def test_final_statuses_never_change(current: TaskStatus, target: TaskStatus) -> None:
    assert not can_transition(current, target)


def test_after_attempt_only_proposes_allowed_transitions() -> None:
    for outcome in Outcome:
        result = after_attempt(outcome, 0, 1)
        assert can_transition(TaskStatus.RUNNING, result.status)


def test_platform_errors_end_the_task_without_retry() -> None:
    decision = after_attempt(Outcome.FAILED, 0, 5, platform_error=True)
    assert decision == Next(TaskStatus.UNEXPECTED_ERROR, another_attempt=False)


def test_platform_error_flag_does_not_change_other_outcomes() -> None:
    assert after_attempt(Outcome.SUCCEEDED, 0, 0, platform_error=True).status is TaskStatus.SUCCEEDED
    assert after_attempt(Outcome.PREEMPTED, 0, 0, platform_error=True).status is TaskStatus.PENDING


def test_a_pending_task_ends_stopped_or_timed_out_and_nothing_else() -> None:
    assert ended_before_start(Outcome.STOPPED) is TaskStatus.STOPPED
    assert ended_before_start(Outcome.TIMED_OUT) is TaskStatus.TIMED_OUT
    with pytest.raises(ValueError):
        ended_before_start(Outcome.SUCCEEDED)
