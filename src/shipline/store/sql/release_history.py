"""Release history per environment in the SQL store: one row per finished rollout."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from shipline.domain.deployments import DeploymentKind, ReleaseHistoryRecord, ReleaseOutcome
from shipline.store.ports import NewHistoryEntry, Page
from shipline.store.sql._common import guarded, newest_first, utc
from shipline.store.sql.schema import release_history

_H = release_history


def _entry(row: Row[Any]) -> ReleaseHistoryRecord:
    return ReleaseHistoryRecord(
        id=row.id,
        project_id=row.project_id,
        environment=row.environment,
        deployment_id=row.deployment_id,
        release_id=row.release_id,
        kind=DeploymentKind(row.kind),
        outcome=ReleaseOutcome(row.outcome),
        actor=row.actor,
        run_id=row.run_id,
        ref=row.ref,
        sha=row.sha,
        artifact=row.artifact,
        digest=row.digest,
        cause=row.cause,
        reason=row.reason,
        rolled_back_to=row.rolled_back_to,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class SqlReleaseHistoryStore:
    """`ReleaseHistoryStore` on SQLite or PostgreSQL."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record(self, entry: NewHistoryEntry, *, now: datetime) -> ReleaseHistoryRecord:
        values = {
            "project_id": entry.project_id,
            "environment": entry.environment,
            "deployment_id": entry.deployment_id,
            "release_id": entry.release_id,
            "kind": entry.kind.value,
            "outcome": entry.outcome.value,
            "actor": entry.actor,
            "run_id": entry.run_id,
            "ref": entry.ref,
            "sha": entry.sha,
            "artifact": entry.artifact,
            "digest": entry.digest,
            "cause": entry.cause,
            "reason": entry.reason,
            "rolled_back_to": entry.rolled_back_to,
            "started_at": utc(entry.started_at) if entry.started_at is not None else None,
            "finished_at": utc(now),
        }
        with guarded(self._conn, f"release history of deployment {entry.deployment_id}"):
            new_id = self._conn.execute(insert(_H).values(**values)).inserted_primary_key
        assert new_id is not None
        row = self._conn.execute(select(_H).where(_H.c.id == int(new_id[0]))).one()
        return _entry(row)

    def page(
        self,
        project_id: int,
        environment: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[ReleaseHistoryRecord]:
        query = select(_H).where(
            (_H.c.project_id == project_id) & (_H.c.environment == environment)
        )
        return newest_first(self._conn, query, _H.c.id, _entry, limit=limit, cursor=cursor)

    def live(self, project_id: int, environment: str) -> ReleaseHistoryRecord | None:
        return self._newest_success(project_id, environment, None)

    def previous(self, project_id: int, environment: str) -> ReleaseHistoryRecord | None:
        live = self.live(project_id, environment)
        if live is None:
            return None
        return self._newest_success(project_id, environment, live.release_id)

    def last_of(
        self,
        project_id: int,
        environment: str,
        release_id: int,
        outcome: ReleaseOutcome | None = None,
    ) -> ReleaseHistoryRecord | None:
        query = select(_H).where(
            (_H.c.project_id == project_id)
            & (_H.c.environment == environment)
            & (_H.c.release_id == release_id)
        )
        if outcome is not None:
            query = query.where(_H.c.outcome == outcome.value)
        row = self._conn.execute(query.order_by(_H.c.id.desc()).limit(1)).first()
        return None if row is None else _entry(row)

    def _newest_success(
        self, project_id: int, environment: str, other_than: int | None
    ) -> ReleaseHistoryRecord | None:
        query = select(_H).where(
            (_H.c.project_id == project_id)
            & (_H.c.environment == environment)
            & (_H.c.outcome == ReleaseOutcome.SUCCESS.value)
        )
        if other_than is not None:
            query = query.where(_H.c.release_id != other_than)
        row = self._conn.execute(query.order_by(_H.c.id.desc()).limit(1)).first()
        return None if row is None else _entry(row)
