"""Alembic's environment for the SQL store: runs migrations on the connection it is given.

`shipline.store.sql.migrations.upgrade` passes a connection in `config.attributes`; the
migrations run in one transaction, which PostgreSQL also guards with an advisory lock so
that servers starting together migrate once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from shipline.store.sql.schema import metadata

# pg_advisory_xact_lock key of schema migrations ("shipline migrate").
MIGRATION_LOCK = 0x5348_4D49


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from shipline.store.sql.engine import make_engine

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass a connection or set sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.connect() as own:
            run(own)
    finally:
        engine.dispose()


main()
