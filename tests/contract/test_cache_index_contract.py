"""The contract of the cache index (`CacheIndexStore`, through `DatabaseCacheStore`) on
SQLite and PostgreSQL: actions/cache's lookup rules (exact key, then the newest entry of
each restore prefix in order), version and scope isolation (a scope is project, ref and
trust class: `engine.trust.cache_scopes`), immutable entries, and one winner when servers
save the same key at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipline.domain.records import Trust
from shipline.engine.trust import cache_scopes
from shipline.store.blobs import BlobStore
from shipline.store.local import DatabaseCacheStore
from shipline.store.sql import SqlStore
from tests.contract.store_backends import pg_database, url
from tests.contract.test_store_contract import in_threads

__all__ = ["pg_database", "url"]


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)
    yield opened
    opened.close()


@pytest.fixture
def caches(store: SqlStore, tmp_path: Path) -> DatabaseCacheStore:
    return DatabaseCacheStore(BlobStore(tmp_path / "blobs"), store)


def archive(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / f"archive-{threading.get_ident()}.tgz"
    path.write_bytes(content)
    return path


def test_an_exact_key_comes_before_any_prefix(caches: DatabaseCacheStore, tmp_path: Path) -> None:
    caches.save("deps-linux-abc", "v1", "s", archive(tmp_path, b"exact"))
    caches.save("deps-linux-abcdef", "v1", "s", archive(tmp_path, b"newer"))
    entry = caches.lookup(["deps-linux-abc", "deps-"], "v1", "s")
    assert entry is not None and entry.key == "deps-linux-abc"
    assert caches.open_entry(entry).read_bytes() == b"exact"


def test_restore_keys_find_the_newest_of_each_prefix_in_order(
    caches: DatabaseCacheStore, tmp_path: Path
) -> None:
    caches.save("deps-linux-1", "v1", "s", archive(tmp_path, b"1"))
    caches.save("deps-linux-2", "v1", "s", archive(tmp_path, b"2"))
    caches.save("deps-mac-3", "v1", "s", archive(tmp_path, b"3"))
    found = caches.lookup(["deps-linux-9", "deps-linux-", "deps-"], "v1", "s")
    assert found is not None and found.key == "deps-linux-2"
    found = caches.lookup(["nothing", "deps-"], "v1", "s")
    assert found is not None and found.key == "deps-mac-3"
    assert caches.lookup(["nothing", "other-"], "v1", "s") is None
    assert caches.lookup([], "v1", "s") is None


def test_a_prefix_is_literal_and_case_sensitive(caches: DatabaseCacheStore, tmp_path: Path) -> None:
    caches.save("Deps-1", "v1", "s", archive(tmp_path, b"upper"))
    caches.save("a_b%c", "v1", "s", archive(tmp_path, b"odd"))
    assert caches.lookup(["deps-"], "v1", "s") is None  # SQLite's LIKE would match
    assert caches.lookup(["axb"], "v1", "s") is None  # `_` is no wildcard
    found = caches.lookup(["a_b%"], "v1", "s")
    assert found is not None and found.key == "a_b%c"


def test_version_and_scope_must_match(caches: DatabaseCacheStore, tmp_path: Path) -> None:
    trusted, _ = cache_scopes("app", "refs/heads/main", "main", Trust.TRUSTED)
    untrusted, restores = cache_scopes("app", "refs/heads/main", "main", Trust.UNTRUSTED)
    caches.save("k", "v1", untrusted, archive(tmp_path, b"poison"))
    # An untrusted run's entry, even on a ref named main, is not the trusted scope's.
    assert caches.lookup(["k"], "v1", trusted) is None
    caches.save("k", "v1", trusted, archive(tmp_path, b"good"))
    assert restores == (trusted,)
    assert caches.lookup(["k"], "v2", trusted) is None
    assert caches.lookup(["k"], "v1", "app@refs/pull/1/merge") is None
    entry = caches.lookup(["k"], "v1", trusted)
    assert entry is not None and caches.open_entry(entry).read_bytes() == b"good"


def test_entries_are_immutable_and_listed_newest_first(
    caches: DatabaseCacheStore, tmp_path: Path
) -> None:
    first = caches.save("k", "v1", "app@refs/heads/main", archive(tmp_path, b"first"))
    assert first is not None
    assert caches.save("k", "v1", "app@refs/heads/main", archive(tmp_path, b"second")) is None
    caches.save("j", "v1", "app@refs/heads/dev", archive(tmp_path, b"third"))
    caches.save("k", "v1", "other@refs/heads/main", archive(tmp_path, b"fourth"))
    assert caches.lookup(["k"], "v1", "app@refs/heads/main") == first
    listed = caches.listed("app@")
    assert [(e.scope, e.key) for e in listed] == [
        ("app@refs/heads/dev", "j"),
        ("app@refs/heads/main", "k"),
    ]
    assert listed[1].blob == first.blob and listed[1].size == len(b"first")
    assert listed[1].created > 0
    assert len(caches.listed()) == 3


@pytest.mark.parametrize("bad", ["", "a,b", "k" * 513])
def test_invalid_keys_are_refused(caches: DatabaseCacheStore, tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid cache key"):
        caches.save(bad, "v1", "s", archive(tmp_path, b"x"))


def test_one_save_wins_when_servers_race(
    store: SqlStore, url: str, tmp_path: Path, caches: DatabaseCacheStore
) -> None:
    # A second store object: another server process's connections.
    other = SqlStore(url, create=False)
    try:
        both = [caches, DatabaseCacheStore(BlobStore(tmp_path / "blobs"), other)]
        won: list[int] = []

        def save(i: int) -> None:
            path = tmp_path / f"race-{i}.tgz"
            path.write_bytes(f"content {i}".encode())
            if both[i % 2].save("race", "v1", "s", path) is not None:
                won.append(i)

        in_threads(save, 8)
        assert len(won) == 1
        entry = caches.lookup(["race"], "v1", "s")
        assert entry is not None
        assert caches.open_entry(entry).read_bytes() == f"content {won[0]}".encode()
    finally:
        other.close()
