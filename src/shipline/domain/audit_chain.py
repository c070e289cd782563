"""The audit trail's hash chain: its canonical form, the hash of a link and its verifier.

Pure functions over `AuditRecord`s, so `shipline audit verify` can check an export as well
as the database. Each record's hash is `sha256(prev_hash || canonical(record))`, where the
canonical form is the sorted, compact JSON of every field except `hash`; editing, deleting,
inserting or reordering records breaks the chain at the first record affected. (Deleting
the newest records leaves a shorter valid chain: compare the head hash with one kept
elsewhere to detect that.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from shipline.domain.records import AuditRecord


def iso_utc(at: datetime) -> str:
    """ISO 8601 in UTC; a naive datetime is taken to be UTC already."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()


def canonical(record: AuditRecord) -> bytes:
    """The bytes a record's hash covers: every field but `hash`, as canonical JSON."""
    body = {
        "id": record.id,
        "at": iso_utc(record.at),
        "actor": record.actor,
        "action": record.action,
        "decision": record.decision,
        "project_id": record.project_id,
        "target": record.target,
        "reason": record.reason,
        "request_id": record.request_id,
        "data": record.data,
        "prev_hash": record.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def chain_hash(prev: str, record: AuditRecord) -> str:
    """The hash of `record` linked after a record whose hash is `prev` ("" for the first)."""
    return hashlib.sha256(prev.encode() + canonical(record)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where the chain breaks: the position of the record, its id, and what is wrong."""

    index: int
    record_id: int
    reason: str


def first_break(records: Iterable[AuditRecord]) -> ChainBreak | None:
    """The first record that breaks the chain, None when all are intact.

    A record breaks the chain when it does not point at the hash of the record before it
    (one was deleted, inserted or moved) or when its own hash does not match its contents
    (it was edited).
    """
    prev = ""
    previous_id: int | None = None
    for index, record in enumerate(records):
        if record.prev_hash != prev:
            after = "the start" if previous_id is None else f"record {previous_id}"
            return ChainBreak(
                index,
                record.id,
                f"record {record.id} does not link to {after}: a record was deleted, "
                "inserted or moved there",
            )
        if chain_hash(prev, record) != record.hash:
            return ChainBreak(
                index,
                record.id,
                f"record {record.id} does not match its hash: it was edited",
            )
        prev = record.hash
        previous_id = record.id
    return None


def verify(records: Iterable[AuditRecord]) -> int | None:
    """The index of the first record that breaks the chain (see `first_break`), None when
    all are intact."""
    broken = first_break(records)
    return None if broken is None else broken.index
