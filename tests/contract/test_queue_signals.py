"""The contract of the store's `QueueSignals` on SQLite and PostgreSQL: a commit that
queued a job or stopped one signals this process's listeners, a rolled-back one does not;
on PostgreSQL a second store (another server) hears it too, through LISTEN/NOTIFY."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest

from shipline.store.ports import SIGNAL_QUEUED, SIGNAL_STOP
from shipline.store.sql import SqlStore
from tests.contract.store_backends import pg_database, url
from tests.contract.test_store_contract import T0

__all__ = ["pg_database", "url"]


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    yield opened
    opened.close()


def heard(store: SqlStore) -> queue.Queue[str]:
    got: queue.Queue[str] = queue.Queue()
    store.signals.listen(got.put)
    if store.signals.reaches_other_processes:
        assert store.signals.listening.wait(10), "the store never ran LISTEN"
    return got


def settle(store: SqlStore, commits: int) -> None:
    """On PostgreSQL the store also hears its own commits through LISTEN: wait for them
    (they arrive in commit order), so that what a later step drains is that step's."""
    if not store.signals.reaches_other_processes:
        return
    deadline = time.monotonic() + 10
    while store.signals.received < commits:
        assert time.monotonic() < deadline, "a notification never arrived"
        time.sleep(0.01)


def drain(got: queue.Queue[str]) -> set[str]:
    seen = set()
    while not got.empty():
        seen.add(got.get_nowait())
    return seen


def test_a_commit_signals_and_a_rollback_does_not(store: SqlStore) -> None:
    got = heard(store)
    with store.transaction() as tx:
        tx.events.publish("job.queued", now=T0, run_id=None, job_id=None)
        tx.events.publish("job.queued", now=T0)
        tx.events.publish("log", now=T0)
        assert got.empty()  # not before the commit
    settle(store, 1)
    assert drain(got) == {SIGNAL_QUEUED}

    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.events.publish("job.cancel", now=T0)
        raise RuntimeError("rolled back")
    with store.transaction() as tx:
        tx.events.publish("log", now=T0)
    with store.transaction() as tx:  # a fence: what came before it has arrived
        tx.events.publish("job.retried", now=T0)
    settle(store, 2)
    assert drain(got) == {SIGNAL_QUEUED}  # no stop: the cancel was rolled back

    with store.transaction() as tx:
        tx.events.publish("job.cancel", now=T0)
    settle(store, 3)
    assert drain(got) == {SIGNAL_STOP}


def test_a_listener_stops_when_told(store: SqlStore) -> None:
    got: queue.Queue[str] = queue.Queue()
    stop = store.signals.listen(got.put)
    stop()
    with store.transaction() as tx:
        tx.events.publish("job.retried", now=T0)
    assert got.empty()


def test_another_server_hears_a_commit_through_postgresql(store: SqlStore, url: str) -> None:
    if not store.signals.reaches_other_processes:
        pytest.skip("SQLite's signals stay in the process that commits (one server)")
    other = SqlStore(url, create=False)
    try:
        got = heard(other)
        assert other.signals.listening.wait(10), "the other store never ran LISTEN"
        with store.transaction() as tx:
            tx.events.publish("job.queued", now=T0)
        assert got.get(timeout=10) == SIGNAL_QUEUED
        assert other.signals.received >= 1  # it came over the database, not in-process
    finally:
        other.close()
