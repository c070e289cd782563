"""Engines for the SQL store: SQLite tuned for one busy process, PostgreSQL for many.

SQLite: WAL (readers never block the writer), `synchronous=NORMAL` (durable at each
checkpoint, fast commits), foreign keys on, a busy timeout instead of immediate "database is
locked" errors. pysqlite's own transaction handling is switched off and SQLAlchemy emits
`BEGIN IMMEDIATE` itself, so each writing transaction takes the write lock when it starts:
transactions that read and then write (claiming a job, appending to the audit chain,
numbering a run) are serialised instead of failing on a stale snapshot. A connection marked
`WRITE_OPTION=False` begins with a plain deferred `BEGIN` (read-only work).

PostgreSQL: a pool with recycling; READ COMMITTED, with explicit row locks
(`FOR UPDATE [SKIP LOCKED]`) and advisory locks where order matters. No pre-ping: it is a
round trip before every transaction (a tenth of a remote job's server time); a connection
the database dropped fails its one transaction instead, and SQLAlchemy then discards the
pool's older connections, so a restarted PostgreSQL costs one failed request.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

# Execution option: does this connection's transaction write? (SQLite: BEGIN IMMEDIATE.)
WRITE_OPTION = "shipline_write"
BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str) -> Engine:
    """An engine for `url` (`sqlite:///path` or `postgresql+psycopg://...`)."""
    if is_sqlite(url):
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
        pool_timeout=30,
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError(
            "the SQL store needs a SQLite file (sqlite:///path): an in-memory database "
            "cannot be shared between the connections of a pool"
        )
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Leave BEGIN to SQLAlchemy (below): pysqlite would otherwise delay it past the
        # first SELECT and skip it before DDL and SAVEPOINT.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, True)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
