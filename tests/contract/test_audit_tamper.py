"""Tampering with audit rows directly in the database (SQLite and PostgreSQL): the chain
check names the first record affected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shipline.engine.audit import AuditTrail
from shipline.store.sql import SqlStore
from tests.contract.store_backends import pg_database, url

__all__ = ["pg_database", "url"]

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    with opened.transaction() as tx:
        for i in range(6):
            tx.audit.append(
                actor="alice",
                action=f"secret.set.{i}",
                now=T0 + timedelta(seconds=i),
                target=f"K{i}",
                data={"name": f"K{i}", "n": i},
            )
    yield opened
    opened.close()


def tamper(store: SqlStore, statement: str) -> None:
    with store.transaction() as tx:
        tx.audit._conn.execute(text(statement))  # type: ignore[attr-defined]


def test_an_intact_trail_verifies_with_its_head(store: SqlStore) -> None:
    verdict = AuditTrail(store).verify()
    assert verdict.broken is None
    assert verdict.records == 6
    assert len(verdict.head) == 64


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory' WHERE id = 4",
        "UPDATE audit_events SET decision = 'denied' WHERE id = 4",
        "UPDATE audit_events SET target = 'K9' WHERE id = 4",
    ],
)
def test_an_edited_row_is_reported_at_that_row(store: SqlStore, statement: str) -> None:
    tamper(store, statement)
    verdict = AuditTrail(store).verify()
    assert verdict.broken is not None
    assert verdict.broken.record_id == 4
    assert verdict.broken.index == 3
    assert "edited" in verdict.broken.reason
    assert verdict.head == ""


def test_edited_json_data_is_reported(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.audit._conn.execute(  # type: ignore[attr-defined]
            text("UPDATE audit_events SET data = :d WHERE id = 2"),
            {"d": '{"name": "K1", "n": 99}'},
        )
    broken = AuditTrail(store).verify().broken
    assert broken is not None and broken.record_id == 2


def test_a_deleted_row_is_reported_at_the_next_one(store: SqlStore) -> None:
    tamper(store, "DELETE FROM audit_events WHERE id = 3")
    broken = AuditTrail(store).verify().broken
    assert broken is not None
    assert broken.record_id == 4
    assert "deleted, inserted or moved" in broken.reason


def test_deleting_the_first_row_is_reported(store: SqlStore) -> None:
    tamper(store, "DELETE FROM audit_events WHERE id = 1")
    broken = AuditTrail(store).verify().broken
    assert broken is not None and broken.record_id == 2
    assert "the start" in broken.reason


def test_swapped_rows_are_reported(store: SqlStore) -> None:
    # Give rows 2 and 3 each other's contents (ids stay in place: the order changed).
    columns = "at, actor, action, decision, target, reason, request_id, data, prev_hash, hash"
    with store.transaction() as tx:
        conn = tx.audit._conn  # type: ignore[attr-defined]
        two = conn.execute(text(f"SELECT {columns} FROM audit_events WHERE id = 2")).one()
        three = conn.execute(text(f"SELECT {columns} FROM audit_events WHERE id = 3")).one()
        for target, row in ((2, three), (3, two)):
            conn.execute(
                text(
                    "UPDATE audit_events SET at = :at, actor = :actor, action = :action, "
                    "target = :target, prev_hash = :prev_hash, hash = :hash WHERE id = :id"
                ),
                {**row._asdict(), "id": target},
            )
    broken = AuditTrail(store).verify().broken
    assert broken is not None and broken.record_id == 2


def test_signed_checkpoints_catch_a_rewrite_with_recomputed_hashes(store: SqlStore) -> None:
    import dataclasses

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shipline.domain.audit_chain import chain_hash
    from shipline.testing import FrozenClock

    key = Ed25519PrivateKey.generate()
    trail = AuditTrail(store)
    checkpoint = trail.checkpoint(key, FrozenClock())
    assert checkpoint is not None and checkpoint.target == "audit:6"
    assert trail.checkpoint(key, FrozenClock()) is None  # nothing new since
    assert trail.verify(key.public_key()).checkpoints == 1
    # A forger edits record 3 and recomputes every hash after it (they cannot sign).
    with store.transaction() as tx:
        records = list(tx.audit.iterate())
        conn = tx.audit._conn  # type: ignore[attr-defined]
        prev = records[1].hash
        for record in records[2:]:
            changed = record if record.id != 3 else dataclasses.replace(record, actor="mallory")
            changed = dataclasses.replace(changed, prev_hash=prev, hash="")
            new_hash = chain_hash(prev, changed)
            conn.execute(
                text("UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE id = :i"),
                {"a": changed.actor, "p": prev, "h": new_hash, "i": record.id},
            )
            prev = new_hash
    assert trail.verify().broken is None  # the links alone look fine
    broken = trail.verify(key.public_key()).broken
    assert broken is not None and broken.record_id == checkpoint.id
    assert "rewritten" in broken.reason
    other = Ed25519PrivateKey.generate()
    forged = trail.verify(other.public_key()).broken
    assert forged is not None and "not the server's" in forged.reason
