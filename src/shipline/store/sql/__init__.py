"""The SQL store: one implementation of `store.ports` for SQLite and PostgreSQL.

`SqlStore(url)` opens (and migrates) a database; `store.transaction()` yields the
repositories of one transaction. Schema in `schema.py`, migrations in `migrations/`.
"""

from shipline.store.sql.migrations import current_revision, upgrade
from shipline.store.sql.store import SqlStore, SqlTransaction

__all__ = ["SqlStore", "SqlTransaction", "current_revision", "upgrade"]
