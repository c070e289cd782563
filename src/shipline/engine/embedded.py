"""The embedded runner: the server's own slots that claim queued jobs and run them.

It uses the same `JobRunner` as `shipline run`, writes steps and logs to the store as they
happen, and reports each job's end to the `RunService`, which moves the run forward. Jobs
are claimed with a lease renewed while they run; a server killed mid-job leaves leases
that `recover()` (at the next start) or the lease reaper (on any server) resolves: the job
is retried once, or failed with the reason, and never runs twice at the same time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from shipline.domain.clock import Clock
from shipline.domain.records import JobRecord, RunRecord
from shipline.domain.status import Conclusion, Status, combine
from shipline.engine.joblog import StoreObserver
from shipline.engine.run_contexts import github_context
from shipline.engine.secrets import SecretService
from shipline.engine.service import RunService
from shipline.engine.trust import cache_scopes
from shipline.runner.job import JobRunner
from shipline.runner.model import JobAssignment, JobObserver
from shipline.runner.ports import Deployer
from shipline.security.masking import Masker
from shipline.store.ports import Store

log = logging.getLogger(__name__)

MakeRunner = Callable[[JobObserver, RunRecord], JobRunner]
# A job is tried this many times in all when its runner is lost (server killed, runner gone).
MAX_TRIES = 2


class EmbeddedRunner:
    """`slots` jobs at once, claimed from the store under the lease owner `owner`.

    `owner` must be stable across restarts of one server (so `recover` finds the jobs its
    previous process left) and distinct between servers sharing a database.
    """

    def __init__(
        self,
        store: Store,
        runs: RunService,
        clock: Clock,
        *,
        slots: int,
        make_runner: MakeRunner,
        owner: str = "embedded",
        lease_seconds: float = 60.0,
        poll_interval: float = 0.1,
        listeners: list[Callable[[str, float], None]] | None = None,
        secrets: SecretService | None = None,
        deployer: Callable[[int], Deployer] | None = None,
    ) -> None:
        self.store = store
        self.runs = runs
        self.clock = clock
        self.slots = max(1, slots)
        self.make_runner = make_runner
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        # Told (conclusion, seconds) as each job ends: metrics.
        self.listeners = listeners if listeners is not None else []
        # Opens the secrets a claimed job references (None: jobs get no secrets).
        self.secrets = secrets
        # The deployment controller for a job's `shipline/deploy` steps (None: none).
        self.deployer = deployer
        self.running: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self.job_runners: dict[int, JobRunner] = {}
        self.busy = 0
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop_reason = ""

    # -- life cycle ----------------------------------------------------------------------

    def recover(self) -> list[JobRecord]:
        """Resolve the jobs a previous process of this server left in progress."""
        with self.store.transaction() as tx:
            far_future = self.clock.now() + timedelta(days=36500)
            stale = [j for j in tx.jobs.expired_leases(far_future) if j.lease_owner == self.owner]
        for job in stale:
            self._lost(job, "server restarted")
        return stale

    def reap(self) -> list[JobRecord]:
        """Resolve jobs whose lease ran out (their runner or server is gone)."""
        with self.store.transaction() as tx:
            expired = tx.jobs.expired_leases(self.clock.now())
        for job in expired:
            self._lost(job, f"runner {job.lease_owner} stopped renewing its lease")
        return expired

    def _lost(self, job: JobRecord, reason: str) -> None:
        if job.tries < MAX_TRIES:
            with self.store.transaction() as tx:
                tx.jobs.set_status(
                    job.id, Status.QUEUED, now=self.clock.now(), error=f"retried: {reason}"
                )
                tx.events.publish(
                    "job.retried",
                    now=self.clock.now(),
                    run_id=job.run_id,
                    job_id=job.id,
                    data={"reason": reason},
                )
        else:
            self.runs.job_finished(job.id, Conclusion.FAILURE, error=reason)

    async def run(self) -> None:
        """Claim and run jobs until `stop()`."""
        last_reap = 0.0
        loop = asyncio.get_running_loop()

        # Woken when this process queues jobs (a trigger, a job whose end readies others)
        # or frees a slot, instead of waiting for the next poll; polling still covers jobs
        # queued by other servers sharing the database.
        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.runs.queued_listeners.append(wake)
        while not self._stopping.is_set():
            started = False
            if self.busy < self.slots:
                job = await asyncio.to_thread(self._claim)
                if job is not None:
                    self._start(job)
                    started = True
            if loop.time() - last_reap > self.lease_seconds / 3:
                last_reap = loop.time()
                await asyncio.to_thread(self._renew_and_reap)
            if not started:
                self._wake.clear()
                waits = [
                    asyncio.ensure_future(self._stopping.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                await asyncio.wait(
                    waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
                )
                for wait in waits:
                    wait.cancel()

    async def stop(self, grace: float, reason: str = "server shutting down") -> None:
        """Stop claiming; running jobs get `grace` seconds, then are cancelled."""
        self._stop_reason = reason
        self._stopping.set()
        tasks = [task for task, _ in self.running.values()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for _, cancel in self.running.values():
            cancel.set()
        for runner in self.job_runners.values():
            runner.force_stop()  # past the grace: cleanup steps too
        if pending:
            await asyncio.wait(pending, timeout=30)

    # -- one job ---------------------------------------------------------------------------

    def _claim(self) -> JobRecord | None:
        with self.store.transaction() as tx:
            return tx.jobs.claim(
                self.owner, None, lease_seconds=self.lease_seconds, now=self.clock.now()
            )

    def _renew_and_reap(self) -> None:
        for job_id in list(self.running):
            with self.store.transaction() as tx:
                tx.jobs.renew_lease(
                    job_id, self.owner, lease_seconds=self.lease_seconds, now=self.clock.now()
                )
        self.reap()

    def _start(self, job: JobRecord) -> None:
        cancel = asyncio.Event()
        task = asyncio.ensure_future(self._guarded(job, cancel))
        self.running[job.id] = (task, cancel)
        self.busy += 1

        def done(_: asyncio.Task[None]) -> None:
            self.running.pop(job.id, None)
            self.busy -= 1
            self._wake.set()  # a slot is free: claim now

        task.add_done_callback(done)

    async def _guarded(self, job: JobRecord, cancel: asyncio.Event) -> None:
        """Run a job; whatever goes wrong, the job ends (failed, with the reason) rather than
        staying in progress until its lease runs out."""
        try:
            await self._execute(job, cancel)
        except Exception as exc:
            log.exception("job %s failed in the runner", job.id)
            try:
                await asyncio.to_thread(
                    self.runs.job_finished,
                    job.id,
                    Conclusion.FAILURE,
                    error=f"the runner failed: {exc}",
                )
            except Exception:
                log.exception("job %s: cannot record its failure", job.id)

    async def _execute(self, job: JobRecord, cancel: asyncio.Event) -> None:
        try:
            assignment, run = await asyncio.to_thread(self._assignment, job)
        except Exception as exc:
            log.exception("cannot prepare job %s", job.id)
            await asyncio.to_thread(
                self.runs.job_finished,
                job.id,
                Conclusion.FAILURE,
                error=f"cannot prepare the job: {exc}",
            )
            return
        await asyncio.to_thread(self.runs.job_started, job.id)
        # The server masks again what the runner masked (defence in depth).
        masker = Masker(list(assignment.secrets.values()))
        observer = StoreObserver(self.store, self.clock, job.id, run.id, masker=masker)
        watcher = asyncio.ensure_future(self._watch_cancel(job, cancel))
        runner = self.make_runner(observer, run)
        self.job_runners[job.id] = runner
        try:
            result = await runner.run(assignment, cancel)
        finally:
            self.job_runners.pop(job.id, None)
            watcher.cancel()
            observer.flush()
        conclusion = result.conclusion
        error = masker.mask(result.error) if result.error and masker else result.error
        if self._stopping.is_set() and conclusion is Conclusion.CANCELLED:
            error = self._stop_reason
        if conclusion is Conclusion.FAILURE and await asyncio.to_thread(
            self._continue_on_error, run, job
        ):
            conclusion = Conclusion.SUCCESS
        await asyncio.to_thread(
            self.runs.job_finished, job.id, conclusion, outputs=result.outputs, error=error
        )

    async def _watch_cancel(self, job: JobRecord, cancel: asyncio.Event) -> None:
        """Stop the job when the service publishes `job.cancel` for it or its run ends."""
        with self.store.transaction() as tx:
            after = tx.events.last_id()
        while not cancel.is_set():
            await asyncio.sleep(0.25)
            with self.store.transaction() as tx:
                events = tx.events.since(after, job_id=job.id)
                run = tx.runs.get(job.run_id)
            if events:
                after = events[-1].id
            if any(e.kind == "job.cancel" for e in events) or (
                run is not None and run.status is Status.COMPLETED
            ):
                cancel.set()

    def _assignment(self, job: JobRecord) -> tuple[JobAssignment, RunRecord]:
        with self.store.transaction() as tx:
            run = tx.runs.get(job.run_id)
            assert run is not None
            project = tx.projects.get_by_id(run.project_id)
            assert project is not None
            _, payload = tx.runs.definition(run.id)
            replay = self.runs.replay(tx, run)
            siblings = tx.jobs.for_run(run.id, run.attempt)
        plan = replay.plan
        planned = replay.planned.get(job.key)
        if planned is None:
            raise LookupError(f"job {job.key!r} is not in the plan of run {run.id}")
        needs: dict[str, object] = {}
        for need in planned.needs:
            records = [s for s in siblings if s.job_id == need]
            outputs: dict[str, object] = {}
            for record in records:
                if isinstance(record.outputs, dict):
                    outputs.update(record.outputs)
            conclusions = [r.conclusion for r in records if r.conclusion is not None]
            result = combine(conclusions) if conclusions else Conclusion.SKIPPED
            needs[need] = {"result": str(result), "outputs": outputs}
        inputs = run.inputs if isinstance(run.inputs, dict) else {}
        # Opened only now that a runner holds the job, and only what it references.
        secrets = self.secrets.for_job(run, job, planned, plan.workflow) if self.secrets else {}
        cache_scope, restore_scopes = cache_scopes(
            project.name, run.ref, project.default_branch, run.trust
        )
        assignment = JobAssignment(
            run_id=str(run.id),
            planned=planned,
            workflow=plan.workflow,
            event=plan.event,
            github=github_context(run, project, payload),
            needs=needs,
            inputs=inputs,
            secrets=secrets,
            cache_scope=cache_scope,
            cache_restore_scopes=restore_scopes,
            deployer=self.deployer(job.id) if self.deployer is not None else None,
        )
        return assignment, run

    def _continue_on_error(self, run: RunRecord, job: JobRecord) -> bool:
        with self.store.transaction() as tx:
            replay = self.runs.replay(tx, run)
        planned = replay.planned.get(job.key)
        return planned is not None and replay.state.continue_on_error(planned)
