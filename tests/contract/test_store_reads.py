"""The store contract's additions for the server's hot paths, on SQLite and PostgreSQL:
a run locked for a change, an attempt's progress counts, the steps of many jobs at once,
and one read transaction shared by a request (`Store.reading`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from shipline.domain.records import StepRecord
from shipline.domain.status import Conclusion, Status
from shipline.store.ports import NewJob, NewRun
from shipline.store.sql import SqlStore
from tests.contract.store_backends import empty_url, pg_database, url

__all__ = ["empty_url", "pg_database", "url"]  # fixtures, imported to be found

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)  # migrated already
    yield opened
    opened.close()


def a_run(store: SqlStore, jobs: int = 0) -> tuple[int, list[int]]:
    with store.transaction() as tx:
        project = tx.projects.create("web", "/srv/git/web")
        run = tx.runs.create(
            NewRun(
                project_id=project.id,
                workflow_file="ci.yml",
                workflow_name="CI",
                workflow_text="on: push\n",
                event="push",
                ref="refs/heads/main",
                sha="a" * 40,
                actor="alice",
            ),
            now=T0,
        )
        new = [NewJob(key=f"j{i}", job_id=f"j{i}", name=f"j{i}") for i in range(jobs)]
        created = tx.jobs.create(run.id, 1, new, now=T0)
    return run.id, [job.id for job in created]


def test_a_locked_run_is_changed_by_one_transaction_at_a_time(store: SqlStore) -> None:
    run_id, _ = a_run(store)
    with store.transaction() as tx:
        assert tx.runs.lock(run_id + 1) is None
    locked = threading.Event()
    seen: list[Status] = []

    def first() -> None:
        with store.transaction() as tx:
            run = tx.runs.lock(run_id)
            assert run is not None and run.status is Status.QUEUED
            locked.set()
            time.sleep(0.3)  # the second transaction is waiting for the lock meanwhile
            tx.runs.set_status(run_id, Status.IN_PROGRESS, now=T0)

    def second() -> None:
        locked.wait()
        with store.transaction() as tx:
            run = tx.runs.lock(run_id)
            assert run is not None
            seen.append(run.status)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [Status.IN_PROGRESS]  # read after the first committed, not before


def test_progress_counts_an_attempts_jobs_and_the_completed_ones(store: SqlStore) -> None:
    run_id, jobs = a_run(store, jobs=3)
    with store.transaction() as tx:
        assert tx.jobs.progress(run_id, 1) == (3, 0)
        assert tx.jobs.progress(run_id, 2) == (0, 0)
        tx.jobs.set_status(jobs[0], Status.IN_PROGRESS, now=T0)
        tx.jobs.set_status(jobs[1], Status.COMPLETED, Conclusion.CANCELLED, now=T0)
        assert tx.jobs.progress(run_id, 1) == (3, 1)


def test_steps_of_many_jobs_in_one_read(store: SqlStore) -> None:
    _, jobs = a_run(store, jobs=3)
    with store.transaction() as tx:
        for index in (1, 0):
            tx.steps.upsert(
                StepRecord(jobs[0], index, f"s{index}", f"step {index}", Status.IN_PROGRESS)
            )
        tx.steps.upsert(StepRecord(jobs[2], 0, "s0", "step 0", Status.IN_PROGRESS))
    with store.transaction(write=False) as tx:
        found = tx.steps.for_jobs([jobs[0], jobs[1], jobs[2]])
        assert tx.steps.for_jobs([]) == {}
    assert [s.index for s in found[jobs[0]]] == [0, 1]
    assert found[jobs[1]] == []
    assert [s.key for s in found[jobs[2]]] == ["s0"]


def test_reads_inside_reading_share_one_transaction(store: SqlStore) -> None:
    run_id, _ = a_run(store)
    with store.reading():
        with store.transaction(write=False) as one, store.transaction(write=False) as two:
            assert one is two
        with store.transaction() as write:  # a write is a transaction of its own
            assert write is not one
            write.runs.set_status(run_id, Status.IN_PROGRESS, now=T0)
        with store.reading(), store.transaction(write=False) as nested:
            assert nested is one
    with store.transaction(write=False) as after:
        assert after is not one
        run = after.runs.get(run_id)
    assert run is not None and run.status is Status.IN_PROGRESS  # the write committed
