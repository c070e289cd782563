"""`StoredJobs` counts the completed records as they are set, replaced or created."""

from __future__ import annotations

from dataclasses import replace

from shipline.domain.records import JobRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.run_jobs import StoredJobs


def record(key: str, status: Status) -> JobRecord:
    conclusion = Conclusion.SUCCESS if status is Status.COMPLETED else None
    return JobRecord(
        id=0, run_id=1, attempt=1, key=key, job_id=key, name=key, status=status,
        conclusion=conclusion,
    )  # fmt: skip


def recount(stored: StoredJobs) -> int:
    return sum(1 for r in stored.values() if r.status is Status.COMPLETED)


def test_the_count_follows_every_assignment() -> None:
    stored = StoredJobs([record("a", Status.COMPLETED), record("b", Status.QUEUED)])
    assert stored.completed == 1 == recount(stored)
    stored["b"] = replace(stored["b"], status=Status.IN_PROGRESS)
    assert stored.completed == 1
    stored["b"] = record("b", Status.COMPLETED)
    stored["c"] = record("c", Status.COMPLETED)
    assert stored.completed == 3 == recount(stored)
    stored["a"] = record("a", Status.COMPLETED)  # completed again: counted once
    stored["c"] = record("c", Status.QUEUED)  # a new attempt's record
    assert stored.completed == 2 == recount(stored)
    assert sorted(stored) == ["a", "b", "c"]
