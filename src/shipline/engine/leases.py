"""Lost remote runners: jobs whose lease ran out are retried by policy, on any server.

Every server runs a `LeaseReaper`. The database decides which server handles a lost job:
the job's running assignment is moved to `lost` by a conditional update, which only one
transaction can win (PostgreSQL's row lock makes the second wait and then match nothing;
SQLite serialises writers). The winner marks the try `runner_lost` in the job's log and
either puts the job back in the queue (another try is left: by default one retry, for
infrastructure failures only) or fails it. The old holder's later messages are refused,
because its assignment is no longer running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from shipline.domain.clock import Clock
from shipline.domain.records import JobRecord
from shipline.domain.runners import AssignmentState
from shipline.domain.status import Conclusion, Status
from shipline.engine.service import RunService
from shipline.store.ports import Store

log = logging.getLogger(__name__)

# Lease owners of remote runners are `runner:<id>`.
REMOTE_OWNER = "runner:"
RUNNER_LOST = "runner_lost"


def remote_owner(runner_id: int) -> str:
    return f"{REMOTE_OWNER}{runner_id}"


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How remote jobs are held: runners renew every `heartbeat_seconds`; a lease not
    renewed for `lease_seconds` is lost; a job is tried `max_tries` times in all when its
    runner is lost (a step's own failure is never retried)."""

    heartbeat_seconds: float = 10.0
    lease_seconds: float = 30.0
    max_tries: int = 2


class _Handled(Exception):
    """Raised inside the transaction to roll it back: the job needs nothing from us."""


class LeaseReaper:
    """Finds remote jobs whose lease ran out and retries or fails them."""

    def __init__(
        self, store: Store, clock: Clock, runs: RunService, policy: LeasePolicy | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.runs = runs
        self.policy = policy or LeasePolicy()
        self._stopping = asyncio.Event()

    def reap(self) -> list[int]:
        """Handle every expired remote lease; returns the ids of the jobs this call handled
        (another server may have handled some of the expired ones)."""
        with self.store.transaction(write=False) as tx:
            expired = [
                j
                for j in tx.jobs.expired_leases(self.clock.now())
                if (j.lease_owner or "").startswith(REMOTE_OWNER)
            ]
        return [job.id for job in expired if self._lost(job)]

    def _lost(self, job: JobRecord) -> bool:
        try:
            retry, reason = self._mark_lost(job)
        except _Handled:
            return False
        log.warning("job %s: %s", job.id, reason)
        if not retry:
            self.runs.job_finished(job.id, Conclusion.FAILURE, error=reason)
        else:
            for listener in self.runs.queued_listeners:
                listener()
        return True

    def _mark_lost(self, job: JobRecord) -> tuple[bool, str]:
        """In one transaction: end the running try as lost, mark the log, and queue the
        job again when a try is left. `_Handled` (rolled back) when there is nothing to do."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            running = [
                a
                for a in tx.runners.assignments(job_id=job.id, state=AssignmentState.RUNNING)
                if a.try_number == job.tries
            ]
            if not running or not tx.runners.end_assignment(
                running[0].id, AssignmentState.LOST, now=now
            ):
                raise _Handled  # another server has handled it
            current = tx.jobs.get(job.id)
            if (
                current is None
                or current.status is not Status.IN_PROGRESS
                or current.lease_owner != job.lease_owner
                or current.lease_expires_at is None
                or current.lease_expires_at >= now
            ):
                raise _Handled  # renewed or ended meanwhile: the flip above rolls back
            run = tx.runs.get(job.run_id)
            run_over = run is None or run.status is Status.COMPLETED
            retry = current.tries < self.policy.max_tries and not run_over
            what = "the job is queued again" if retry else "no tries are left"
            reason = (
                f"{RUNNER_LOST}: runner {job.lease_owner} stopped renewing its lease "
                f"(try {current.tries} of {self.policy.max_tries}); {what}"
            )
            marker = f"##[{RUNNER_LOST}] {reason}\n".encode()
            tx.logs.append(job.id, tx.logs.last_seq(job.id) + 1, marker, None)
            if retry:
                tx.jobs.set_status(job.id, Status.QUEUED, now=now, error=reason)
                tx.events.publish(
                    "job.retried",
                    now=now,
                    run_id=job.run_id,
                    job_id=job.id,
                    data={"reason": RUNNER_LOST, "try": current.tries},
                )
        return retry, reason

    async def run(self, interval: float | None = None) -> None:
        """Reap every `interval` seconds (default a third of the lease) until `stop()`."""
        every = interval if interval is not None else self.policy.lease_seconds / 3
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.reap)
            except Exception:
                log.exception("reaping expired leases failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=every)

    def stop(self) -> None:
        self._stopping.set()
