"""Checking and exporting the audit trail as a whole (`shipline audit verify|export`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from shipline.domain.audit_chain import ChainBreak, first_break
from shipline.domain.records import AuditRecord
from shipline.store.ports import Store


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """The chain checked: how many records, the head's hash (compare it with a copy kept
    elsewhere to notice records removed from the end), and the first break if any."""

    records: int
    head: str
    broken: ChainBreak | None


class AuditTrail:
    """Reads the whole chain in one read transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def verify(self) -> AuditVerdict:
        count = 0
        head = ""

        def tracked(records: Iterator[AuditRecord]) -> Iterator[AuditRecord]:
            nonlocal count, head
            for record in records:
                count += 1
                head = record.hash
                yield record

        with self._store.transaction(write=False) as tx:
            broken = first_break(tracked(tx.audit.iterate()))
        return AuditVerdict(count, "" if broken else head, broken)

    def export(self, since: datetime | None = None) -> list[AuditRecord]:
        """Every record (at or after `since`), oldest first."""
        with self._store.transaction(write=False) as tx:
            return [r for r in tx.audit.iterate() if since is None or r.at >= since]
