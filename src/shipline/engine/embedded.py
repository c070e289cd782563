"""The embedded runner: the server's own slots that claim queued jobs and run them.

It uses the same `JobRunner` as `shipline run`, writes steps and logs to the store as they
happen (in batches, see `StoreObserver`), and reports each job's end to the `RunService`,
which moves the run forward. Jobs are claimed with a lease renewed while they run; a server
killed mid-job leaves leases that `recover()` (at the next start) or the lease reaper (on
any server) resolves: the job is retried once, or failed with the reason, and never runs
twice at the same time.

A job costs three transactions when nothing goes wrong: the claim (which also marks the
run started and issues the job's token, as a remote runner's claim does, when a step of
the job can reach it; free slots are filled in one claim), a read of what the job needs,
and its end (its last steps and log lines, its result, the run moving on, its token
revoked). One watcher polls the
store for cancellations of all running jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from shipline.domain.clock import Clock
from shipline.domain.records import JobRecord, RunRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.assignments import (
    AssignmentRead,
    continue_on_error,
    finish_claimed,
    issue_token,
    read_assignment,
    token_reachable,
)
from shipline.engine.job_tokens import revoke_job_tokens
from shipline.engine.joblog import StoreObserver, scan_log
from shipline.engine.leases import REMOTE_OWNER
from shipline.engine.secrets import SecretService
from shipline.engine.service import RunService
from shipline.runner.job import JobRunner
from shipline.runner.model import JobAssignment, JobObserver
from shipline.runner.ports import Deployer
from shipline.security.masking import Masker
from shipline.store.ports import SIGNAL_QUEUED, QueueSignals, Store

log = logging.getLogger(__name__)

MakeRunner = Callable[[JobObserver, RunRecord], JobRunner]
# The deployment controller of one job, given its id and its token: `shipline/deploy` asks
# with the token, whose `deployments` scope is checked as for a remote runner's job.
MakeDeployer = Callable[[int, str], Deployer]
# A job is tried this many times in all when its runner is lost (server killed, runner gone).
MAX_TRIES = 2
# Events read per query by the cancellation watcher (the store's default page).
EVENTS_BATCH = 500

# What a claimed job's runner needs: its assignment, its run, and the job's last log seq.
_Prepared = tuple[JobAssignment, RunRecord, int]


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
        deployer: MakeDeployer | None = None,
        signals: QueueSignals | None = None,
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
        # Wake-ups after commits that queued jobs, here and on other servers (None: the
        # run service's own wake-ups and polling only).
        self.signals = signals
        self.running: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        # Running jobs' runs, for the cancellation watcher.
        self.run_of: dict[int, int] = {}
        self.job_runners: dict[int, JobRunner] = {}
        self.busy = 0
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop_reason = ""
        # The wake-up this runner registered with the run service while it runs.
        self._listener: Callable[[], None] | None = None

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
        # Remote runners' jobs are `engine.leases.LeaseReaper`'s.
        expired = [j for j in expired if not (j.lease_owner or "").startswith(REMOTE_OWNER)]
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
                # The lost try's token dies with it; the next try gets its own.
                revoke_job_tokens(tx, job.id, now=self.clock.now())
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

        self._listener = wake
        self.runs.queued_listeners.append(wake)
        # The run service wakes this runner from inside the transaction that queues jobs;
        # on PostgreSQL a claim made then may not see them yet. The store's signal comes
        # after the commit (and from the other servers sharing the database).
        unlisten = (
            self.signals.listen(lambda signal: wake() if signal == SIGNAL_QUEUED else None)
            if self.signals is not None
            else None
        )
        watcher = asyncio.ensure_future(self._watch_cancel())
        try:
            while not self._stopping.is_set():
                started = False
                # Cleared before the claim, not before the sleep: a wake-up that comes
                # while the claim runs makes the next round claim again at once.
                self._wake.clear()
                if self.busy < self.slots:
                    try:
                        jobs = await asyncio.to_thread(self._claim, self.slots - self.busy)
                    except Exception:  # e.g. a deadlock PostgreSQL broke: nothing was claimed
                        log.exception("cannot claim jobs now")
                        jobs = []
                    for job, prepared in jobs:
                        self._start(job, prepared)
                    started = bool(jobs)
                if loop.time() - last_reap > self.lease_seconds / 3:
                    last_reap = loop.time()
                    await asyncio.to_thread(self._renew_and_reap)
                if not started:
                    await self._sleep(self.poll_interval)
        finally:
            watcher.cancel()
            self._unlisten()
            if unlisten is not None:
                unlisten()

    def _unlisten(self) -> None:
        """Stop being woken by the run service: a stopped runner must not stay in its
        listeners (they would wake a dead loop, and keep the runner alive)."""
        listener, self._listener = self._listener, None
        if listener is not None and listener in self.runs.queued_listeners:
            self.runs.queued_listeners.remove(listener)

    async def _sleep(self, seconds: float) -> None:
        """Until woken (since the last claim), stopped, or `seconds` passed."""
        waits = [
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()

    async def stop(self, grace: float, reason: str = "server shutting down") -> None:
        """Stop claiming; running jobs get `grace` seconds, then are cancelled."""
        self._stop_reason = reason
        self._stopping.set()
        self._unlisten()
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

    def _claim(self, free: int) -> list[tuple[JobRecord, _Prepared | Exception]]:
        """Up to `free` queued jobs, claimed, their tokens issued, their runs marked
        started and what each job's runner needs read, in one transaction; then each
        job's assignment made (or why it cannot be had), in the same worker thread."""
        tokens: dict[int, str] = {}
        reads: dict[int, AssignmentRead | Exception] = {}
        with self.store.transaction() as tx:
            claimed = tx.jobs.claim_many(
                self.owner, None, free, lease_seconds=self.lease_seconds, now=self.clock.now()
            )
            runs = self.runs.started(tx, *claimed)
            # After the runs' rows: a token's audit record takes the event feed's lock
            # (PostgreSQL), which is always taken last. A job none of whose steps can
            # reach its token gets none (this runner needs none to report for it).
            for job in claimed:
                run = runs.get(job.run_id)
                if run is None or token_reachable(tx, self.runs, run, job):
                    token = issue_token(tx, self.runs, job, now=self.clock.now(), run=run)
                    tokens[job.id] = token[0]
            # A failure to read fails the job once the claim is committed, not the claim.
            for job in claimed:
                try:
                    reads[job.id] = read_assignment(tx, self.runs, job, run=runs.get(job.run_id))
                except Exception as exc:
                    reads[job.id] = exc
        return [(job, self._prepare(job, reads[job.id], tokens.get(job.id))) for job in claimed]

    def _prepare(
        self, job: JobRecord, read: AssignmentRead | Exception, token: str | None
    ) -> _Prepared | Exception:
        """What the job's runner needs (and the job's last log seq), from what the claim
        read; `token`: the job's, if it has one."""
        prepared = finish_claimed(job, read, secrets=self.secrets, token=token)
        if isinstance(prepared, Exception):
            return prepared
        assignment = prepared.assignment
        if self.deployer is not None and token is not None:
            # `uses: shipline/deploy@v1` asks the server's worker, with the job's token.
            assignment = replace(assignment, deployer=self.deployer(job.id, token))
        return assignment, prepared.run, prepared.last_seq

    def _renew_and_reap(self) -> None:
        if self.running:
            with self.store.transaction() as tx:
                for job_id in list(self.running):
                    tx.jobs.renew_lease(
                        job_id, self.owner, lease_seconds=self.lease_seconds, now=self.clock.now()
                    )
        self.reap()

    def _start(self, job: JobRecord, prepared: _Prepared | Exception) -> None:
        cancel = asyncio.Event()
        task = asyncio.ensure_future(self._guarded(job, cancel, prepared))
        self.running[job.id] = (task, cancel)
        self.run_of[job.id] = job.run_id
        self.busy += 1

        def done(_: asyncio.Task[None]) -> None:
            self.running.pop(job.id, None)
            self.run_of.pop(job.id, None)
            self.busy -= 1
            self._wake.set()  # a slot is free: claim now

        task.add_done_callback(done)

    async def _guarded(
        self, job: JobRecord, cancel: asyncio.Event, prepared: _Prepared | Exception
    ) -> None:
        """Run a job; whatever goes wrong, the job ends (failed, with the reason) rather than
        staying in progress until its lease runs out."""
        try:
            await self._execute(job, cancel, prepared)
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

    async def _execute(
        self, job: JobRecord, cancel: asyncio.Event, prepared: _Prepared | Exception
    ) -> None:
        if isinstance(prepared, Exception):
            await asyncio.to_thread(
                self.runs.job_finished,
                job.id,
                Conclusion.FAILURE,
                error=f"cannot prepare the job: {prepared}",
            )
            return
        assignment, run, last_seq = prepared
        # The server masks again what the runner masked (defence in depth).
        token = [assignment.token] if assignment.token else []
        masker = Masker([*assignment.secrets.values(), *token])
        observer = StoreObserver(
            self.store, self.clock, job.id, run.id, masker=masker, first_seq=last_seq + 1
        )
        runner = self.make_runner(observer, run)
        self.job_runners[job.id] = runner
        try:
            result = await runner.run(assignment, cancel)
        except BaseException:
            await observer.settle()
            await asyncio.to_thread(observer.flush)
            raise
        finally:
            self.job_runners.pop(job.id, None)
        await observer.settle()
        conclusion = result.conclusion
        error = masker.mask(result.error) if result.error and masker else result.error
        if self._stopping.is_set() and conclusion is Conclusion.CANCELLED:
            error = self._stop_reason
        if conclusion is Conclusion.FAILURE and await asyncio.to_thread(
            self._continue_on_error, run, job
        ):
            conclusion = Conclusion.SUCCESS

        def end() -> None:
            """The job's end, then the scan of its log, in one worker thread."""
            try:
                self.runs.job_finished(
                    job.id,
                    conclusion,
                    outputs=result.outputs,
                    error=error,
                    before=observer.write_pending,
                    run_id=job.run_id,
                )
            except Exception:
                observer.flush()  # the log is kept whatever happens next
                raise
            # The log as written, when this observer wrote all of it: nothing is read back.
            scan_log(self.store, self.clock, job.id, observer.texts())

        await asyncio.to_thread(end)

    async def _watch_cancel(self) -> None:
        """Stop running jobs when the service publishes `job.cancel` for them or their run
        ends (one poll of the store for all of them)."""
        after: int | None = None
        while True:
            await asyncio.sleep(0.25)
            if not self.running:
                after = None  # idle: from the newest event when jobs run again
                continue
            watched = dict(self.run_of)
            try:
                after, stop = await asyncio.to_thread(self._cancelled, after, watched)
            except Exception:
                log.exception("cannot read cancellations")
                continue
            for job_id in stop:
                entry = self.running.get(job_id)
                if entry is not None:
                    entry[1].set()

    def _cancelled(self, after: int | None, watched: dict[int, int]) -> tuple[int, set[int]]:
        """The last event id seen, and the watched jobs to stop."""
        stop: set[int] = set()
        with self.store.transaction(write=False) as tx:
            if after is None:
                after = tx.events.last_id()
            while True:
                events = tx.events.since(after)
                for event in events:
                    if event.kind == "job.cancel" and event.job_id in watched:
                        stop.add(event.job_id)
                if events:
                    after = events[-1].id
                if len(events) < EVENTS_BATCH:
                    break
            for run_id in set(watched.values()):
                run = tx.runs.get(run_id)
                if run is not None and run.status is Status.COMPLETED:
                    stop.update(j for j, r in watched.items() if r == run_id)
        return after, stop

    def _continue_on_error(self, run: RunRecord, job: JobRecord) -> bool:
        return continue_on_error(self.store, self.runs, run, job)
