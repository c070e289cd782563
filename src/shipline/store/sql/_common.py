"""What the SQL repositories share: cursors, error mapping, savepoints, paging."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, Insert, Row, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from shipline.domain.errors import ShiplineError
from shipline.store.ports import Conflict, NotFound, Page

T = TypeVar("T")

_CURSOR_PREFIX = "id:"


def insert_new(table: Table, key: Sequence[str], returned: Column[Any]) -> dict[str, Insert]:
    """Per dialect, an insert into `table` that skips a row whose `key` columns are stored
    already (ON CONFLICT DO NOTHING) and returns `returned` of a row it inserted: no row
    back means there was one. Built once, at import."""
    return {
        "postgresql": postgresql.insert(table)
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(returned),
        "sqlite": sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(returned),
    }


class InvalidCursor(ShiplineError, ValueError):
    """A cursor this store did not hand out (or one altered on the way)."""


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for "after the item with id `last_id`"."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor from `encode_cursor` stands for; `InvalidCursor` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith(_CURSOR_PREFIX):
            return int(text.removeprefix(_CURSOR_PREFIX))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidCursor(f"invalid cursor {cursor!r}")


def newest_first(
    conn: Connection,
    query: Select[Any],
    id_column: Column[Any],
    to_record: Callable[[Row[Any]], T],
    *,
    limit: int,
    cursor: str | None,
) -> Page[T]:
    """One page of `query`'s rows by descending id, after `cursor`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if cursor is not None:
        query = query.where(id_column < decode_cursor(cursor))
    rows = conn.execute(query.order_by(id_column.desc()).limit(limit + 1)).all()
    items = [to_record(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(rows[limit - 1].id) if more else None)


def _violation(exc: IntegrityError) -> str:
    """ "unique", "foreign_key" or "other", from PostgreSQL's SQLSTATE or SQLite's message."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    message = str(exc.orig)
    if sqlstate == "23505" or "UNIQUE constraint failed" in message:
        return "unique"
    if sqlstate == "23503" or "FOREIGN KEY constraint failed" in message:
        return "foreign_key"
    return "other"


@contextmanager
def guarded(conn: Connection, what: str, *, savepoint: bool = True) -> Iterator[None]:
    """Run inserts/updates in a savepoint; map constraint violations to store errors.

    The savepoint keeps the surrounding transaction usable after a `Conflict` (PostgreSQL
    aborts a whole transaction on an error otherwise). SQLite needs none: a statement that
    violates a constraint is undone alone, and its transaction goes on. `savepoint=False`
    is for a statement whose violation no caller recovers from (its transaction fails with
    the store error): it spares PostgreSQL two round trips.
    """
    try:
        if conn.dialect.name == "sqlite" or not savepoint:
            yield
        else:
            with conn.begin_nested():
                yield
    except IntegrityError as exc:
        kind = _violation(exc)
        if kind == "unique":
            raise Conflict(f"{what} exists already") from exc
        if kind == "foreign_key":
            raise NotFound(f"{what}: something it refers to does not exist") from exc
        raise


R = TypeVar("R")


def one_or_missing(row: R | None, what: str) -> R:
    """`row`, or `NotFound` naming `what` when there is none."""
    if row is None:
        raise NotFound(f"{what} does not exist")
    return row


def strs(value: object) -> tuple[str, ...]:
    """A JSON list of strings read back as a tuple."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(str(v) for v in value)


def utc(value: datetime) -> datetime:
    """`value` as aware UTC (a naive value is taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def labelled(table: Table, prefix: str) -> list[Any]:
    """`table`'s columns labelled `prefix` + name: selected beside another table's (an
    outer join), read back with `unlabelled`."""
    return [column.label(prefix + column.name) for column in table.c]


def unlabelled(row: Row[Any], table: Table, prefix: str) -> SimpleNamespace | None:
    """The `labelled` columns of `table` in `row`, named as in the table, for the table's
    record builder; None when the outer join found no row (its key is null)."""
    values = row._mapping
    if values[prefix + "id"] is None:
        return None
    return SimpleNamespace(**{column.name: values[prefix + column.name] for column in table.c})
