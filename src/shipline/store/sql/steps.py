"""Steps of jobs in the SQL store (`StepStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from shipline.domain.records import StepRecord
from shipline.domain.status import Conclusion, Status
from shipline.domain.transitions import InvalidTransition, check_transition
from shipline.store.sql._common import guarded, insert_new
from shipline.store.sql.schema import steps

_FOR_JOBS = (
    select(steps)
    .where(steps.c.job_id.in_(bindparam("job_ids", expanding=True)))
    .order_by(steps.c.job_id, steps.c.index)
)
# Built once. The step's key is bound as `at_job`/`at_index` (an UPDATE reserves the
# columns' own names for its SET clause, which its parameters give).
_WHERE = (steps.c.job_id == bindparam("at_job"), steps.c.index == bindparam("at_index"))
_LOCK = select(steps).where(*_WHERE).with_for_update()
# A new step in one statement; one stored already is left (ON CONFLICT) for `upsert` to
# lock and move on.
_INSERT = insert_new(steps, ("job_id", "index"), steps.c.job_id)
_UPDATE = update(steps).where(*_WHERE)


def _record(row: Row[Any]) -> StepRecord:
    return StepRecord(
        job_id=row.job_id,
        index=row._mapping["index"],  # `row.index` is the tuple method
        key=row.key,
        name=row.name,
        status=Status(row.status),
        conclusion=None if row.conclusion is None else Conclusion(row.conclusion),
        exit_code=row.exit_code,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class SqlStepStore:
    """Steps, kept by (job, index) and written whole as they progress."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def upsert(self, step: StepRecord) -> None:
        """Insert a step or move it on. A status change is checked against the transition
        table; writing the same status again updates the other fields, except that a
        completed step is final."""
        at = {"at_job": step.job_id, "at_index": step.index}
        values = {
            "key": step.key,
            "name": step.name,
            "status": step.status.value,
            "conclusion": None if step.conclusion is None else step.conclusion.value,
            "exit_code": step.exit_code,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
        }
        what = f"step {step.index} of job {step.job_id}"
        if (step.status is Status.COMPLETED) != (step.conclusion is not None):
            raise InvalidTransition(f"{what}: a conclusion goes with completed, and only with it")
        # A job that is gone fails the message's transaction, which no caller goes on with.
        with guarded(self._conn, what, savepoint=False):
            inserted = self._conn.execute(
                _INSERT[self._conn.dialect.name],
                {"job_id": step.job_id, "index": step.index, **values},
            ).first()
        if inserted is not None:
            return
        row = self._conn.execute(_LOCK, at).first()
        if row is None:  # removed since (its job is gone): as a failed insert would say
            raise InvalidTransition(f"{what}: it is gone")
        current = _record(row)
        if current == step:
            return
        if current.status is step.status:
            if step.status is Status.COMPLETED:
                raise InvalidTransition(f"{what}: completed already")
            if step.conclusion is not None:
                raise InvalidTransition(f"{what}: only completed carries a conclusion")
        else:
            check_transition(what, current.status, step.status, step.conclusion)
        self._conn.execute(_UPDATE, {**at, **values})

    def for_job(self, job_id: int) -> list[StepRecord]:
        query = select(steps).where(steps.c.job_id == job_id).order_by(steps.c.index)
        return [_record(row) for row in self._conn.execute(query)]

    def for_jobs(self, job_ids: Sequence[int]) -> dict[int, list[StepRecord]]:
        found: dict[int, list[StepRecord]] = {job_id: [] for job_id in job_ids}
        if not found:
            return found
        for row in self._conn.execute(_FOR_JOBS, {"job_ids": list(found)}):
            found[row.job_id].append(_record(row))
        return found
