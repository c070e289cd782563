"""The source stores' contract (protection rules, webhook keys, deliveries, hosted pull
requests) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shipline.domain.records import Role
from shipline.domain.source import Forge, PullState, RefKind
from shipline.store.ports import Conflict, NotFound
from shipline.store.sql import SqlStore
from tests.contract.store_backends import empty_url, pg_database, url

__all__ = ["empty_url", "pg_database", "url"]

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    yield opened
    opened.close()


def a_project(store: SqlStore, name: str = "web") -> int:
    with store.transaction() as tx:
        return tx.projects.create(name, "hosted").id


def test_protection_rules_put_replace_list_delete(store: SqlStore) -> None:
    pid = a_project(store)
    other = a_project(store, "other")
    with store.transaction() as tx:
        main = tx.protections.put(
            pid,
            RefKind.BRANCH,
            "main",
            push_role=Role.MAINTAINER,
            allow_force_push=False,
            allow_deletion=False,
            now=T0,
        )
        tx.protections.put(
            pid,
            RefKind.TAG,
            "v*",
            push_role=Role.ADMIN,
            allow_force_push=False,
            allow_deletion=True,
            now=T0,
        )
        again = tx.protections.put(
            pid,
            RefKind.BRANCH,
            "main",
            push_role=Role.DEVELOPER,
            allow_force_push=True,
            allow_deletion=False,
            now=T0 + timedelta(1),
        )
    assert again.id == main.id
    assert again.push_role is Role.DEVELOPER and again.allow_force_push
    with store.transaction() as tx:
        rules = tx.protections.for_project(pid)
        assert [(r.kind, r.pattern) for r in rules] == [
            (RefKind.BRANCH, "main"),
            (RefKind.TAG, "v*"),
        ]
        assert rules[1].allow_deletion and rules[1].push_role is Role.ADMIN
        assert tx.protections.for_project(other) == []
        with pytest.raises(NotFound):
            tx.protections.delete(other, main.id)
        tx.protections.delete(pid, main.id)
        assert [r.pattern for r in tx.protections.for_project(pid)] == ["v*"]


def test_webhook_salt_is_set_and_replaced(store: SqlStore) -> None:
    pid = a_project(store)
    with store.transaction() as tx:
        assert tx.webhooks.salt(pid) is None
        tx.webhooks.set_salt(pid, "a" * 32, now=T0)
        assert tx.webhooks.salt(pid) == "a" * 32
        tx.webhooks.set_salt(pid, "b" * 32, now=T0)
        assert tx.webhooks.salt(pid) == "b" * 32


def test_a_delivery_id_is_stored_once_per_project_and_forge(store: SqlStore) -> None:
    pid = a_project(store)
    other = a_project(store, "other")
    with store.transaction() as tx:
        first = tx.deliveries.create(pid, Forge.GITHUB, "d-1", "push", b"{}", now=T0)
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.deliveries.create(pid, Forge.GITHUB, "d-1", "push", b"{}", now=T0)
    with store.transaction() as tx:  # another forge or project may use the same id
        tx.deliveries.create(pid, Forge.GITLAB, "d-1", "push", b"{}", now=T0)
        tx.deliveries.create(other, Forge.GITHUB, "d-1", "push", b"{}", now=T0)
        done = tx.deliveries.set_outcome(first.id, "processed", "2 runs", (4, 5))
        assert (done.outcome, done.detail, done.runs, done.redeliveries) == (
            "processed",
            "2 runs",
            (4, 5),
            0,
        )
        again = tx.deliveries.set_outcome(first.id, "ignored", redelivered=True)
        assert again.redeliveries == 1 and again.runs == ()
        assert tx.deliveries.body(first.id) == b"{}"
        found = tx.deliveries.find(pid, Forge.GITHUB, "d-1")
        assert found is not None and found.id == first.id
        assert tx.deliveries.find(pid, Forge.GITEA, "d-1") is None
        page = tx.deliveries.page(pid, limit=1)
        assert [d.forge for d in page.items] == [Forge.GITLAB]
        rest = tx.deliveries.page(pid, limit=5, cursor=page.next_cursor)
        assert [d.id for d in rest.items] == [first.id]
        with pytest.raises(NotFound):
            tx.deliveries.set_outcome(9999, "processed")


def test_pull_requests_are_numbered_per_project_and_change_state(store: SqlStore) -> None:
    pid = a_project(store)
    other = a_project(store, "other")
    with store.transaction() as tx:
        one = tx.pulls.create(
            pid,
            title="t",
            body="b",
            author="dev",
            head="feature",
            base="main",
            head_sha="a" * 40,
            base_sha="b" * 40,
            now=T0,
        )
        two = tx.pulls.create(
            pid,
            title="t2",
            body="",
            author="dev",
            head="feature",
            base="release",
            head_sha="a" * 40,
            base_sha="c" * 40,
            now=T0,
        )
        elsewhere = tx.pulls.create(
            other,
            title="x",
            body="",
            author="dev",
            head="feature",
            base="main",
            head_sha="a" * 40,
            base_sha="b" * 40,
            now=T0,
        )
    assert (one.number, two.number, elsewhere.number) == (1, 2, 1)
    assert one.state is PullState.OPEN and one.closed_at is None
    with store.transaction() as tx:
        assert [p.number for p in tx.pulls.open_for_head(pid, "feature")] == [1, 2]
        moved = tx.pulls.update(one.id, now=T0 + timedelta(1), head_sha="d" * 40)
        assert moved.head_sha == "d" * 40 and moved.updated_at == T0 + timedelta(1)
        closed = tx.pulls.update(two.id, now=T0 + timedelta(2), state=PullState.CLOSED)
        assert closed.closed_at == T0 + timedelta(2)
        assert [p.number for p in tx.pulls.open_for_head(pid, "feature")] == [1]
        got = tx.pulls.get(pid, 2)
        assert got is not None and got.state is PullState.CLOSED
        assert tx.pulls.get(pid, 3) is None
        assert [p.number for p in tx.pulls.page(pid).items] == [2, 1]


def test_poll_states_interval_and_compare_and_swap(store: SqlStore) -> None:
    pid = a_project(store)
    with store.transaction() as tx:
        assert tx.polls.get(pid) is None
        tx.polls.set_interval(pid, 60)
        tx.polls.set_interval(pid, 30)  # changes the interval, keeps one row
        state = tx.polls.get(pid)
    assert state is not None
    assert (state.interval, state.refs, state.generation) == (30, None, 0)
    refs = {"refs/heads/main": "a" * 40, "refs/tags/v1": "b" * 40}
    with store.transaction() as tx:
        assert tx.polls.save(pid, refs, generation=0, now=T0)
        assert not tx.polls.save(pid, {}, generation=0, now=T0)  # someone saved first
        saved = tx.polls.get(pid)
    assert saved is not None
    assert (saved.refs, saved.generation, saved.polled_at) == (refs, 1, T0)
    with store.transaction() as tx:
        assert [s.project_id for s in tx.polls.all()] == [pid]
        tx.polls.set_interval(pid, None)
        assert tx.polls.get(pid) is None and tx.polls.all() == []
