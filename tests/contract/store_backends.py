"""The databases the store contract suite runs on: a new SQLite file per test, and a
PostgreSQL database per test module, emptied before each test.

PostgreSQL is the one at 127.0.0.1:5432 (user `postgres`, trust auth); when it does not
answer, its tests are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from shipline.store.sql import upgrade
from shipline.store.sql.schema import metadata

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
BACKENDS = ["sqlite", "postgresql"]


def pg_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it answers."""
    try:
        with psycopg.connect(PG_SERVER, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at 127.0.0.1:5432 does not answer ({exc})".strip()


def pg_execute(statement: sql.Composed) -> None:
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(statement)


def create_pg_database() -> str:
    """A new, empty database with a unique name."""
    name = f"shipline_test_{uuid.uuid4().hex[:12]}"
    pg_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_pg_database(name: str) -> None:
    pg_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def unavailable(reason: str) -> None:
    """Skip only when asked to (SHIPLINE_TEST_POSTGRES=skip): otherwise a missing
    PostgreSQL fails the run instead of hiding half of the store suite."""
    if os.environ.get("SHIPLINE_TEST_POSTGRES") == "skip":
        pytest.skip(reason)
    pytest.fail(f"PostgreSQL is needed: {reason} (scripts/test starts or installs it)")


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A migrated PostgreSQL database for a module's tests, emptied before each test.

    (Creating a database per test costs a second of checkpoints; deleting rows costs
    milliseconds.)
    """
    reason = pg_unavailable()
    if reason is not None:
        unavailable(reason)
    name = create_pg_database()
    try:
        upgrade(PG_URL.format(name=name))
        yield name
    finally:
        drop_pg_database(name)


def empty_pg_tables(name: str) -> None:
    """Delete every row and restart the id sequences, as in a new database."""
    with psycopg.connect(PG_SERVER.rsplit("/", 1)[0] + f"/{name}") as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
            if "id" not in table.c:
                continue
            conn.execute(
                "SELECT setval(s, 1, false) FROM pg_get_serial_sequence(%s, 'id') AS s"
                " WHERE s IS NOT NULL",
                (table.name,),
            )


@pytest.fixture(params=BACKENDS)
def empty_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of an empty, never migrated database of the test's backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db')}/store.db"
        return
    reason = pg_unavailable()
    if reason is not None:
        unavailable(reason)
    name = create_pg_database()
    try:
        yield PG_URL.format(name=name)
    finally:
        drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a migrated, empty database of the test's backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "store.db"
        upgrade(f"sqlite:///{path}")
        yield f"sqlite:///{path}"
        return
    name: str = request.getfixturevalue("pg_database")
    empty_pg_tables(name)
    yield PG_URL.format(name=name)
