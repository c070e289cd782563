"""Status and conclusion words, as GitHub uses them, for runs, jobs and steps."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a run, job or step is in its life."""

    QUEUED = "queued"
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class Conclusion(StrEnum):
    """How a completed run, job or step ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"


def combine(conclusions: list[Conclusion]) -> Conclusion:
    """The conclusion of a whole made of parts (a run of jobs, a job of matrix cells).

    Failure wins over cancelled (cells cancelled by fail-fast after one failed make a
    failure, as on GitHub), cancelled over success; a whole whose parts were all skipped is
    a success. A run the user cancelled is cancelled whatever its parts: callers say so.
    """
    if any(c in (Conclusion.FAILURE, Conclusion.TIMED_OUT) for c in conclusions):
        return Conclusion.FAILURE
    if any(c is Conclusion.CANCELLED for c in conclusions):
        return Conclusion.CANCELLED
    return Conclusion.SUCCESS
