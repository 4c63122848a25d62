"""The task state machine: statuses, attempt outcomes, and the one set of rules that moves between them.

Every backend asks this module what an attempt's outcome means for its task; nothing else decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TaskStatus(str, Enum):
    """Status of a task, as reported over HTTP (Cortex's status codes, unprefixed)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    WORKER_ERROR = "worker_error"
    WORKER_OOM = "worker_oom"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"
    UNEXPECTED_ERROR = "unexpected_error"

    @property
    def final(self) -> bool:
        """True once the task has ended and can change no more."""
        return self not in IN_PROGRESS


class Outcome(str, Enum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OOM = "oom"
    PREEMPTED = "preempted"
    LOST = "lost"
    STOPPED = "stopped"
    TIMED_OUT = "timed_out"


IN_PROGRESS = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING})
FINAL = frozenset(set(TaskStatus) - IN_PROGRESS)

# Preemption and lost nodes are the platform's fault: the attempt is replaced without using up a retry.
REPLACED_OUTCOMES = frozenset({Outcome.PREEMPTED, Outcome.LOST})
RETRIED_OUTCOMES = frozenset({Outcome.FAILED, Outcome.OOM})

_FINAL_STATUS = {
    Outcome.SUCCEEDED: TaskStatus.SUCCEEDED,
    Outcome.FAILED: TaskStatus.WORKER_ERROR,
    Outcome.OOM: TaskStatus.WORKER_OOM,
    Outcome.STOPPED: TaskStatus.STOPPED,
    Outcome.TIMED_OUT: TaskStatus.TIMED_OUT,
}

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, *FINAL}),
    TaskStatus.RUNNING: frozenset({TaskStatus.PENDING, *FINAL}),
    **{status: frozenset() for status in FINAL},
}


def can_transition(current: TaskStatus, target: TaskStatus) -> bool:
    """Whether a task in ``current`` may move to ``target``."""
    return target in TRANSITIONS[current]


@dataclass(frozen=True)
class Next:
    """What follows an attempt: the task's new status, and whether another attempt is due."""

    status: TaskStatus
    another_attempt: bool
    counts_as_retry: bool = False


def ended_before_start(reason: Outcome) -> TaskStatus:
    """The final status of a task stopped (``Outcome.STOPPED``) or timed out while still pending."""
    if reason not in (Outcome.STOPPED, Outcome.TIMED_OUT):
        raise ValueError(f"a pending task can only be stopped or time out, not end {reason.value}")
    return _FINAL_STATUS[reason]


def after_attempt(outcome: Outcome, retries_used: int, retries_allowed: int, platform_error: bool = False) -> Next:
    """Decide the task's fate once an attempt ended with ``outcome``.

    ``retries_used`` counts the earlier attempts that failed or ran out of memory. ``platform_error`` marks a
    failed attempt that never ran the task because the platform could not start it (an image that cannot be
    pulled): retrying cannot help, so the task ends ``unexpected_error``.
    """
    if platform_error and outcome is Outcome.FAILED:
        return Next(TaskStatus.UNEXPECTED_ERROR, another_attempt=False)
    if outcome in REPLACED_OUTCOMES:
        return Next(TaskStatus.PENDING, another_attempt=True)
    if outcome in RETRIED_OUTCOMES and retries_used < retries_allowed:
        return Next(TaskStatus.PENDING, another_attempt=True, counts_as_retry=True)
    return Next(_FINAL_STATUS[outcome], another_attempt=False)
