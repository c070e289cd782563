"""The deployment control plane's stores on SQLite and PostgreSQL: environments, releases
(deduplicated per run, artifact and digest), deployments (states, queue, history, last
success, progress lines) and gates (one per job, decided once; one decision per user)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shipline.domain.deployments import DeploymentKind, DeploymentState, GateState
from shipline.domain.transitions import InvalidTransition
from shipline.store.ports import Conflict, NewDeployment, NewGate, NewJob, NewRelease, NewRun
from shipline.store.sql import SqlStore
from tests.contract.store_backends import pg_database, url

__all__ = ["pg_database", "url"]

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    yield opened
    opened.close()


def _release(project_id: int, run_id: int, digest: str = "sha256:aa") -> NewRelease:
    return NewRelease(
        project_id=project_id,
        artifact="app",
        digest=digest,
        provenance="sha256:pp",
        run_id=run_id,
        job_key="build",
        ref="refs/heads/main",
        sha="c" * 40,
        builder="urn:b",
        created_by="alice",
    )


def _deployment(project_id: int, release_id: int, run_id: int | None) -> NewDeployment:
    return NewDeployment(
        project_id=project_id,
        environment="production",
        release_id=release_id,
        kind=DeploymentKind.DEPLOY,
        actor="alice",
        ref="refs/heads/main",
        sha="c" * 40,
        run_id=run_id,
    )


def test_environments_and_releases(store: SqlStore) -> None:
    with store.transaction() as tx:
        project = tx.projects.create("web", "/srv/web")
        tx.environments.record(project.id, "production", "a" * 40, now=T0)
        tx.environments.record(project.id, "production", "b" * 40, now=T0 + timedelta(1))
        tx.environments.record(project.id, "staging", "a" * 40, now=T0)
        envs = tx.environments.for_project(project.id)
        assert [(e.name, e.source_sha) for e in envs] == [
            ("production", "b" * 40),
            ("staging", "a" * 40),
        ]
        first = tx.releases.create(_release(project.id, 7), now=T0)
        again = tx.releases.create(_release(project.id, 7), now=T0 + timedelta(1))
        other = tx.releases.create(_release(project.id, 7, "sha256:bb"), now=T0)
        assert again == first
        assert other.id != first.id
        assert tx.releases.get(first.id) == first
        assert first.created_at == T0
        assert tx.releases.get(999) is None


def test_deployments_queue_history_and_progress(store: SqlStore) -> None:
    with store.transaction() as tx:
        project = tx.projects.create("web", "/srv/web")
        release = tx.releases.create(_release(project.id, 1), now=T0)
        a = tx.deployments.create(_deployment(project.id, release.id, 1), now=T0)
        b = tx.deployments.create(_deployment(project.id, release.id, 2), now=T0)
        assert a.state is DeploymentState.QUEUED and a.finished_at is None
        assert [d.id for d in tx.deployments.unfinished(lock=True)] == [a.id, b.id]
        started = tx.deployments.set_state(a.id, DeploymentState.IN_PROGRESS, now=T0)
        assert started.started_at == T0
        with pytest.raises(InvalidTransition):
            tx.deployments.set_state(a.id, DeploymentState.QUEUED, now=T0)
        done = tx.deployments.set_state(
            a.id, DeploymentState.SUCCESS, now=T0 + timedelta(minutes=1)
        )
        assert done.finished_at == T0 + timedelta(minutes=1)
        with pytest.raises(InvalidTransition):
            tx.deployments.set_state(a.id, DeploymentState.FAILURE, now=T0)
        skipped = tx.deployments.set_state(
            b.id, DeploymentState.SKIPPED, now=T0, reason="superseded"
        )
        assert skipped.reason == "superseded"
        assert tx.deployments.unfinished() == []
        assert tx.deployments.last_success(project.id, "production") == done
        assert tx.deployments.last_success(project.id, "staging") is None
        page = tx.deployments.page(project.id, "production", limit=1)
        assert [d.id for d in page.items] == [b.id]
        rest = tx.deployments.page(project.id, "production", limit=1, cursor=page.next_cursor)
        assert [d.id for d in rest.items] == [a.id] and rest.next_cursor is None
        assert tx.deployments.page(project.id, "staging").items == []
        one = tx.deployments.add_progress(a.id, "started", now=T0)
        two = tx.deployments.add_progress(a.id, "done", now=T0)
        assert tx.deployments.progress(a.id) == [(one, "started"), (two, "done")]
        assert tx.deployments.progress(a.id, after=one) == [(two, "done")]
        assert tx.deployments.progress(b.id) == []


def test_gates_are_decided_once_with_one_decision_per_user(store: SqlStore) -> None:
    with store.transaction() as tx:
        project = tx.projects.create("web", "/srv/web")
        run = tx.runs.create(
            NewRun(project.id, "ci.yml", "ci", "", "push", "refs/heads/main", "c" * 40, "a"),
            now=T0,
        )
        [job] = tx.jobs.create(run.id, 1, [NewJob("prod", "prod", "prod")], now=T0)
        gate = tx.gates.create(
            NewGate(project.id, run.id, job.id, "production", "alice", run.ref, run.sha, 2),
            now=T0,
        )
        assert gate.state is GateState.WAITING and gate.decided_at is None
        with pytest.raises(Conflict):
            tx.gates.create(
                NewGate(project.id, run.id, job.id, "production", "alice", run.ref, run.sha, 1),
                now=T0,
            )
    with store.transaction() as tx:
        assert tx.gates.for_job(job.id) == gate
        assert tx.gates.for_run(run.id) == [gate]
        assert tx.gates.waiting() == [gate]
        assert tx.gates.waiting([project.id + 1]) == []
        tx.gates.decide(gate.id, "bob", "approve", "ok", now=T0)
        with pytest.raises(Conflict):
            tx.gates.decide(gate.id, "bob", "approve", "twice", now=T0)
    with store.transaction() as tx:
        tx.gates.decide(gate.id, "carol", "approve", "", now=T0)
        assert [d.user for d in tx.gates.decisions(gate.id)] == ["bob", "carol"]
        tx.gates.set_wait(gate.id, T0 + timedelta(minutes=5))
        approved = tx.gates.set_state(gate.id, GateState.APPROVED, now=T0)
        assert approved.wait_until == T0 + timedelta(minutes=5)
        assert approved.decided_at == T0
        with pytest.raises(InvalidTransition):
            tx.gates.set_state(gate.id, GateState.REJECTED, now=T0)
        assert tx.gates.waiting() == []
