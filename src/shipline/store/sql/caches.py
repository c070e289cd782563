"""The cache index in the SQL store (`CacheIndexStore`).

The unique constraint on (scope, key, version) decides between two servers saving the same
key at once: the second insert fails and that save reports the entry as existing. A prefix
is compared with `substr`, not `LIKE`, which SQLite matches without regard to case and
which would read `%` and `_` in a key as wildcards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from shipline.domain.artifacts import CacheEntry, CacheInfo
from shipline.store.ports import Conflict
from shipline.store.sql._common import guarded
from shipline.store.sql.schema import cache_entries as t


def _entry(row: Row[Any]) -> CacheEntry:
    return CacheEntry(row.key, row.version, row.blob, int(row.size))


class SqlCacheIndexStore:
    """Saved caches, by scope, key and version."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, scope: str, version: str, keys: Sequence[str]) -> CacheEntry | None:
        if not keys:
            return None
        base = select(t).where(t.c.scope == scope, t.c.version == version)
        exact = self._conn.execute(base.where(t.c.key == keys[0])).first()
        if exact is not None:
            return _entry(exact)
        for prefix in keys:
            newest = self._conn.execute(
                base.where(func.substr(t.c.key, 1, len(prefix)) == prefix)
                .order_by(t.c.id.desc())
                .limit(1)
            ).first()
            if newest is not None:
                return _entry(newest)
        return None

    def add(
        self, scope: str, key: str, version: str, blob: str, size: int, *, now: datetime
    ) -> CacheEntry | None:
        values = {
            "scope": scope,
            "key": key,
            "version": version,
            "blob": blob,
            "size": size,
            "created_at": now,
        }
        try:
            with guarded(self._conn, f"cache {key!r}"):
                self._conn.execute(insert(t).values(values))
        except Conflict:
            return None
        return CacheEntry(key, version, blob, size)

    def listed(self, scope_prefix: str = "") -> list[CacheInfo]:
        query = select(t).order_by(t.c.id.desc())
        if scope_prefix:
            query = query.where(func.substr(t.c.scope, 1, len(scope_prefix)) == scope_prefix)
        return [
            CacheInfo(
                row.scope,
                row.key,
                row.version,
                int(row.size),
                row.created_at.timestamp(),
                row.blob,
            )
            for row in self._conn.execute(query)
        ]
