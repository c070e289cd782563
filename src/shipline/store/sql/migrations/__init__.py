"""Schema migrations of the SQL store (Alembic), run from code: no alembic.ini needed.

`upgrade(url)` brings a database to the newest revision (safe to call on every start, and
from several processes at once: SQLite serialises them with BEGIN IMMEDIATE, PostgreSQL with
an advisory lock). Revisions in `versions/` are written by hand to match `schema.py`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from shipline.store.sql.engine import WRITE_OPTION, make_engine

HERE = Path(__file__).resolve().parent


def config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for this package's scripts, bound to `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str) -> None:
    """Run every migration the database at `url` has not had yet (none: nothing happens)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            command.upgrade(config(connection), "head")
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at; None when it was never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(**{WRITE_OPTION: False}) as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision among the scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config()).get_current_head()
