"""Read models for the API and the CLI: runs with their jobs and steps, logs, the audit trail
and the figures `/metrics` reports — built from the store in one read each.

Nothing here decides who may read what: callers (the server, through
`engine.projects.ProjectService.authorize*`) check access first and hand over ids.
Nothing here writes either, so every method is safe to call as often as a poller likes.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipline.domain.records import (
    AuditRecord,
    JobRecord,
    LogChunk,
    RunRecord,
    StepRecord,
    UserRecord,
)
from shipline.domain.status import Status
from shipline.engine.errors import Invalid, NotFound
from shipline.store.ports import Page, RunFilter, Store

__all__ = ["JobView", "LogSlice", "MetricsSnapshot", "Queries", "RunView"]


@dataclass(frozen=True, slots=True)
class JobView:
    """A job with its steps, in step order."""

    job: JobRecord
    steps: tuple[StepRecord, ...]


@dataclass(frozen=True, slots=True)
class RunView:
    """A run with the jobs of its current attempt (each with its steps)."""

    run: RunRecord
    project: str
    jobs: tuple[JobView, ...]


@dataclass(frozen=True, slots=True)
class LogSlice:
    """Chunks of a job's log after a sequence number, and where the job stands.

    `next_seq` is what to pass as `after` next time (the last chunk's seq, or the `after`
    that was asked for when nothing new came); `done` is true once the job has completed,
    so that a follower that read everything up to `next_seq` has the whole log.
    """

    chunks: tuple[LogChunk, ...]
    next_seq: int
    job: JobRecord

    @property
    def done(self) -> bool:
        return self.job.status is Status.COMPLETED


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Counts for `/metrics`: runs and jobs by status (one grouped count each)."""

    runs_by_status: dict[str, int]
    jobs_by_status: dict[str, int]

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a runner."""
        return self.jobs_by_status.get(Status.QUEUED.value, 0)


class Queries:
    """Reads runs, jobs, steps, logs, users and audit records from a `Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- health ----------------------------------------------------------------------------

    def ping(self) -> None:
        """Ask the database a trivial question; raises when it does not answer."""
        with self._store.transaction(write=False) as tx:
            tx.users.count()

    # -- runs --------------------------------------------------------------------------------

    def runs_page(self, flt: RunFilter, *, limit: int, cursor: str | None) -> Page[RunRecord]:
        """One page of runs, newest first; `Invalid` (field `cursor`) for a foreign cursor."""
        with self._store.transaction(write=False) as tx:
            try:
                return tx.runs.page(flt, limit=limit, cursor=cursor)
            except ValueError as exc:  # the store's InvalidCursor is a ValueError
                raise Invalid("invalid cursor", field="cursor") from exc

    def workflows(self, project_id: int) -> list[RunRecord]:
        """The newest run of each workflow the project has run, by workflow file."""
        with self._store.transaction(write=False) as tx:
            return tx.runs.latest_per_workflow(project_id)

    def run(self, run_id: int) -> RunRecord:
        """A run by id; `NotFound` when there is none."""
        with self._store.transaction(write=False) as tx:
            run = tx.runs.get(run_id)
        if run is None:
            raise NotFound("no such run")
        return run

    def run_view(self, run_id: int) -> RunView:
        """A run with its current attempt's jobs and their steps."""
        with self._store.transaction(write=False) as tx:
            run = tx.runs.get(run_id)
            if run is None:
                raise NotFound("no such run")
            project = tx.projects.get_by_id(run.project_id)
            records = tx.jobs.for_run(run.id, run.attempt)
            steps = tx.steps.for_jobs([job.id for job in records])
            jobs = tuple(JobView(job, tuple(steps[job.id])) for job in records)
        return RunView(run, project.name if project is not None else "", jobs)

    def job_view(self, run_id: int, job_id: int) -> JobView:
        """One job of a run with its steps; `NotFound` when the job is not of that run."""
        with self._store.transaction(write=False) as tx:
            job = tx.jobs.get(job_id)
            if job is None or job.run_id != run_id:
                raise NotFound("no such job in this run")
            steps = tuple(sorted(tx.steps.for_job(job.id), key=lambda s: s.index))
        return JobView(job, steps)

    # -- logs --------------------------------------------------------------------------------

    def logs(self, run_id: int, job_id: int, *, after: int, limit: int | None) -> LogSlice:
        """The job's log chunks after seq `after` (at most `limit`), and the job's state
        read in the same transaction (so `done` and the chunks agree)."""
        with self._store.transaction(write=False) as tx:
            job = tx.jobs.get(job_id)
            if job is None or job.run_id != run_id:
                raise NotFound("no such job in this run")
            chunks = tuple(tx.logs.read(job_id, after_seq=after, limit=limit))
        next_seq = chunks[-1].seq if chunks else after
        return LogSlice(chunks, next_seq, job)

    # -- audit -------------------------------------------------------------------------------

    def audit_page(
        self, *, project_id: int | None, action: str | None, limit: int, cursor: str | None
    ) -> Page[AuditRecord]:
        """One page of the audit trail, newest first."""
        with self._store.transaction(write=False) as tx:
            try:
                return tx.audit.page(
                    project_id=project_id, action=action, limit=limit, cursor=cursor
                )
            except ValueError as exc:
                raise Invalid("invalid cursor", field="cursor") from exc

    # -- users -----------------------------------------------------------------------------

    def users_page(self, *, limit: int, cursor: str | None) -> Page[UserRecord]:
        """One page of users, newest first."""
        with self._store.transaction(write=False) as tx:
            try:
                return tx.users.page(limit=limit, cursor=cursor)
            except ValueError as exc:
                raise Invalid("invalid cursor", field="cursor") from exc

    # -- metrics -----------------------------------------------------------------------------

    def metrics(self) -> MetricsSnapshot:
        """Runs and jobs counted by status."""
        with self._store.transaction(write=False) as tx:
            runs = tx.runs.count_by_status()
            jobs = tx.jobs.count_by_status()
        return MetricsSnapshot(
            {s.value: n for s, n in runs.items()}, {s.value: n for s, n in jobs.items()}
        )
