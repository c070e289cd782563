"""The `SecretStore` contract on SQLite and PostgreSQL, and sealing against the real rows:
a ciphertext moved to another row no longer opens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shipline.security.sealing import Keyring, MasterKey, Sealed, SealError, associated_data
from shipline.store.ports import SealedValue
from shipline.store.sql import SqlStore
from tests.contract.store_backends import pg_database, url

__all__ = ["pg_database", "url"]

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    yield opened
    opened.close()


def _sealed(keyring: Keyring, project_id: int, env: str, name: str, value: str) -> SealedValue:
    s = keyring.seal(value, associated_data(project_id, env, name))
    return SealedValue(s.key_id, s.nonce, s.ciphertext)


def test_put_get_list_delete_and_scope(store: SqlStore) -> None:
    keys = Keyring(MasterKey.generate())
    with store.transaction() as tx:
        web = tx.projects.create("web", "/srv/web").id
        api = tx.projects.create("api", "/srv/api").id
        record, created = tx.secrets.put(
            web, "", "TOKEN", _sealed(keys, web, "", "TOKEN", "v1-value"), actor="alice", now=T0
        )
        assert created
        assert (record.project_id, record.environment, record.name) == (web, "", "TOKEN")
        tx.secrets.put(
            web, "prod", "TOKEN", _sealed(keys, web, "prod", "TOKEN", "prod-v"), actor="bob", now=T0
        )
        tx.secrets.put(
            api, "", "TOKEN", _sealed(keys, api, "", "TOKEN", "api-v"), actor="c", now=T0
        )
    later = T0 + timedelta(minutes=5)
    with store.transaction() as tx:
        replaced, created = tx.secrets.put(
            web, "", "TOKEN", _sealed(keys, web, "", "TOKEN", "v2-value"), actor="carol", now=later
        )
        assert not created
        assert replaced.updated_by == "carol"
        assert replaced.updated_at == later
        assert replaced.created_at == T0
        listed = tx.secrets.for_project(web)
        assert [(r.environment, r.name) for r in listed] == [("", "TOKEN"), ("prod", "TOKEN")]
        opened = keys.open(
            Sealed(replaced.key_id, replaced.nonce, replaced.ciphertext),
            associated_data(web, "", "TOKEN"),
        )
        assert opened == "v2-value"
        assert tx.secrets.delete(web, "prod", "TOKEN")
        assert not tx.secrets.delete(web, "prod", "TOKEN")
        assert tx.secrets.get(web, "prod", "TOKEN") is None
        assert len(tx.secrets.all(lock=True)) == 2
    with store.transaction() as tx:
        tx.projects.delete(web)
    with store.transaction() as tx:
        assert [r.project_id for r in tx.secrets.all()] == [api]


def test_no_value_is_stored_in_clear_and_a_moved_ciphertext_does_not_open(
    store: SqlStore,
) -> None:
    keys = Keyring(MasterKey.generate())
    value = "canary-" + "x" * 20
    with store.transaction() as tx:
        web = tx.projects.create("web", "/srv/web").id
        tx.secrets.put(web, "", "A", _sealed(keys, web, "", "A", value), actor="a", now=T0)
        tx.secrets.put(web, "", "B", _sealed(keys, web, "", "B", "other-value"), actor="a", now=T0)
    with store.transaction() as tx:
        conn = tx.secrets._conn  # type: ignore[attr-defined]
        rows = conn.execute(text("SELECT name, nonce, ciphertext FROM secrets")).all()
        assert all(value.encode() not in bytes(r.ciphertext) for r in rows)
        a = next(r for r in rows if r.name == "A")
        # An attacker with database access copies A's ciphertext into B's row.
        conn.execute(
            text("UPDATE secrets SET nonce = :n, ciphertext = :c WHERE name = 'B'"),
            {"n": bytes(a.nonce), "c": bytes(a.ciphertext)},
        )
    with store.transaction() as tx:
        b = tx.secrets.get(web, "", "B")
        assert b is not None
        with pytest.raises(SealError, match="altered or belongs elsewhere"):
            keys.open(Sealed(b.key_id, b.nonce, b.ciphertext), associated_data(web, "", "B"))


def test_reseal_replaces_only_the_sealed_value(store: SqlStore) -> None:
    old, new = Keyring(MasterKey.generate()), Keyring(MasterKey.generate())
    with store.transaction() as tx:
        web = tx.projects.create("web", "/srv/web").id
        record, _ = tx.secrets.put(
            web, "", "A", _sealed(old, web, "", "A", "value-1"), actor="a", now=T0
        )
        tx.secrets.reseal(record.id, _sealed(new, web, "", "A", "value-1"))
        again = tx.secrets.get(web, "", "A")
    assert again is not None
    assert again.key_id == new.current.id != old.current.id
    assert again.updated_by == "a"
    sealed = Sealed(again.key_id, again.nonce, again.ciphertext)
    assert new.open(sealed, associated_data(web, "", "A")) == "value-1"
