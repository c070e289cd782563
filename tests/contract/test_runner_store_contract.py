"""The contract of `RunnerStore` and `ScheduleStore` on SQLite and PostgreSQL: runners,
assignments, cancellations, and races decided by the database (a lost lease handled once,
a schedule's tick fired once)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from shipline.domain.records import TokenKind
from shipline.domain.runners import AssignmentRecord, AssignmentState
from shipline.domain.status import Conclusion, Status
from shipline.store.ports import Store
from shipline.store.sql import SqlStore
from tests.contract.store_backends import pg_database, url
from tests.contract.test_store_contract import T0, in_threads, queued_jobs

__all__ = ["pg_database", "url"]


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    yield opened
    opened.close()


def a_runner(store: Store, name: str = "r1", labels: tuple[str, ...] = ("linux",)) -> int:
    with store.transaction() as tx:
        token = tx.tokens.create(TokenKind.RUNNER, name, f"hash-{name}", now=T0)
        return tx.runners.create(name, labels, "1.0", 2, token.id, now=T0).id


def a_token(store: Store, job_id: int, n: int = 0) -> int:
    with store.transaction() as tx:
        return tx.tokens.create(TokenKind.JOB, "j", f"job-{job_id}-{n}", now=T0, job_id=job_id).id


def an_assignment(store: Store) -> AssignmentRecord:
    """A running assignment: a runner's try of a queued job, with the job's token."""
    runner_id = a_runner(store)
    (job_id,) = queued_jobs(store, 1)
    token_id = a_token(store, job_id)
    with store.transaction() as tx:
        return tx.runners.assign(runner_id, job_id, 1, token_id, now=T0)


def test_runners_are_created_found_updated_and_removed(store: SqlStore) -> None:
    runner_id = a_runner(store, labels=("linux", "gpu"))
    with store.transaction() as tx:
        runner = tx.runners.get(runner_id)
        assert runner is not None
        assert (runner.name, runner.labels, runner.version, runner.slots) == (
            "r1",
            ("linux", "gpu"),
            "1.0",
            2,
        )
        # the runner's credential is found with its runner, in one read
        credential = tx.tokens.find("hash-r1")
        assert credential is not None and credential.runner == runner
        assert (credential.user, credential.job_status) == (None, None)
        seen = tx.runners.update(runner_id, last_seen_at=T0, labels=["x"], paused=True)
        assert (seen.labels, seen.paused, seen.last_seen_at) == (("x",), True, T0)
        tx.runners.update(runner_id, removed_at=T0)
        assert tx.runners.all() == []
        assert [r.id for r in tx.runners.all(include_removed=True)] == [runner_id]
        assert tx.runners.get(999) is None


def test_an_assignment_ends_once(store: SqlStore) -> None:
    made = an_assignment(store)
    runner_id, job_id, token_id = made.runner_id, made.job_id, made.token_id
    with store.transaction() as tx:
        assert tx.runners.assignment_by_token(token_id) == made
        assert made.state is AssignmentState.RUNNING
    results: list[bool] = []

    def end(i: int) -> None:
        with store.transaction() as tx:
            results.append(tx.runners.end_assignment(made.id, AssignmentState.LOST, now=T0))

    in_threads(end)
    assert sorted(results) == [False] * 7 + [True]
    with store.transaction() as tx:
        (found,) = tx.runners.assignments(job_id=job_id)
        assert found.state is AssignmentState.LOST
        assert tx.runners.assignments(runner_id=runner_id, state=AssignmentState.RUNNING) == []


def test_an_assignment_ends_once_by_its_token(store: SqlStore) -> None:
    made = an_assignment(store)
    token_id = made.token_id
    with store.transaction() as tx:
        assert tx.runners.end_by_token(token_id + 1, AssignmentState.FINISHED, now=T0) is None
    later = T0 + timedelta(seconds=5)
    results: list[AssignmentRecord | None] = []

    def end(i: int) -> None:
        with store.transaction() as tx:
            results.append(tx.runners.end_by_token(token_id, AssignmentState.FINISHED, now=later))

    in_threads(end)
    ended = [r for r in results if r is not None]
    assert len(results) == 8 and len(ended) == 1
    assert ended[0] == replace(made, state=AssignmentState.FINISHED, ended_at=later)
    with store.transaction() as tx:
        assert tx.runners.assignment_by_token(token_id) == ended[0]


def test_cancelled_names_jobs_told_to_stop_after_their_claim(store: SqlStore) -> None:
    runner_id = a_runner(store)
    a, b, c = queued_jobs(store, 3)
    with store.transaction() as tx:
        # a cancel published before the claim (for an earlier try) does not count
        tx.events.publish("job.cancel", now=T0, job_id=a)
    with store.transaction() as tx:
        for _ in (a, b, c):
            tx.jobs.claim("runner:1", None, lease_seconds=30, now=T0)
        for n, job_id in enumerate((a, b, c)):
            token = tx.tokens.create(TokenKind.JOB, "j", f"h{n}", now=T0, job_id=job_id)
            tx.runners.assign(runner_id, job_id, 1, token.id, now=T0)
        assert tx.runners.cancelled([a, b, c]) == set()
        tx.events.publish("job.cancel", now=T0, job_id=b)
        tx.jobs.set_status(c, Status.COMPLETED, Conclusion.CANCELLED, now=T0)
        assert tx.runners.cancelled([a, b, c]) == {b, c}
        assert tx.runners.cancelled([]) == set()


def test_each_job_is_claimed_and_assigned_once_under_concurrency(store: SqlStore) -> None:
    runner_id = a_runner(store)
    jobs = queued_jobs(store, 24)
    got: list[int] = []

    def claim(i: int) -> None:
        while True:
            with store.transaction() as tx:
                job = tx.jobs.claim(f"runner:{i}", None, lease_seconds=30, now=T0)
                if job is None:
                    return
                token = tx.tokens.create(TokenKind.JOB, "j", f"t{job.id}", now=T0, job_id=job.id)
                tx.runners.assign(runner_id, job.id, job.tries, token.id, now=T0)
            got.append(job.id)

    in_threads(claim)
    assert sorted(got) == sorted(jobs)
    with store.transaction() as tx:
        assert len(tx.runners.assignments(runner_id=runner_id)) == len(jobs)


def test_a_schedule_tick_is_claimed_by_one_caller(store: SqlStore) -> None:
    with store.transaction() as tx:
        project_id = tx.projects.create("p", "/srv/p").id
    wins: list[bool] = []

    def fire(i: int) -> None:
        with store.transaction() as tx:
            wins.append(tx.schedules.claim_fire(project_id, "ci.yml", "*/5 * * * *", T0))

    in_threads(fire)
    assert sorted(wins) == [False] * 7 + [True]
    with store.transaction() as tx:
        later = T0 + timedelta(minutes=5)
        assert tx.schedules.claim_fire(project_id, "ci.yml", "*/5 * * * *", later)
