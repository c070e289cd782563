"""The audit chain without a database: every kind of tampering is found where it starts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from shipline.domain.audit_chain import canonical, chain_hash, verify
from shipline.domain.records import AuditRecord

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def chain(count: int) -> list[AuditRecord]:
    """`count` records linked as a store appends them."""
    records: list[AuditRecord] = []
    prev = ""
    for i in range(count):
        record = AuditRecord(
            id=i + 1,
            at=T0 + timedelta(seconds=i),
            actor="alice",
            action=f"action.{i}",
            project_id=7,
            target=f"run:{i}",
            data={"n": i, "tags": ["a", "b"]},
            prev_hash=prev,
        )
        record = dataclasses.replace(record, hash=chain_hash(prev, record))
        records.append(record)
        prev = record.hash
    return records


def relink(records: list[AuditRecord], start: int) -> list[AuditRecord]:
    """Recompute the links from `start` on, as a forger who can rewrite hashes would."""
    out = records[:start]
    prev = out[-1].hash if out else ""
    for record in records[start:]:
        linked = dataclasses.replace(record, prev_hash=prev, hash="")
        linked = dataclasses.replace(linked, hash=chain_hash(prev, linked))
        out.append(linked)
        prev = linked.hash
    return out


def test_an_intact_chain_verifies() -> None:
    assert verify(chain(5)) is None
    assert verify([]) is None


def test_an_edited_record_is_found() -> None:
    records = chain(5)
    records[2] = dataclasses.replace(records[2], actor="mallory")
    assert verify(records) == 2


def test_an_edit_of_data_or_time_is_found() -> None:
    records = chain(3)
    assert verify([records[0], dataclasses.replace(records[1], data={"n": 99}), records[2]]) == 1
    moved = dataclasses.replace(records[0], at=T0 + timedelta(microseconds=1))
    assert verify([moved, *records[1:]]) == 0


def test_an_edited_record_with_a_recomputed_hash_breaks_the_next_link() -> None:
    records = chain(5)
    forged = dataclasses.replace(records[2], reason="nothing to see")
    records[2] = dataclasses.replace(forged, hash=chain_hash(forged.prev_hash, forged))
    assert verify(records) == 3


def test_a_deleted_record_is_found() -> None:
    records = chain(5)
    del records[1]
    assert verify(records) == 1
    assert verify(chain(5)[1:]) == 0  # the first one deleted


def test_an_inserted_record_is_found() -> None:
    records = chain(4)
    intruder = dataclasses.replace(records[1], id=99, actor="mallory", hash="")
    intruder = dataclasses.replace(intruder, hash=chain_hash(records[1].prev_hash, intruder))
    records.insert(1, intruder)
    assert verify(records) == 2


def test_reordered_records_are_found() -> None:
    records = chain(5)
    records[1], records[3] = records[3], records[1]
    assert verify(records) == 1


def test_a_rewritten_tail_verifies_only_from_where_it_was_rewritten() -> None:
    # A forger who rewrites every later hash makes a valid chain: only an anchor kept
    # elsewhere (the head hash) tells. The verifier is still exact about what it checks.
    records = chain(5)
    records[2] = dataclasses.replace(records[2], actor="mallory")
    assert verify(relink(records, 2)) is None
    assert relink(records, 2)[-1].hash != chain(5)[-1].hash


def test_the_canonical_form_is_sorted_compact_json_in_utc() -> None:
    record = AuditRecord(
        id=1,
        at=datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        actor="alice",
        action="run.cancel",
        data={"b": 1, "a": [1, 2]},
    )
    assert canonical(record) == (
        b'{"action":"run.cancel","actor":"alice","at":"2026-05-01T12:00:00+00:00",'
        b'"data":{"a":[1,2],"b":1},"decision":"allowed","id":1,"prev_hash":"",'
        b'"project_id":null,"reason":"","request_id":"","target":""}'
    )
    # The hash is not part of what it covers.
    assert canonical(dataclasses.replace(record, hash="x")) == canonical(record)
    assert chain_hash("", record) != chain_hash("0" * 64, record)
