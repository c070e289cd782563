"""`RemoteRunner`: the loop of `shipline runner`. It asks servers for jobs its labels
satisfy, runs up to `slots` of them at once with a `JobRunner`, renews their leases, and
stops them when the server says so.

- Work: one long poll at a time while a slot is free (`/runner/jobs/request`); a job's
  finish message asks for the next job too (unless draining), so a busy runner claims
  without a request of its own.
- Leases: one heartbeat long poll covers every running job; the server answers at once when
  a job is cancelled or lost, so a cancellation reaches the step within its poll interval
  (a job claimed meanwhile is covered by the next round, within `ROUND` seconds).
- A lost job (the lease ran out while the server was unreachable) is stopped and nothing
  more is sent about it: another runner has it.
- `drain()` (first SIGTERM) takes no new jobs and lets the running ones finish; `cancel()`
  (second SIGTERM) cancels them. `once` runs exactly one job, then drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shipline.domain.status import Conclusion
from shipline.executors.shell import remove_job_dir
from shipline.runner.job import JobRunner
from shipline.runner.model import JobObserver
from shipline.runner.remote.connection import Connection, GaveUp, Refused
from shipline.runner.remote.observer import RemoteObserver
from shipline.runner.remote.protocol import (
    RUNNER_HEADER,
    AssignmentError,
    FinishIn,
    HeartbeatOut,
    JobOut,
    NextJobIn,
    ReportIn,
    WorkflowCache,
    assignment_of,
)

log = logging.getLogger(__name__)

# The longest a heartbeat waits for a cancellation before the next round.
ROUND = 1.5
# (observer, job, the job's work directory) -> the JobRunner that runs it.
MakeJobRunner = Callable[[JobObserver, JobOut, Path], JobRunner]


@dataclass(eq=False)
class _Running:
    job: JobOut
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    runner: JobRunner | None = None
    lost: bool = False


class RemoteRunner:
    """Runs jobs from the servers of `conn`; see the module docstring."""

    def __init__(
        self,
        conn: Connection,
        make_runner: MakeJobRunner,
        *,
        work_dir: Path,
        slots: int = 1,
        labels: list[str] | None = None,
        version: str = "",
        once: bool = False,
        poll_wait: float = 20.0,
    ) -> None:
        self.conn = conn
        self.make_runner = make_runner
        self.work_dir = work_dir
        self.slots = max(1, slots)
        self.labels = labels
        self.version = version
        self.once = once
        # The jobs of one run share their workflow's parse.
        self.workflows = WorkflowCache()
        self.poll_wait = poll_wait
        self.jobs: dict[int, _Running] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.heartbeat_seconds = 10.0
        self.exit_code = 0
        self.done_jobs = 0
        self._draining = asyncio.Event()
        self._changed = asyncio.Event()
        self._slot_free = asyncio.Event()

    # -- control -----------------------------------------------------------------------

    def drain(self) -> None:
        """Take no new jobs; the running ones finish."""
        self._draining.set()
        self._slot_free.set()

    def cancel(self) -> None:
        """Cancel the running jobs now (their cleanup steps are cut short too)."""
        self.drain()
        for running in self.jobs.values():
            running.cancel.set()
            if running.runner is not None:
                running.runner.force_stop()

    async def run(self) -> int:
        """Run jobs until drained (or, with `once`, after one job); the exit status."""
        heartbeats = asyncio.ensure_future(self._heartbeats())
        poll = asyncio.ensure_future(self._poll())
        stop = asyncio.ensure_future(self._draining.wait())
        await asyncio.wait([poll, stop], return_when=asyncio.FIRST_COMPLETED)
        poll.cancel()
        stop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
        while self.tasks:
            await asyncio.wait(list(self.tasks))
        heartbeats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeats
        return self.exit_code

    # -- asking for work ---------------------------------------------------------------

    async def _poll(self) -> None:
        body: dict[str, object] = {"version": self.version, "slots": self.slots}
        if self.labels is not None:
            body["labels"] = self.labels
        while not self._draining.is_set():
            if len(self.jobs) >= self.slots:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                response = await self.conn.call(
                    "POST",
                    "/runner/jobs/request",
                    json={**body, "wait": self.poll_wait},
                    timeout=self.poll_wait + 15,
                    give_up=self._draining.is_set,
                )
            except GaveUp:
                return
            except Refused as exc:
                log.error("the server refused this runner: %s", exc)
                self.exit_code = 1
                self.drain()
                return
            if response.status_code == 204:
                continue
            job = JobOut.model_validate(response.json())
            self.heartbeat_seconds = job.heartbeat_seconds
            self._start(job)
            if self.once:
                self.drain()
                return

    def _start(self, job: JobOut) -> None:
        running = _Running(job)
        self.jobs[job.job_id] = running
        self._changed.set()
        task = asyncio.ensure_future(self._job(running))
        self.tasks.add(task)

        def done(_: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            self.jobs.pop(job.job_id, None)
            self.done_jobs += 1
            self._changed.set()
            self._slot_free.set()

        task.add_done_callback(done)

    # -- one job -------------------------------------------------------------------------

    async def _job(self, running: _Running) -> None:
        job = running.job
        log.info("job %s (%s), try %s: started", job.job_id, job.name, job.try_number)
        root = self.work_dir / f"job-{job.job_id}-{job.try_number}"
        try:
            await self._run_and_report(running, root)
        finally:
            # Once the end is sent: its report waits for no file work, and the next job
            # needs none of this one's. In a worker thread: a large mirror or workspace
            # would hold up the event loop (the other slots' logs and heartbeats).
            await asyncio.to_thread(remove_job_dir, root)

    async def _run_and_report(self, running: _Running, root: Path) -> None:
        job = running.job
        observer = RemoteObserver(self.conn, job)
        observer.start()
        ended: FinishIn
        try:
            assignment = assignment_of(job, self.workflows)
            running.runner = self.make_runner(observer, job, root)
            if running.cancel.is_set():
                running.runner.force_stop()
            result = await running.runner.run(assignment, running.cancel)
            ended = FinishIn(
                conclusion=result.conclusion, outputs=result.outputs, error=result.error
            )
        except AssignmentError as exc:
            ended = FinishIn(conclusion=Conclusion.FAILURE, error=f"cannot run the job: {exc}")
        except Exception as exc:
            log.exception("job %s failed in the runner", job.job_id)
            ended = FinishIn(conclusion=Conclusion.FAILURE, error=f"the runner failed: {exc}")
        finally:
            unsent = await observer.close()
        await self._report(running, ended, unsent, refused=observer.refused is not None)

    async def _report(
        self, running: _Running, ended: FinishIn, unsent: ReportIn, *, refused: bool
    ) -> None:
        """Send the job's end (`refused`: the server refused one of its reports already)."""
        job = running.job
        if running.lost or refused:
            log.warning("job %s: not reported, this runner no longer holds it", job.job_id)
            return
        # The end carries the last log chunks and steps (one request, one transaction
        # on the server, for all of them) and, unless this runner is stopping, asks for
        # its next job: the answer is that job, without a request of its own.
        more = not self._draining.is_set() and not self.once
        ask = NextJobIn(labels=self.labels, version=self.version, slots=self.slots)
        finish = ended.model_copy(
            update={"chunks": unsent.chunks, "steps": unsent.steps, "next": ask if more else None}
        )
        try:
            response = await self.conn.call(
                "POST",
                f"/runner/jobs/{job.job_id}/finish",
                token=job.token,
                json=finish.model_dump(mode="json", exclude_defaults=True),
                give_up=lambda: running.lost,
                headers={RUNNER_HEADER: self.conn.credential} if more else None,
            )
        except (Refused, GaveUp) as exc:
            log.warning("job %s: the server did not take its end: %s", job.job_id, exc)
            return
        log.info("job %s: %s", job.job_id, finish.conclusion)
        if response.status_code == 200:
            following = JobOut.model_validate(response.json())
            self.jobs.pop(job.job_id, None)  # its slot is the next job's
            self.heartbeat_seconds = following.heartbeat_seconds
            self._start(following)

    # -- leases ------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        # Rounds of at most ROUND seconds: a job claimed meanwhile is covered (renewed,
        # and watched for cancellation) by the next round. The server renews a lease only
        # when it is due (every `heartbeat_seconds`), so short rounds cost no writes.
        while True:
            if not self.jobs:
                self._changed.clear()
                await self._changed.wait()
                continue
            ids = sorted(self.jobs)
            wait = min(self.heartbeat_seconds, ROUND)
            try:
                response = await self.conn.call(
                    "POST",
                    "/runner/heartbeat",
                    json={"jobs": ids, "wait": wait},
                    timeout=wait + 15,
                )
            except Refused as exc:
                log.error("heartbeat refused (%s): stopping every job", exc)
                for running in self.jobs.values():
                    running.lost = True
                self.cancel()
                self.exit_code = 1
                await asyncio.sleep(ROUND)
                continue
            answer = HeartbeatOut.model_validate(response.json())
            self._apply(answer)
            if answer.cancel or answer.lost:
                # Those jobs are stopping: the next answer would say the same at once.
                await asyncio.sleep(min(1.0, self.heartbeat_seconds))

    def _apply(self, answer: HeartbeatOut) -> None:
        for job_id in answer.cancel:
            running = self.jobs.get(job_id)
            if running is not None and not running.cancel.is_set():
                log.info("job %s: cancelled by the server", job_id)
                running.cancel.set()
        for job_id in answer.lost:
            running = self.jobs.get(job_id)
            if running is not None:
                log.warning("job %s: lease lost, stopping it", job_id)
                running.lost = True
                running.cancel.set()
                if running.runner is not None:
                    running.runner.force_stop()
