"""The life of a run, a job and a step: the one table of allowed status changes.

Every state change goes through `check_transition`; stores call it before they persist a
change, so no code path can move a run from `completed` back to `in_progress` or finish a
job twice.
"""

from __future__ import annotations

from shipline.domain.errors import ShiplineError
from shipline.domain.status import Conclusion, Status

# status -> the statuses it may move to. `completed` is final: a re-run is a new attempt.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.WAITING, Status.IN_PROGRESS, Status.COMPLETED}),
    Status.WAITING: frozenset({Status.QUEUED, Status.IN_PROGRESS, Status.COMPLETED}),
    Status.IN_PROGRESS: frozenset({Status.QUEUED, Status.COMPLETED}),
    Status.COMPLETED: frozenset(),
}


class InvalidTransition(ShiplineError):
    """A status change the table does not allow (a bug or a race lost: callers decide)."""


def check_transition(
    what: str, current: Status, target: Status, conclusion: Conclusion | None = None
) -> None:
    """Raise InvalidTransition unless `current -> target` is allowed.

    `completed` needs a conclusion; no other status may carry one. `in_progress -> queued`
    is allowed for a job whose runner was lost and which is retried by policy.
    """
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"{what}: cannot go from {current} to {target}")
    if (target is Status.COMPLETED) != (conclusion is not None):
        raise InvalidTransition(
            f"{what}: a conclusion goes with completed, and only with it "
            f"(got {target} with {conclusion})"
        )
