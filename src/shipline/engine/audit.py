"""Checking and exporting the audit trail as a whole (`shipline audit verify|export`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shipline.domain.audit_chain import ChainBreak, first_break
from shipline.domain.clock import Clock
from shipline.domain.records import AuditRecord
from shipline.security.checkpoints import CHECKPOINT_ACTION, checkpoint_problem, sign_checkpoint
from shipline.store.ports import Store


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """The chain checked: how many records, the head's hash (compare it with a copy kept
    elsewhere to notice records removed from the end), and the first break if any."""

    records: int
    head: str
    broken: ChainBreak | None
    checkpoints: int = 0  # signed checkpoints checked (0 when no key was given)
    last_checkpoint_id: int | None = None


class AuditTrail:
    """Reads the whole chain in one read transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def verify(self, public: Ed25519PublicKey | None = None) -> AuditVerdict:
        """Recompute every link; with the server's `public` key also check each signed
        checkpoint against the record it names."""
        with self._store.transaction(write=False) as tx:
            return verify_records(tx.audit.iterate(), public)

    def checkpoint(self, key: Ed25519PrivateKey, clock: Clock) -> AuditRecord | None:
        """Append a checkpoint signing the current head (None when the head is already a
        checkpoint: nothing happened since)."""
        with self._store.transaction() as tx:
            page = tx.audit.page(limit=1)
            if not page.items or page.items[0].action == CHECKPOINT_ACTION:
                return None
            head = page.items[0]
            tx.audit.append(
                actor="shipline",
                action=CHECKPOINT_ACTION,
                now=clock.now(),
                target=f"audit:{head.id}",
                data=sign_checkpoint(key, head.id, head.hash),
            )
            return tx.audit.page(limit=1).items[0]

    def export(self, since: datetime | None = None) -> list[AuditRecord]:
        """Every record (at or after `since`), oldest first."""
        with self._store.transaction(write=False) as tx:
            return [r for r in tx.audit.iterate() if since is None or r.at >= since]


def verify_records(
    records: Iterable[AuditRecord], public: Ed25519PublicKey | None = None
) -> AuditVerdict:
    """The verdict on a chain (from the store or an export), in one pass."""
    count = 0
    head = ""
    checkpoints = 0
    last: int | None = None
    forged: ChainBreak | None = None
    hashes: dict[int, str] = {}

    def tracked() -> Iterator[AuditRecord]:
        nonlocal count, head, checkpoints, last, forged
        for record in records:
            if public is not None and record.action == CHECKPOINT_ACTION and forged is None:
                problem = checkpoint_problem(record.data, hashes, public)
                if problem is None:
                    checkpoints += 1
                    last = record.id
                else:
                    forged = ChainBreak(count, record.id, f"checkpoint {record.id}: {problem}")
            hashes[record.id] = record.hash
            count += 1
            head = record.hash
            yield record

    broken = first_break(tracked())
    if forged is not None and (broken is None or forged.index < broken.index):
        broken = forged
    return AuditVerdict(count, "" if broken else head, broken, checkpoints, last)
