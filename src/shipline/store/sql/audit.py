"""The audit trail and the event feed in the SQL store (`AuditStore`, `EventStore`).

Both are appended in id order, and a transaction that appends holds the feed's lock until
it commits. For the audit chain this keeps two transactions from linking to the same
previous record (forking the chain). For events it makes ids visible in commit order: with
a bare sequence, a follower that read up to id 12 could miss id 11 committed a moment
later. PostgreSQL takes one transaction-scoped advisory lock for both (one key, so the two
cannot deadlock each other); SQLite already holds the write lock (BEGIN IMMEDIATE).
Callers take row locks (status changes) before they publish or audit, as the state-change
path does, so that lock order is the same everywhere.

The chain's hash is defined in `shipline.domain.audit_chain`, which verifies it without
the database.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, text

from shipline.domain.audit_chain import chain_hash
from shipline.domain.records import JSON, AuditRecord, EventRecord
from shipline.store.ports import SIGNALLED_EVENTS, Page
from shipline.store.sql._common import newest_first, utc
from shipline.store.sql.schema import audit_events, events
from shipline.store.sql.signals import CHANNEL

# pg_advisory_xact_lock key that serialises audit and event appends ("shipline feed").
FEED_LOCK = 0x5348_4645
_ITERATE_BATCH = 1000
_NOTIFY = text("SELECT pg_notify(:channel, :signal)")
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# The hot statements, built once (a statement built per call costs its construction and
# its cache key every time).
_HEAD = select(audit_events.c.id, audit_events.c.hash).order_by(audit_events.c.id.desc()).limit(1)
_APPEND = insert(audit_events)
_PUBLISH = insert(events)
# Where a connection notes the transaction whose feed lock it holds.
_LOCKED_IN = "shipline_feed_locked_in"


def _plain(data: JSON | None) -> JSON:
    """`data` as it reads back from a JSON column, so the hash covers what is stored."""
    if data is None:
        return {}
    result: JSON = json.loads(json.dumps(data, default=str))
    return result


def _lock_feed(conn: Connection) -> None:
    """Hold the feed's lock until this transaction ends. Asked once per transaction: taken
    outside a savepoint, the lock is this transaction's until it ends (inside one, a
    rollback to the savepoint would release it, so it is asked for again each time)."""
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    if transaction is not None and conn.info.get(_LOCKED_IN) is transaction:
        return
    conn.execute(_LOCK, {"key": FEED_LOCK})
    if conn.get_nested_transaction() is None:
        conn.info[_LOCKED_IN] = transaction


def _writable(writes: bool, what: str) -> None:
    """A read-only transaction (`transaction(write=False)`, which runs without BEGIN on
    PostgreSQL) cannot hold the feed's lock: writing there is a programming error."""
    if not writes:
        raise RuntimeError(f"{what} was written in a read-only transaction")


