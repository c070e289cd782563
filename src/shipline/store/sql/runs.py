"""Runs in the SQL store (`RunStore`): numbering, status changes, re-runs, listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from shipline.domain.records import JSON, RunRecord, Trust
from shipline.domain.status import Conclusion, Status
from shipline.domain.transitions import InvalidTransition, check_transition
from shipline.store.ports import NewRun, NotFound, Page, RunFilter
from shipline.store.sql._common import newest_first, one_or_missing
from shipline.store.sql.schema import projects, runs

# Every column but the definition (workflow text, event payload): records stay small.
_RECORD_COLUMNS = [c for c in runs.c if c.name not in ("workflow_text", "event_payload")]


_NAMES = tuple(c.name for c in _RECORD_COLUMNS)
# Built once: building a select of 20 columns costs more than running it.
_SELECT = select(*_RECORD_COLUMNS)
_GET = _SELECT.where(runs.c.id == bindparam("run_id"))
_LOCK = _GET.with_for_update()


def _record(row: Row[Any]) -> RunRecord:
    values = dict(zip(_NAMES, row, strict=True))  # the columns are named as the fields
    values["status"] = Status(values["status"])
    conclusion = values["conclusion"]
    values["conclusion"] = None if conclusion is None else Conclusion(conclusion)
    values["trust"] = Trust(values["trust"])
    return RunRecord(**values)


class SqlRunStore:
    """Runs of workflows, numbered 1, 2, ... per project."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, run: NewRun, *, now: datetime) -> RunRecord:
        # The counter row is updated first: on PostgreSQL its row lock orders concurrent
        # creations in one project; SQLite's BEGIN IMMEDIATE already serialises them.
        number = self._conn.execute(
            update(projects)
            .where(projects.c.id == run.project_id)
            .values(last_run_number=projects.c.last_run_number + 1)
            .returning(projects.c.last_run_number)
        ).scalar_one_or_none()
        if number is None:
            raise NotFound(f"project {run.project_id} does not exist")
        run_id = self._conn.execute(
            insert(runs)
            .values(
                project_id=run.project_id,
                number=number,
                attempt=1,
                workflow_file=run.workflow_file,
                workflow_name=run.workflow_name,
                workflow_text=run.workflow_text,
                event=run.event,
                ref=run.ref,
                sha=run.sha,
                actor=run.actor,
                status=Status.QUEUED.value,
                trust=run.trust.value,
                inputs=run.inputs,
                event_payload=run.event_payload,
                concurrency_group=run.concurrency_group,
                plan_digest=run.plan_digest,
                created_at=now,
            )
            .returning(runs.c.id)
        ).scalar_one()
        return self._require(run_id)

    def get(self, run_id: int) -> RunRecord | None:
        row = self._conn.execute(_GET, {"run_id": run_id}).first()
        return None if row is None else _record(row)

    def lock(self, run_id: int) -> RunRecord | None:
        """The run, its row locked until the transaction ends (PostgreSQL; SQLite's writing
        transactions are serialised already)."""
        row = self._conn.execute(_LOCK, {"run_id": run_id}).first()
        return None if row is None else _record(row)

    def _require(self, run_id: int, *, lock: bool = False) -> RunRecord:
        found = self._conn.execute(_LOCK if lock else _GET, {"run_id": run_id}).first()
        return _record(one_or_missing(found, f"run {run_id}"))

    def definition(self, run_id: int) -> tuple[str, JSON]:
        found = self._conn.execute(
            select(runs.c.workflow_text, runs.c.event_payload).where(runs.c.id == run_id)
        ).first()
        row = one_or_missing(found, f"run {run_id}")
        return row.workflow_text, row.event_payload

    def page(
        self, flt: RunFilter, *, limit: int = 20, cursor: str | None = None
    ) -> Page[RunRecord]:
        query = _SELECT
        if flt.project_id is not None:
            query = query.where(runs.c.project_id == flt.project_id)
        if flt.status is not None:
            query = query.where(runs.c.status == flt.status.value)
        if flt.ref is not None:
            query = query.where(runs.c.ref == flt.ref)
        if flt.event is not None:
            query = query.where(runs.c.event == flt.event)
        if flt.workflow_file is not None:
            query = query.where(runs.c.workflow_file == flt.workflow_file)
        return newest_first(self._conn, query, runs.c.id, _record, limit=limit, cursor=cursor)

    def latest_per_workflow(self, project_id: int) -> list[RunRecord]:
        newest = (
            select(func.max(runs.c.id))
            .where(runs.c.project_id == project_id)
            .group_by(runs.c.workflow_file)
        )
        query = (
            select(*_RECORD_COLUMNS)
            .where(runs.c.id.in_(newest.scalar_subquery()))
            .order_by(runs.c.workflow_file)
        )
        return [_record(row) for row in self._conn.execute(query)]

    def set_status(
        self,
        run_id: int,
        status: Status,
        conclusion: Conclusion | None = None,
        *,
        now: datetime,
        error: str | None = None,
    ) -> RunRecord:
        current = self._require(run_id, lock=True)
        check_transition(f"run {run_id}", current.status, status, conclusion)
        values: dict[str, Any] = {
            "status": status.value,
            "conclusion": None if conclusion is None else conclusion.value,
        }
        if status is Status.IN_PROGRESS and current.started_at is None:
            values["started_at"] = now
        if status is Status.COMPLETED:
            values["finished_at"] = now
        if error is not None:
            values["error"] = error
        self._conn.execute(update(runs).where(runs.c.id == run_id).values(values))
        return self._require(run_id)

    def new_attempt(self, run_id: int, *, now: datetime) -> RunRecord:
        current = self._require(run_id, lock=True)
        if current.status is not Status.COMPLETED:
            raise InvalidTransition(
                f"run {run_id}: only a completed run can be re-run (it is {current.status})"
            )
        self._conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                attempt=current.attempt + 1,
                status=Status.QUEUED.value,
                conclusion=None,
                error=None,
                started_at=None,
                finished_at=None,
            )
        )
        return self._require(run_id)

    def active_in_group(self, project_id: int, group: str) -> list[RunRecord]:
        query = (
            select(*_RECORD_COLUMNS)
            .where(
                runs.c.project_id == project_id,
                runs.c.concurrency_group == group,
                runs.c.status != Status.COMPLETED.value,
            )
            .order_by(runs.c.id)
        )
        return [_record(row) for row in self._conn.execute(query)]

    def count_by_status(self) -> dict[Status, int]:
        query = select(runs.c.status, func.count()).group_by(runs.c.status)
        return {Status(status): int(n) for status, n in self._conn.execute(query)}

    def unfinished(self) -> list[RunRecord]:
        query = (
            select(*_RECORD_COLUMNS)
            .where(runs.c.status != Status.COMPLETED.value)
            .order_by(runs.c.id)
        )
        return [_record(row) for row in self._conn.execute(query)]
