"""Environments, releases and deployments in the SQL store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, text, update

from shipline.domain.deployments import (
    DeploymentKind,
    DeploymentRecord,
    DeploymentState,
    EnvironmentRecord,
    ReleaseRecord,
)
from shipline.domain.transitions import InvalidTransition
from shipline.store.ports import NewDeployment, NewRelease, NotFound, Page
from shipline.store.sql._common import newest_first, utc
from shipline.store.sql.schema import deployment_progress, deployments, environments, releases

_E = environments
_R = releases
_D = deployments
_P = deployment_progress


class SqlEnvironmentStore:
    """Environments as last read from a project's default branch."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record(self, project_id: int, name: str, source_sha: str, *, now: datetime) -> None:
        where = (_E.c.project_id == project_id) & (_E.c.name == name)
        values = {"source_sha": source_sha, "read_at": utc(now)}
        if not self._conn.execute(update(_E).where(where).values(**values)).rowcount:
            self._conn.execute(insert(_E).values(project_id=project_id, name=name, **values))

    def for_project(self, project_id: int) -> list[EnvironmentRecord]:
        rows = self._conn.execute(
            select(_E).where(_E.c.project_id == project_id).order_by(_E.c.name)
        )
        return [
            EnvironmentRecord(r.id, r.project_id, r.name, r.source_sha, r.read_at) for r in rows
        ]


def _release(row: Row[Any]) -> ReleaseRecord:
    return ReleaseRecord(
        id=row.id,
        project_id=row.project_id,
        artifact=row.artifact,
        digest=row.digest,
        provenance=row.provenance,
        run_id=row.run_id,
        job_key=row.job_key,
        ref=row.ref,
        sha=row.sha,
        builder=row.builder,
        created_by=row.created_by,
        created_at=row.created_at,
    )


class SqlReleaseStore:
    """Releases: verified artifacts of runs."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, release: NewRelease, *, now: datetime) -> ReleaseRecord:
        same = self._conn.execute(
            select(_R).where(
                (_R.c.project_id == release.project_id)
                & (_R.c.run_id == release.run_id)
                & (_R.c.artifact == release.artifact)
                & (_R.c.digest == release.digest)
            )
        ).first()
        if same is not None:
            return _release(same)
        new_id = self._conn.execute(
            insert(_R).values(
                project_id=release.project_id,
                artifact=release.artifact,
                digest=release.digest,
                provenance=release.provenance,
                run_id=release.run_id,
                job_key=release.job_key,
                ref=release.ref,
                sha=release.sha,
                builder=release.builder,
                created_by=release.created_by,
                created_at=utc(now),
            )
        ).inserted_primary_key
        assert new_id is not None
        found = self.get(int(new_id[0]))
        assert found is not None
        return found

    def get(self, release_id: int) -> ReleaseRecord | None:
        row = self._conn.execute(select(_R).where(_R.c.id == release_id)).first()
        return None if row is None else _release(row)


def _deployment(row: Row[Any]) -> DeploymentRecord:
    return DeploymentRecord(
        id=row.id,
        project_id=row.project_id,
        environment=row.environment,
        release_id=row.release_id,
        kind=DeploymentKind(row.kind),
        state=DeploymentState(row.state),
        actor=row.actor,
        ref=row.ref,
        sha=row.sha,
        run_id=row.run_id,
        job_id=row.job_id,
        previous_release_id=row.previous_release_id,
        reason=row.reason,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


_UNFINISHED = (DeploymentState.QUEUED.value, DeploymentState.IN_PROGRESS.value)


class SqlDeploymentStore:
    """Deployments and the lines of their progress."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, deployment: NewDeployment, *, now: datetime) -> DeploymentRecord:
        final = deployment.state.final
        new_id = self._conn.execute(
            insert(_D).values(
                project_id=deployment.project_id,
                environment=deployment.environment,
                release_id=deployment.release_id,
                kind=deployment.kind.value,
                state=deployment.state.value,
                actor=deployment.actor,
                ref=deployment.ref,
                sha=deployment.sha,
                run_id=deployment.run_id,
                job_id=deployment.job_id,
                previous_release_id=deployment.previous_release_id,
                reason=deployment.reason,
                created_at=utc(now),
                finished_at=utc(now) if final else None,
            )
        ).inserted_primary_key
        assert new_id is not None
        found = self.get(int(new_id[0]))
        assert found is not None
        return found

    def get(self, deployment_id: int) -> DeploymentRecord | None:
        row = self._conn.execute(select(_D).where(_D.c.id == deployment_id)).first()
        return None if row is None else _deployment(row)

    def set_state(
        self, deployment_id: int, state: DeploymentState, *, now: datetime, reason: str = ""
    ) -> DeploymentRecord:
        current = self.get(deployment_id)
        if current is None:
            raise NotFound(f"no deployment {deployment_id}")
        allowed = {
            DeploymentState.QUEUED: state is not DeploymentState.QUEUED,
            DeploymentState.IN_PROGRESS: state.final,
        }.get(current.state, False)
        if not allowed:
            raise InvalidTransition(
                f"deployment {deployment_id}: cannot go from {current.state} to {state}"
            )
        values: dict[str, object] = {"state": state.value}
        if reason:
            values["reason"] = reason
        if state is DeploymentState.IN_PROGRESS:
            values["started_at"] = utc(now)
        if state.final:
            values["finished_at"] = utc(now)
        self._conn.execute(update(_D).where(_D.c.id == deployment_id).values(**values))
        found = self.get(deployment_id)
        assert found is not None
        return found

    def unfinished(self, *, lock: bool = False) -> list[DeploymentRecord]:
        if lock and self._conn.dialect.name == "postgresql":
            # Two servers deciding at once which deployment starts would race: one waits.
            self._conn.execute(text("LOCK TABLE deployments IN EXCLUSIVE MODE"))
        rows = self._conn.execute(select(_D).where(_D.c.state.in_(_UNFINISHED)).order_by(_D.c.id))
        return [_deployment(r) for r in rows]

    def page(
        self,
        project_id: int,
        environment: str | None = None,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[DeploymentRecord]:
        query = select(_D).where(_D.c.project_id == project_id)
        if environment is not None:
            query = query.where(_D.c.environment == environment)
        return newest_first(self._conn, query, _D.c.id, _deployment, limit=limit, cursor=cursor)

    def last_success(self, project_id: int, environment: str) -> DeploymentRecord | None:
        row = self._conn.execute(
            select(_D)
            .where(
                (_D.c.project_id == project_id)
                & (_D.c.environment == environment)
                & (_D.c.state == DeploymentState.SUCCESS.value)
            )
            .order_by(_D.c.finished_at.desc(), _D.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _deployment(row)

    def add_progress(self, deployment_id: int, message: str, *, now: datetime) -> int:
        new_id = self._conn.execute(
            insert(_P).values(deployment_id=deployment_id, at=utc(now), message=message)
        ).inserted_primary_key
        assert new_id is not None
        return int(new_id[0])

    def progress(self, deployment_id: int, *, after: int = 0) -> list[tuple[int, str]]:
        rows = self._conn.execute(
            select(_P.c.id, _P.c.message)
            .where((_P.c.deployment_id == deployment_id) & (_P.c.id > after))
            .order_by(_P.c.id)
        )
        return [(int(r.id), r.message) for r in rows]
