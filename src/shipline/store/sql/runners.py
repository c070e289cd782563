"""Remote runners in the SQL store (`RunnerStore`), and claimed schedule firings
(`ScheduleStore`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, insert, or_, select, update

from shipline.domain.runners import AssignmentRecord, AssignmentState, RunnerRecord
from shipline.domain.status import Status
from shipline.store.ports import Conflict
from shipline.store.sql._common import guarded, one_or_missing, strs
from shipline.store.sql.schema import events, jobs, runner_jobs, runners, runs, schedule_fires


def runner_record(row: Any) -> RunnerRecord:
    """A runner's row (or `unlabelled` columns of one) as its record."""
    return RunnerRecord(
        id=row.id,
        name=row.name,
        labels=strs(row.labels),
        version=row.version,
        token_id=row.token_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        paused=bool(row.paused),
        removed_at=row.removed_at,
        slots=row.slots,
    )


def _assignment(row: Row[Any]) -> AssignmentRecord:
    return AssignmentRecord(
        id=row.id,
        runner_id=row.runner_id,
        job_id=row.job_id,
        try_number=row.try_number,
        token_id=row.token_id,
        state=AssignmentState(row.state),
        event_id=row.event_id,
        claimed_at=row.claimed_at,
        ended_at=row.ended_at,
    )


# The hot statements, built once.
_ASSIGNMENT_BY_TOKEN = select(runner_jobs).where(runner_jobs.c.token_id == bindparam("at_token"))
_END = update(runner_jobs).where(
    runner_jobs.c.id == bindparam("at_id"),
    runner_jobs.c.state == AssignmentState.RUNNING.value,
)
_END_BY_TOKEN = (
    update(runner_jobs)
    .where(
        runner_jobs.c.token_id == bindparam("at_token"),
        runner_jobs.c.state == AssignmentState.RUNNING.value,
    )
    .returning(*runner_jobs.c)
)
# An assignment reads the feed's head as committed in its insert (no round trip of its
# own, and no need to write the transaction's pending events first, as `last_id` would).
_ASSIGN = (
    insert(runner_jobs)
    .values(event_id=select(func.coalesce(func.max(events.c.id), 0)).scalar_subquery())
    .returning(*runner_jobs.c)
)


