"""Jobs in the SQL store (`JobStore`): creation per attempt, status changes, the queue.

The queue is the `jobs` table itself. A claim takes the oldest queued job whose labels the
runner has and holds it with a lease. On PostgreSQL, candidates are locked one at a time
with `FOR UPDATE SKIP LOCKED` (a job another server is claiming is skipped, not waited for,
and the status is checked again under the lock); on SQLite the whole transaction holds the
write lock from its start (BEGIN IMMEDIATE), so claims are serialised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, func, insert, select, update

from shipline.domain.records import JSON, JobRecord
from shipline.domain.status import Conclusion, Status
from shipline.domain.transitions import TRANSITIONS, InvalidTransition, check_transition
from shipline.store.ports import NewJob
from shipline.store.sql._common import guarded, one_or_missing, strs
from shipline.store.sql.schema import jobs, runs

# Queued jobs read per round while looking for one whose labels match.
_CLAIM_BATCH = 100


# The columns of a `JobRecord` (named as its fields), and the hot queries, built once.
_COLUMNS = [jobs.c[f.name] for f in fields(JobRecord)]
_NAMES = tuple(c.name for c in _COLUMNS)
_GET = select(*_COLUMNS).where(jobs.c.id == bindparam("job_id"))
_FOR_ATTEMPT = (
    select(*_COLUMNS)
    .where(jobs.c.run_id == bindparam("run_id"), jobs.c.attempt == bindparam("attempt"))
    .order_by(jobs.c.id)
)
_PROGRESS = select(
    func.count(), func.count(case((jobs.c.status == Status.COMPLETED.value, 1)))
).where(jobs.c.run_id == bindparam("run_id"), jobs.c.attempt == bindparam("attempt"))


# The queue's statements (the claim's candidates, lock and lease).
_CANDIDATES = (
    select(jobs.c.id, jobs.c.runs_on)
    .where(jobs.c.status == bindparam("queued"), jobs.c.id > bindparam("after"))
    .order_by(jobs.c.id)
    .limit(bindparam("limit"))
)

_CURRENT = (
    select(jobs.c.status, jobs.c.started_at)
    .where(jobs.c.id == bindparam("at_id"))
    .with_for_update()
)
# A job's change (`set_status`): the columns set are the parameters given.
_SET = update(jobs).where(jobs.c.id == bindparam("at_id")).returning(*_COLUMNS)
# The same, made only from a status the transition table allows (expanding `sources`).
_SET_FROM = (
    update(jobs)
    .where(jobs.c.id == bindparam("at_id"), jobs.c.status.in_(bindparam("sources", expanding=True)))
    .returning(*_COLUMNS)
)
# target status -> the statuses that may move to it
_SOURCES = {
    target: [s.value for s, allowed in TRANSITIONS.items() if target in allowed]
    for target in Status
}
_candidate = jobs.alias("candidate")
# Lock one queued job, skipping it when another claimer holds it, lease it and read it
# back: one statement (the lock is a sub-select's, which SQLite, one writer, has no use for).
# One job by its id, not the first of several ids nor the oldest whose labels fit compared
# in SQL: those let PostgreSQL's planner, on statistics taken while the table was small,
# sort or scan every queued row (2.7 ms a claim at 10,000 queued, against 0.3 ms).
_LEASE = (
    update(jobs)
    .where(
        jobs.c.id
        == select(_candidate.c.id)
        .where(_candidate.c.id == bindparam("at_id"), _candidate.c.status == bindparam("queued"))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(tries=jobs.c.tries + 1)
    .returning(*_COLUMNS)
)


def _record(row: Row[Any]) -> JobRecord:
    values = dict(zip(_NAMES, row, strict=True))
    values["status"] = Status(values["status"])
    conclusion = values["conclusion"]
    values["conclusion"] = None if conclusion is None else Conclusion(conclusion)
    values["needs"] = strs(values["needs"])
    values["runs_on"] = strs(values["runs_on"])
    return JobRecord(**values)


def _fits(runs_on: object, labels: frozenset[str] | None) -> bool:
    return labels is None or set(strs(runs_on)) <= labels


class SqlJobStore:
    """Jobs of runs' attempts, and the queue runners claim them from."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(
        self, run_id: int, attempt: int, jobs_: Sequence[NewJob], *, now: datetime
    ) -> list[JobRecord]:
        if not jobs_:
            return []
        rows = []
        for job in jobs_:
            if (job.status is Status.COMPLETED) != (job.conclusion is not None):
                raise InvalidTransition(
                    f"job {job.key}: a conclusion goes with completed, and only with it"
                )
            rows.append(
                {
                    "run_id": run_id,
                    "attempt": attempt,
                    "key": job.key,
                    "job_id": job.job_id,
                    "name": job.name,
                    "status": job.status.value,
                    "conclusion": None if job.conclusion is None else job.conclusion.value,
                    "matrix": job.matrix,
                    "needs": list(job.needs),
                    "outputs": {},
                    "runs_on": list(job.runs_on),
                    "timeout_minutes": job.timeout_minutes,
                    "tries": 0,
                    "error": job.error,
                    "created_at": now,
                    "finished_at": now if job.status is Status.COMPLETED else None,
                }
            )
        # One statement for all the jobs (a matrix can have hundreds), ids in input order.
        query_insert = insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True)
        with guarded(self._conn, f"a job of run {run_id} attempt {attempt}"):
            ids = list(self._conn.execute(query_insert, rows).scalars())
        query = select(*_COLUMNS).where(jobs.c.id.in_(ids)).order_by(jobs.c.id)
        return [_record(row) for row in self._conn.execute(query)]

    def get(self, job_id: int) -> JobRecord | None:
        row = self._conn.execute(_GET, {"job_id": job_id}).first()
        return None if row is None else _record(row)

    def for_run(self, run_id: int, attempt: int | None = None) -> list[JobRecord]:
        if attempt is not None:
            found = self._conn.execute(_FOR_ATTEMPT, {"run_id": run_id, "attempt": attempt})
            return [_record(row) for row in found]
        current = select(runs.c.attempt).where(runs.c.id == run_id).scalar_subquery()
        query = select(*_COLUMNS).where(jobs.c.run_id == run_id, jobs.c.attempt == current)
        return [_record(row) for row in self._conn.execute(query.order_by(jobs.c.id))]

    def progress(self, run_id: int, attempt: int) -> tuple[int, int]:
        row = self._conn.execute(_PROGRESS, {"run_id": run_id, "attempt": attempt}).one()
        return int(row[0]), int(row[1] or 0)

    def set_status(
        self,
        job_id: int,
        status: Status,
        conclusion: Conclusion | None = None,
        *,
        now: datetime,
        outputs: JSON | None = None,
        error: str | None = None,
    ) -> JobRecord:
        values: dict[str, Any] = {
            "status": status.value,
            "conclusion": None if conclusion is None else conclusion.value,
        }
        if status is Status.COMPLETED:
            values["finished_at"] = now
            values["lease_expires_at"] = None
        if status is Status.QUEUED:
            # Back in the queue (its runner was lost): nobody holds it any more.
            values["lease_owner"] = None
            values["lease_expires_at"] = None
        if outputs is not None:
            values["outputs"] = outputs
        if error is not None:
            values["error"] = error
        if status is not Status.IN_PROGRESS and (status is Status.COMPLETED) == (
            conclusion is not None
        ):
            # One statement: changed only from a status the table allows; else it is read
            # to say why (no such job, or the change is not allowed from its status).
            row = self._conn.execute(
                _SET_FROM, {"at_id": job_id, "sources": _SOURCES[status], **values}
            ).first()
            if row is not None:
                return _record(row)
        row = self._conn.execute(_CURRENT, {"at_id": job_id}).first()
        current = one_or_missing(row, f"job {job_id}")
        check_transition(f"job {job_id}", Status(current.status), status, conclusion)
        if status is Status.IN_PROGRESS and current.started_at is None:
            values["started_at"] = now
        return _record(self._conn.execute(_SET, {"at_id": job_id, **values}).one())

    def claim(
        self, owner: str, labels: frozenset[str] | None, *, lease_seconds: float, now: datetime
    ) -> JobRecord | None:
        taken = self.claim_many(owner, labels, 1, lease_seconds=lease_seconds, now=now)
        return taken[0] if taken else None

    def claim_many(
        self,
        owner: str,
        labels: frozenset[str] | None,
        count: int,
        *,
        lease_seconds: float,
        now: datetime,
    ) -> list[JobRecord]:
        taken: list[JobRecord] = []
        after = 0
        # A few candidates first (the oldest usually fit), then whole batches.
        limit = min(_CLAIM_BATCH, max(8, 2 * count))
        while len(taken) < count:
            candidates = self._conn.execute(
                _CANDIDATES, {"queued": Status.QUEUED.value, "after": after, "limit": limit}
            ).all()
            for candidate in candidates:
                if not _fits(candidate.runs_on, labels):
                    continue
                job = self._take(candidate.id, owner, lease_seconds, now)
                if job is not None:
                    taken.append(job)
                    if len(taken) == count:
                        break
            if len(candidates) < limit:
                break
            after = candidates[-1].id
            limit = _CLAIM_BATCH
        return taken

    def _take(
        self, job_id: int, owner: str, lease_seconds: float, now: datetime
    ) -> JobRecord | None:
        """Lock one queued job and lease it; None when another claimer holds it or took
        it already."""
        check_transition(f"job {job_id}", Status.QUEUED, Status.IN_PROGRESS)
        row = self._conn.execute(
            _LEASE,
            {
                "at_id": job_id,
                "queued": Status.QUEUED.value,
                "status": Status.IN_PROGRESS.value,
                "lease_owner": owner,
                "lease_expires_at": now + timedelta(seconds=lease_seconds),
                "started_at": now,
            },
        ).first()
        return None if row is None else _record(row)

    def renew_lease(self, job_id: int, owner: str, *, lease_seconds: float, now: datetime) -> bool:
        result = self._conn.execute(
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.lease_owner == owner,
                jobs.c.status == Status.IN_PROGRESS.value,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1

    def count_by_status(self) -> dict[Status, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        return {Status(status): int(n) for status, n in self._conn.execute(query)}

    def expired_leases(self, now: datetime) -> list[JobRecord]:
        query = (
            select(*_COLUMNS)
            .where(jobs.c.status == Status.IN_PROGRESS.value, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.id)
        )
        return [_record(row) for row in self._conn.execute(query)]
