"""Release history per environment on SQLite and PostgreSQL: one row per finished rollout,
newest first, the live release, where a rollback goes, and the last rollout of a release."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command

from shipline.domain.deployments import DeploymentKind, DeploymentState, ReleaseOutcome
from shipline.store.ports import Conflict, NewDeployment, NewHistoryEntry, NewRelease
from shipline.store.sql import SqlStore, SqlTransaction, upgrade
from shipline.store.sql.engine import make_engine
from shipline.store.sql.migrations import config
from tests.contract.store_backends import empty_url, pg_database, url

__all__ = ["empty_url", "pg_database", "url"]

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    yield opened
    opened.close()


def _ship(
    tx: SqlTransaction,
    project_id: int,
    environment: str,
    run_id: int,
    outcome: ReleaseOutcome,
    at: datetime,
    *,
    kind: DeploymentKind = DeploymentKind.DEPLOY,
    cause: str = "",
    reason: str = "",
    rolled_back_to: int | None = None,
    release_id: int | None = None,
) -> tuple[int, int]:
    """A release of run `run_id` (or `release_id` again) rolled out: (release, history id)."""
    if release_id is None:
        release = tx.releases.create(
            NewRelease(
                project_id=project_id,
                artifact="app",
                digest=f"sha256:{run_id:02x}",
                provenance="sha256:pp",
                run_id=run_id,
                job_key="build",
                ref="refs/heads/main",
                sha=f"{run_id:040x}",
                builder="urn:b",
                created_by="alice",
            ),
            now=at,
        )
        release_id = release.id
    found = tx.releases.get(release_id)
    assert found is not None
    deployment = tx.deployments.create(
        NewDeployment(
            project_id=project_id,
            environment=environment,
            release_id=release_id,
            kind=kind,
            actor="bob",
            ref=found.ref,
            sha=found.sha,
        ),
        now=at,
    )
    entry = tx.history.record(
        NewHistoryEntry(
            project_id=project_id,
            environment=environment,
            deployment_id=deployment.id,
            release_id=release_id,
            kind=kind,
            outcome=outcome,
            actor="bob",
            run_id=found.run_id,
            ref=found.ref,
            sha=found.sha,
            artifact=found.artifact,
            digest=found.digest,
            cause=cause,
            reason=reason,
            rolled_back_to=rolled_back_to,
            started_at=at,
        ),
        now=at + timedelta(seconds=30),
    )
    return release_id, entry.id


def test_history_is_recorded_and_read_newest_first(store: SqlStore) -> None:
    with store.transaction() as tx:
        project = tx.projects.create("web", "/srv/web")
        pid = project.id
        assert tx.history.live(pid, "production") is None
        assert tx.history.previous(pid, "production") is None
        first, _ = _ship(tx, pid, "production", 1, ReleaseOutcome.SUCCESS, T0)
        second, _ = _ship(tx, pid, "production", 2, ReleaseOutcome.SUCCESS, T0 + timedelta(1))
        third, _ = _ship(
            tx,
            pid,
            "production",
            3,
            ReleaseOutcome.ROLLED_BACK,
            T0 + timedelta(2),
            cause="analysis",
            reason="canary p95 250.0 ms > 100.0 ms",
            rolled_back_to=second,
        )
        _ship(tx, pid, "staging", 4, ReleaseOutcome.SUCCESS, T0)

    with store.transaction(write=False) as tx:
        page = tx.history.page(pid, "production", limit=2)
        assert [e.release_id for e in page.items] == [third, second]
        assert page.next_cursor is not None
        rest = tx.history.page(pid, "production", limit=2, cursor=page.next_cursor)
        assert [e.release_id for e in rest.items] == [first]
        assert rest.next_cursor is None
        failed = page.items[0]
        assert failed.outcome is ReleaseOutcome.ROLLED_BACK
        assert (failed.cause, failed.rolled_back_to) == ("analysis", second)
        assert failed.reason == "canary p95 250.0 ms > 100.0 ms"
        assert failed.run_id == 3 and failed.sha == f"{3:040x}"
        assert failed.actor == "bob" and failed.kind is DeploymentKind.DEPLOY
        assert failed.started_at == T0 + timedelta(2)
        assert failed.finished_at == T0 + timedelta(2, seconds=30)
        live = tx.history.live(pid, "production")
        assert live is not None and live.release_id == second
        before = tx.history.previous(pid, "production")
        assert before is not None and before.release_id == first
        last = tx.history.last_of(pid, "production", third)
        assert last is not None and last.outcome is ReleaseOutcome.ROLLED_BACK
        assert tx.history.last_of(pid, "staging", third) is None
        assert tx.history.last_of(pid, "production", third, ReleaseOutcome.SUCCESS) is None
        ok = tx.history.last_of(pid, "production", first, ReleaseOutcome.SUCCESS)
        assert ok is not None and ok.run_id == 1
        assert [e.run_id for e in tx.history.page(pid, "staging").items] == [4]


def test_a_rollback_makes_the_older_release_live(store: SqlStore) -> None:
    with store.transaction() as tx:
        pid = tx.projects.create("web", "/srv/web").id
        first, _ = _ship(tx, pid, "production", 1, ReleaseOutcome.SUCCESS, T0)
        second, _ = _ship(tx, pid, "production", 2, ReleaseOutcome.SUCCESS, T0 + timedelta(1))
        _ship(
            tx,
            pid,
            "production",
            1,
            ReleaseOutcome.SUCCESS,
            T0 + timedelta(2),
            kind=DeploymentKind.ROLLBACK,
            release_id=first,
        )
        live = tx.history.live(pid, "production")
        assert live is not None
        assert (live.release_id, live.kind) == (first, DeploymentKind.ROLLBACK)
        before = tx.history.previous(pid, "production")
        assert before is not None and before.release_id == second


def test_one_entry_per_deployment(store: SqlStore) -> None:
    with pytest.raises(Conflict), store.transaction() as tx:
        pid = tx.projects.create("web", "/srv/web").id
        release, entry_id = _ship(tx, pid, "production", 1, ReleaseOutcome.SUCCESS, T0)
        entry = tx.history.page(pid, "production").items[0]
        assert entry.id == entry_id
        tx.history.record(
            NewHistoryEntry(
                project_id=pid,
                environment="production",
                deployment_id=entry.deployment_id,
                release_id=release,
                kind=DeploymentKind.DEPLOY,
                outcome=ReleaseOutcome.FAILURE,
                actor="bob",
                run_id=1,
                ref="refs/heads/main",
                sha="c" * 40,
                artifact="app",
                digest="sha256:01",
            ),
            now=T0,
        )


def test_revision_0009_fills_history_from_finished_deployments(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        with engine.connect() as connection:
            command.upgrade(config(connection), "0008")
            connection.commit()
    finally:
        engine.dispose()
    old = SqlStore(empty_url, create=False)
    try:
        with old.transaction() as tx:
            pid = tx.projects.create("web", "/srv/web").id
            release = tx.releases.create(
                NewRelease(
                    project_id=pid,
                    artifact="app",
                    digest="sha256:01",
                    provenance="sha256:pp",
                    run_id=5,
                    job_key="build",
                    ref="refs/heads/main",
                    sha="c" * 40,
                    builder="urn:b",
                    created_by="alice",
                ),
                now=T0,
            )
            ids = []
            for state in (DeploymentState.SUCCESS, DeploymentState.REFUSED, None):
                d = tx.deployments.create(
                    NewDeployment(
                        project_id=pid,
                        environment="production",
                        release_id=release.id,
                        kind=DeploymentKind.DEPLOY,
                        actor="bob",
                        ref=release.ref,
                        sha=release.sha,
                    ),
                    now=T0,
                )
                if state is DeploymentState.SUCCESS:
                    tx.deployments.set_state(d.id, DeploymentState.IN_PROGRESS, now=T0)
                if state is not None:
                    tx.deployments.set_state(d.id, state, now=T0 + timedelta(minutes=1))
                ids.append(d.id)
    finally:
        old.close()
    upgrade(empty_url)
    migrated = SqlStore(empty_url, create=False)
    try:
        with migrated.transaction(write=False) as tx:
            [entry] = tx.history.page(pid, "production").items
    finally:
        migrated.close()
    assert (entry.deployment_id, entry.outcome, entry.run_id) == (ids[0], "success", 5)
    assert entry.finished_at == T0 + timedelta(minutes=1)
