"""Remote runners as the server stores them: the runner itself and its job assignments.

A `RunnerRecord` is a registered `shipline runner` process (or a fleet of them sharing one
credential): its labels, version, when it was last seen, paused or removed. An
`AssignmentRecord` is one try of one job handed to a runner, with the job token issued for
it; a lost lease marks it `lost`, and from then on that token's messages are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AssignmentState(StrEnum):
    """Where one try of a job on a runner stands."""

    RUNNING = "running"
    FINISHED = "finished"
    LOST = "lost"  # the lease ran out: the runner's later messages are refused (409)


@dataclass(frozen=True, slots=True)
class RunnerRecord:
    """A registered runner. `token_id` is its credential (revoked when it is removed)."""

    id: int
    name: str
    labels: tuple[str, ...]
    version: str
    token_id: int | None
    created_at: datetime
    last_seen_at: datetime | None = None
    paused: bool = False
    removed_at: datetime | None = None
    slots: int = 1


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """One try (`try_number`, the job's `tries` at the claim) of a job on a runner.

    `event_id` is the newest event id when the job was claimed: cancellations are looked
    for after it. `token_id` is the job token handed out with it.
    """

    id: int
    runner_id: int
    job_id: int
    try_number: int
    token_id: int
    state: AssignmentState
    event_id: int
    claimed_at: datetime
    ended_at: datetime | None = None