class SqlRunnerStore:
    """Registered runners and their job assignments."""

    def __init__(self, conn: Connection, flush_events: Callable[[], None] | None = None) -> None:
        self._conn = conn
        # Writes the events this transaction published, before a read of the feed.
        self._flush_events = flush_events

    def create(
        self,
        name: str,
        labels: Sequence[str],
        version: str,
        slots: int,
        token_id: int,
        *,
        now: datetime,
    ) -> RunnerRecord:
        with guarded(self._conn, f"runner {name!r}"):
            runner_id = self._conn.execute(
                insert(runners)
                .values(
                    name=name,
                    labels=list(labels),
                    version=version,
                    slots=slots,
                    token_id=token_id,
                    paused=False,
                    created_at=now,
                )
                .returning(runners.c.id)
            ).scalar_one()
        found = self.get(runner_id)
        assert found is not None
        return found

    def get(self, runner_id: int) -> RunnerRecord | None:
        row = self._conn.execute(select(runners).where(runners.c.id == runner_id)).first()
        return None if row is None else runner_record(row)

    def all(self, *, include_removed: bool = False) -> list[RunnerRecord]:
        query = select(runners).order_by(runners.c.id)
        if not include_removed:
            query = query.where(runners.c.removed_at.is_(None))
        return [runner_record(row) for row in self._conn.execute(query)]

    def update(
        self,
        runner_id: int,
        *,
        labels: Sequence[str] | None = None,
        version: str | None = None,
        slots: int | None = None,
        last_seen_at: datetime | None = None,
        paused: bool | None = None,
        removed_at: datetime | None = None,
    ) -> RunnerRecord:
        given = {
            "labels": None if labels is None else list(labels),
            "version": version,
            "slots": slots,
            "last_seen_at": last_seen_at,
            "paused": paused,
            "removed_at": removed_at,
        }
        values = {k: v for k, v in given.items() if v is not None}
        if values:
            self._conn.execute(update(runners).where(runners.c.id == runner_id).values(values))
        return one_or_missing(self.get(runner_id), f"runner {runner_id}")

    def assign(
        self,
        runner_id: int,
        job_id: int,
        try_number: int,
        token_id: int,
        *,
        now: datetime,
    ) -> AssignmentRecord:
        # Made in the claim that locked the job: no caller recovers from a conflict here.
        with guarded(self._conn, f"assignment of job {job_id}", savepoint=False):
            row = self._conn.execute(
                _ASSIGN,
                {
                    "runner_id": runner_id,
                    "job_id": job_id,
                    "try_number": try_number,
                    "token_id": token_id,
                    "state": AssignmentState.RUNNING.value,
                    "claimed_at": now,
                },
            ).one()
        return _assignment(row)

    def assignment_by_token(self, token_id: int) -> AssignmentRecord | None:
        row = self._conn.execute(_ASSIGNMENT_BY_TOKEN, {"at_token": token_id}).first()
        return None if row is None else _assignment(row)

    def assignments(
        self,
        *,
        runner_id: int | None = None,
        job_id: int | None = None,
        state: AssignmentState | None = None,
    ) -> list[AssignmentRecord]:
        query = select(runner_jobs).order_by(runner_jobs.c.id)
        if runner_id is not None:
            query = query.where(runner_jobs.c.runner_id == runner_id)
        if job_id is not None:
            query = query.where(runner_jobs.c.job_id == job_id)
        if state is not None:
            query = query.where(runner_jobs.c.state == state.value)
        return [_assignment(row) for row in self._conn.execute(query)]

    def end_assignment(self, assignment_id: int, state: AssignmentState, *, now: datetime) -> bool:
        result = self._conn.execute(
            _END, {"at_id": assignment_id, "state": state.value, "ended_at": now}
        )
        return result.rowcount == 1

    def end_by_token(
        self, token_id: int, state: AssignmentState, *, now: datetime
    ) -> AssignmentRecord | None:
        row = self._conn.execute(
            _END_BY_TOKEN, {"at_token": token_id, "state": state.value, "ended_at": now}
        ).first()
        return None if row is None else _assignment(row)

    def cancelled(self, job_ids: Sequence[int]) -> set[int]:
        if not job_ids:
            return set()
        ids = list(job_ids)
        ended = self._conn.execute(
            select(jobs.c.id)
            .join(runs, runs.c.id == jobs.c.run_id)
            .where(
                jobs.c.id.in_(ids),
                or_(
                    jobs.c.status == Status.COMPLETED.value,
                    runs.c.status == Status.COMPLETED.value,
                    # A re-run made a new attempt: this job belongs to an older one.
                    runs.c.attempt != jobs.c.attempt,
                ),
            )
        ).scalars()
        if self._flush_events is not None:
            self._flush_events()
        told = self._conn.execute(
            select(events.c.job_id)
            .join(
                runner_jobs,
                and_(
                    runner_jobs.c.job_id == events.c.job_id,
                    runner_jobs.c.state == AssignmentState.RUNNING.value,
                    events.c.id > runner_jobs.c.event_id,
                ),
            )
            .where(events.c.job_id.in_(ids), events.c.kind == "job.cancel")
        ).scalars()
        return {int(i) for i in ended} | {int(i) for i in told if i is not None}


class SqlScheduleStore:
    """Which server fired a schedule's tick: the primary key makes the first insert win."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def claim_fire(self, project_id: int, workflow: str, cron: str, due_at: datetime) -> bool:
        try:
            with guarded(self._conn, "schedule firing"):
                self._conn.execute(
                    insert(schedule_fires).values(
                        project_id=project_id, workflow=workflow, cron=cron, due_at=due_at
                    )
                )
        except Conflict:
            return False
        return True
