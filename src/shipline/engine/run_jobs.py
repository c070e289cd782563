"""Between a run's plan and its stored jobs: the jobs to create for decisions, and the
replayed state of a run (see `RunService.replay`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shipline.domain.records import JobRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.dag import RunState, Skip, Start
from shipline.plan.compile import Plan, PlannedJob
from shipline.store.ports import NewJob


class StoredJobs(dict[str, JobRecord]):
    """A run attempt's stored jobs by key, counting the completed ones as records are set
    (the kept state compares the count with the store's after every change of the run:
    recounting would cost a pass over a wide matrix at each of its jobs' ends). Change it
    by item assignment only."""

    def __init__(self, records: Iterable[JobRecord] = ()) -> None:
        super().__init__()
        self.completed = 0
        for record in records:
            self[record.key] = record

    def __setitem__(self, key: str, record: JobRecord) -> None:
        old = self.get(key)
        if old is not None and old.status is Status.COMPLETED:
            self.completed -= 1
        if record.status is Status.COMPLETED:
            self.completed += 1
        super().__setitem__(key, record)


@dataclass
class Replay:
    """A run's state rebuilt from its stored jobs (see `RunService.replay`)."""

    state: RunState
    plan: Plan
    stored: StoredJobs
    planned: dict[str, PlannedJob] = field(default_factory=dict)
    new: list[Start | Skip] = field(default_factory=list)


def new_job(job: PlannedJob, skip: Skip | None) -> NewJob:
    runs_on = job.spec.runs_on
    labels = (
        tuple(str(v) for v in runs_on)
        if isinstance(runs_on, list)
        else ((str(runs_on),) if isinstance(runs_on, str) and "${{" not in runs_on else ())
    )
    timeout = job.spec.timeout_minutes
    return NewJob(
        key=job.key,
        job_id=job.job_id,
        name=job.display_name,
        matrix=job.matrix_dict,
        needs=job.needs,
        runs_on=labels,
        timeout_minutes=timeout if isinstance(timeout, float | int) else 360,
        status=Status.COMPLETED if skip else Status.QUEUED,
        conclusion=skip.conclusion if skip else None,
        error=skip.reason if skip and skip.conclusion is Conclusion.FAILURE else None,
    )


def dependents(plan: Plan, job_ids: set[str]) -> set[str]:
    """The given jobs and every job that needs one of them, directly or not."""
    found = set(job_ids)
    changed = True
    while changed:
        changed = False
        for job in plan.workflow.jobs:
            if job.id not in found and any(n in found for n in job.needs):
                found.add(job.id)
                changed = True
    return found


def placeholder(job: PlannedJob) -> JobRecord:
    """Stands for a job created in this transaction, until the store returns it."""
    return JobRecord(
        id=0,
        run_id=0,
        attempt=0,
        key=job.key,
        job_id=job.job_id,
        name=job.display_name,
        status=Status.QUEUED,
    )


def outputs_of(record: JobRecord) -> dict[str, str]:
    outputs = record.outputs if isinstance(record.outputs, dict) else {}
    return {str(k): str(v) for k, v in outputs.items()}