def _audit(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        decision=row.decision,
        project_id=row.project_id,
        target=row.target,
        reason=row.reason,
        request_id=row.request_id,
        data=row.data,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _event(row: Row[Any]) -> EventRecord:
    return EventRecord(
        id=row.id, at=row.at, kind=row.kind, run_id=row.run_id, job_id=row.job_id, data=row.data
    )


class SqlAuditStore:
    """The append-only, hash-chained audit trail.

    A transaction's records are linked and written together at its end (`flush`, which
    `SqlStore` calls before the commit, or before this store reads): the feed's lock is
    then held from the last statement to the commit, not from the first record on.
    """

    def __init__(self, conn: Connection, *, writes: bool = True) -> None:
        self._conn = conn
        self._writes = writes
        # Appended in this transaction, not linked and written yet (`flush`).
        self._queued: list[dict[str, Any]] = []

    def append(
        self,
        *,
        actor: str,
        action: str,
        now: datetime,
        decision: str = "allowed",
        project_id: int | None = None,
        target: str = "",
        reason: str = "",
        request_id: str = "",
        data: JSON | None = None,
    ) -> None:
        self._queued.append(
            {
                "at": utc(now),
                "actor": actor,
                "action": action,
                "decision": decision,
                "project_id": project_id,
                "target": target,
                "reason": reason,
                "request_id": request_id,
                "data": _plain(data),
            }
        )

    def flush(self) -> None:
        """Link the records appended so far after the chain's head and write them, in one
        statement, under the feed's lock (which keeps two transactions from linking to
        the same head)."""
        if not self._queued:
            return
        _writable(self._writes, "an audit record")
        queued, self._queued = self._queued, []
        _lock_feed(self._conn)
        head = self._conn.execute(_HEAD).first()
        next_id, prev = (1, "") if head is None else (head.id + 1, head.hash)
        rows: list[dict[str, Any]] = []
        for values in queued:
            unhashed = AuditRecord(id=next_id, prev_hash=prev, **values)
            prev = chain_hash(prev, unhashed)
            rows.append(dataclasses.asdict(dataclasses.replace(unhashed, hash=prev)))
            next_id += 1
        self._conn.execute(_APPEND, rows)

    def page(
        self,
        *,
        project_id: int | None = None,
        action: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditRecord]:
        self.flush()
        query = select(audit_events)
        if project_id is not None:
            query = query.where(audit_events.c.project_id == project_id)
        if action is not None:
            query = query.where(audit_events.c.action == action)
        return newest_first(
            self._conn, query, audit_events.c.id, _audit, limit=limit, cursor=cursor
        )

    def iterate(self) -> Iterator[AuditRecord]:
        """Every record in chain order, read in batches (consume it inside the transaction)."""
        self.flush()
        after = 0
        while True:
            rows = self._conn.execute(
                select(audit_events)
                .where(audit_events.c.id > after)
                .order_by(audit_events.c.id)
                .limit(_ITERATE_BATCH)
            ).all()
            for row in rows:
                yield _audit(row)
            if len(rows) < _ITERATE_BATCH:
                return
            after = rows[-1].id


class SqlEventStore:
    """The feed of state changes live views follow, by increasing id.

    An event of `SIGNALLED_EVENTS` adds its queue signal to `pending` (the transaction's:
    `SqlStore` tells this process's listeners after the commit) and, on PostgreSQL, sends
    it with NOTIFY, which PostgreSQL delivers to the other servers at commit.
    """

    def __init__(
        self, conn: Connection, pending: set[str] | None = None, *, writes: bool = True
    ) -> None:
        self._conn = conn
        self._writes = writes
        self._pending = pending if pending is not None else set()
        # Published in this transaction, not written yet (`flush`).
        self._queued: list[dict[str, object]] = []

    def publish(
        self,
        kind: str,
        *,
        now: datetime,
        run_id: int | None = None,
        job_id: int | None = None,
        data: JSON | None = None,
    ) -> None:
        self._queued.append(
            {"at": now, "kind": kind, "run_id": run_id, "job_id": job_id, "data": _plain(data)}
        )
        signal = SIGNALLED_EVENTS.get(kind)
        if signal is not None and signal not in self._pending:
            self._pending.add(signal)
            if self._conn.dialect.name == "postgresql":
                self._conn.execute(_NOTIFY, {"channel": CHANNEL, "signal": signal})

    def flush(self) -> None:
        """Write the events published so far, in one statement, under the feed's lock
        (taken after every row lock of the transaction, as the module says)."""
        if not self._queued:
            return
        _writable(self._writes, "an event")
        queued, self._queued = self._queued, []
        _lock_feed(self._conn)
        self._conn.execute(_PUBLISH, queued)

    def since(
        self,
        after_id: int,
        *,
        run_id: int | None = None,
        job_id: int | None = None,
        limit: int = 500,
    ) -> list[EventRecord]:
        self.flush()
        query = select(events).where(events.c.id > after_id)
        if run_id is not None:
            query = query.where(events.c.run_id == run_id)
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        rows = self._conn.execute(query.order_by(events.c.id).limit(limit))
        return [_event(row) for row in rows]

    def last_id(self) -> int:
        self.flush()
        found = self._conn.execute(select(func.max(events.c.id))).scalar_one()
        return 0 if found is None else int(found)
