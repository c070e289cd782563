"""Projects in the SQL store (`ProjectStore`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select

from shipline.domain.records import ProjectRecord
from shipline.store.ports import Page
from shipline.store.sql._common import guarded, newest_first
from shipline.store.sql.schema import projects

_BY_NAME = select(projects).where(projects.c.name == bindparam("name"))
_BY_ID = select(projects).where(projects.c.id == bindparam("project_id"))


def _record(row: Row[Any]) -> ProjectRecord:
    return ProjectRecord(
        id=row.id,
        name=row.name,
        repository=row.repository,
        default_branch=row.default_branch,
        created_at=row.created_at,
    )


class SqlProjectStore:
    """Projects: one repository each, known by a unique name."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, name: str, repository: str, default_branch: str = "main") -> ProjectRecord:
        # The port passes no clock: creation time is the database host's UTC now.
        created = datetime.now(UTC)
        query = insert(projects).values(
            name=name,
            repository=repository,
            default_branch=default_branch,
            last_run_number=0,
            created_at=created,
        )
        with guarded(self._conn, f"project {name!r}"):
            new_id = self._conn.execute(query.returning(projects.c.id)).scalar_one()
        return ProjectRecord(new_id, name, repository, default_branch, created)

    def get(self, name: str) -> ProjectRecord | None:
        row = self._conn.execute(_BY_NAME, {"name": name}).first()
        return None if row is None else _record(row)

    def get_by_id(self, project_id: int) -> ProjectRecord | None:
        row = self._conn.execute(_BY_ID, {"project_id": project_id}).first()
        return None if row is None else _record(row)

    def page(self, *, limit: int = 50, cursor: str | None = None) -> Page[ProjectRecord]:
        return newest_first(
            self._conn, select(projects), projects.c.id, _record, limit=limit, cursor=cursor
        )

    def delete(self, project_id: int) -> None:
        """Delete a project with its runs, jobs, logs and memberships (not its audit)."""
        self._conn.execute(delete(projects).where(projects.c.id == project_id))
