"""The server's side of remote runners: hand out jobs, renew leases, take a job's messages.

A runner asks for a job (`request`, a long poll); the claim, the job token and the
assignment are made in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write
lock on SQLite), so no job is handed out twice, by any server. The runner then renews its
leases (`watch`: a heartbeat that also answers at once when a job must stop) and reports
what its job does with the job token, which acts on that job only: logs (numbered, stored
once), steps, and the end. A message from a runner whose try was lost is refused
(`Conflict`, 409): the job belongs to another try now.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from shipline.domain.clock import Clock
from shipline.domain.records import JobRecord, StepRecord, TokenKind
from shipline.domain.runners import AssignmentRecord, AssignmentState, RunnerRecord
from shipline.domain.status import Conclusion, Status
from shipline.domain.transitions import InvalidTransition
from shipline.engine.access import AccessService, Principal
from shipline.engine.assignments import (
    AssignmentRead,
    continue_on_error,
    finish_claimed,
    issue_token,
    read_assignment,
)
from shipline.engine.errors import Conflict
from shipline.engine.joblog import JobMaskers, mask_text, scan_log
from shipline.engine.leases import LeasePolicy, remote_owner
from shipline.engine.secrets import SecretService
from shipline.engine.service import RunService
from shipline.runner.remote.protocol import (
    EventOut,
    FinishIn,
    HeartbeatOut,
    JobOut,
    LogChunkIn,
    StepIn,
)
from shipline.security.masking import Masker
from shipline.store.ports import SIGNAL_QUEUED, QueueSignals, Store, Transaction

log = logging.getLogger(__name__)

JOB_TOKENS = frozenset({TokenKind.JOB})
# How often a waiting long poll reads the store again, without and with queue signals.
UNSIGNALLED_POLL = 0.25
SIGNALLED_POLL = 5.0


@dataclass(frozen=True, slots=True)
class Holder:
    """The try of a job a job token belongs to, checked to be still running."""

    assignment: AssignmentRecord
    job: JobRecord


class Waker:
    """Wakes long polls waiting for something to happen (work queued, a job to stop).

    `wake()` may be called from any thread; waiters run on event loops. A waiter that
    read `generation` before it looked at the store passes it to `wait`, which then
    returns at once if a wake-up came in between (none is lost to that race).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.generation = 0

    def wake(self) -> None:
        with self._lock:
            self.generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def wait(self, timeout: float, since: int | None = None) -> None:
        """Return when woken (or woken since `generation` was `since`) or after `timeout`
        seconds."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if since is not None and since != self.generation:
                return
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(entry[1].wait(), timeout=timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)


T = TypeVar("T")
# Tries of a run-service call that a concurrent transaction may abort (a deadlock that
# PostgreSQL detected and resolved by failing one side).
TRIES = 3


def _again(call: Callable[[], T]) -> T:
    for attempt in range(TRIES):
        try:
            return call()
        except (Conflict, InvalidTransition, LookupError):
            raise
        except Exception:
            if attempt == TRIES - 1:
                raise
            log.warning("retrying after a failed transaction", exc_info=True)
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


class RemoteJobs:
    """Jobs for remote runners, over the store and the run service.

    `signals`: wake-ups when jobs are queued or must stop, on any server sharing the
    database (`QueueSignals`); `poll_interval`: how often a waiting long poll looks at the
    store again all the same (default 0.25 s without signals; 5 s with them, a safety net
    for a signal lost with a connection); `policy`: heartbeat and lease times.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        runs: RunService,
        access: AccessService,
        *,
        policy: LeasePolicy | None = None,
        poll_interval: float | None = None,
        secrets: SecretService | None = None,
        signals: QueueSignals | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.runs = runs
        # Opens the secrets a claimed job references (None: remote jobs get none).
        self.secrets = secrets
        # What runners send is masked again with the job's secrets (`JobMaskers`).
        self.maskers = JobMaskers(secrets.values_for_masking if secrets is not None else None)
        self.access = access
        self.policy = policy or LeasePolicy()
        if poll_interval is None:
            poll_interval = SIGNALLED_POLL if signals is not None else UNSIGNALLED_POLL
        self.poll_interval = poll_interval
        # Long polls for work wait on `waker`, heartbeats for cancellations on `stops`.
        self.waker = Waker()
        self.stops = Waker()
        runs.queued_listeners.append(self.waker.wake)
        self._signals = signals
        self._unlisten = signals.listen(self._signal) if signals is not None else None

    def _signal(self, signal: str) -> None:
        (self.waker if signal == SIGNAL_QUEUED else self.stops).wake()

    def close(self) -> None:
        """Stop listening for queue signals (and being woken by the run service)."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self.waker.wake in self.runs.queued_listeners:
            self.runs.queued_listeners.remove(self.waker.wake)

    # -- handing out jobs --------------------------------------------------------------

    async def request(
        self, runner: RunnerRecord, wait: float, labels: frozenset[str] | None = None
    ) -> JobOut | None:
        """A job whose `runs-on` is within `labels` (default: the runner's), waiting up to
        `wait` seconds for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            seen = self.waker.generation
            job = await asyncio.to_thread(self.claim, runner, labels)
            left = deadline - loop.time()
            if job is not None or left <= 0:
                return job
            await self.waker.wait(min(left, self.poll_interval), since=seen)

    def claim(self, runner: RunnerRecord, labels: frozenset[str] | None = None) -> JobOut | None:
        """Claim one job for the runner now (None: none it can run, or it is paused)."""
        if runner.paused or runner.removed_at is not None:
            return None
        now = self.clock.now()
        with self.store.transaction() as tx:
            job = tx.jobs.claim(
                remote_owner(runner.id),
                frozenset(runner.labels) if labels is None else labels,
                lease_seconds=self.policy.lease_seconds,
                now=now,
            )
            if job is None:
                return None
            # The run is in progress from this commit on (its row locked before the event
            # feed's lock, which the job token's audit record takes, as everywhere).
            run = self.runs.started(tx, job).get(job.run_id)
            # The job's token, as the embedded runner's jobs get theirs (`issue_token`).
            # Handed out now (its `last_used_at`): its first messages need not write it.
            token, record = issue_token(tx, self.runs, job, now=now, run=run, handed_out=True)
            assignment = tx.runners.assign(runner.id, job.id, job.tries, record.id, now=now)
            # A retried job keeps its earlier tries' steps and log; this try's follow them
            # (a first try has none).
            next_seq = tx.logs.last_seq(job.id) + 1 if job.tries != 1 else 0
            first_step = len(tx.steps.for_job(job.id)) if job.tries != 1 else 0
            # What the runner is handed, read in this transaction; a failure to read it
            # fails the job once the claim is committed (below), not the claim.
            read: AssignmentRead | Exception
            try:
                read = read_assignment(tx, self.runs, job, with_text=True, run=run)
            except Exception as exc:
                read = exc
        prepared = finish_claimed(job, read, secrets=self.secrets, token=token)
        if isinstance(prepared, Exception):
            self._end(assignment, AssignmentState.FINISHED)
            self.runs.job_finished(
                job.id, Conclusion.FAILURE, error=f"cannot prepare the job: {prepared}"
            )
            return None
        a = prepared.assignment
        self.maskers.remember(job.id, [*a.secrets.values(), token], job.run_id)
        ev = a.event
        return JobOut(
            job_id=job.id,
            run_id=job.run_id,
            try_number=job.tries,
            token=token,
            key=job.key,
            workflow_job=job.job_id,
            name=job.name,
            matrix=[(k, v) for k, v in a.planned.matrix],  # type: ignore[misc]
            matrix_index=a.planned.matrix_index,
            matrix_total=a.planned.matrix_total,
            needs_ids=list(a.planned.needs),
            workflow_file=prepared.run.workflow_file,
            workflow_text=prepared.workflow_text,
            event=EventOut(
                name=ev.name,
                ref=ev.ref,
                sha=ev.sha,
                repository=ev.repository,
                actor=ev.actor,
                inputs=dict(ev.inputs),  # type: ignore[arg-type]
                payload=ev.payload,  # type: ignore[arg-type]
            ),
            github=dict(a.github),  # type: ignore[arg-type]
            needs=dict(a.needs),  # type: ignore[arg-type]
            inputs=dict(a.inputs),  # type: ignore[arg-type]
            trust=a.trust.value,
            secrets=dict(a.secrets),
            next_seq=next_seq,
            first_step=first_step,
            lease_seconds=self.policy.lease_seconds,
            heartbeat_seconds=self.policy.heartbeat_seconds,
        )

    # -- leases ------------------------------------------------------------------------

    def heartbeat(self, runner: RunnerRecord, job_ids: Sequence[int]) -> HeartbeatOut:
        """Renew the runner's leases on `job_ids`; say which to stop and which are lost."""
        now = self.clock.now()
        owner = remote_owner(runner.id)
        lost: list[int] = []
        # A lease is renewed once a heartbeat interval has passed since it was last
        # renewed: runners may ask more often (their heartbeat is also the cancel channel)
        # without a write each time.
        due = now + timedelta(seconds=self.policy.lease_seconds - self.policy.heartbeat_seconds)
        with self.store.transaction(write=False) as tx:
            held = {
                a.job_id
                for a in tx.runners.assignments(runner_id=runner.id, state=AssignmentState.RUNNING)
            }
            jobs = {j: tx.jobs.get(j) for j in job_ids if j in held}
        renew: list[int] = []
        for job_id in job_ids:
            job = jobs.get(job_id)
            if job is None or job.status is not Status.IN_PROGRESS or job.lease_owner != owner:
                lost.append(job_id)
            elif job.lease_expires_at is None or job.lease_expires_at <= due:
                renew.append(job_id)
        if renew:
            with self.store.transaction() as tx:
                for job_id in renew:
                    if not tx.jobs.renew_lease(
                        job_id, owner, lease_seconds=self.policy.lease_seconds, now=now
                    ):
                        lost.append(job_id)
        alive = [j for j in job_ids if j not in lost]
        return HeartbeatOut(cancel=sorted(self._cancelled(alive)), lost=lost)

    async def watch(
        self, runner: RunnerRecord, job_ids: Sequence[int], wait: float
    ) -> HeartbeatOut:
        """`heartbeat`, then hold the answer up to `wait` seconds unless a job must stop:
        cancellation reaches the runner as soon as the stop signal does (else within
        `poll_interval`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        seen = self.stops.generation
        answer = await asyncio.to_thread(self.heartbeat, runner, job_ids)
        alive = [j for j in job_ids if j not in answer.lost]
        while not answer.cancel and not answer.lost and alive:
            left = deadline - loop.time()
            if left <= 0:
                break
            await self.stops.wait(min(left, self.poll_interval), since=seen)
            seen = self.stops.generation
            cancel = await asyncio.to_thread(self._cancelled, alive)
            answer = HeartbeatOut(cancel=sorted(cancel))
        return answer

    def _cancelled(self, job_ids: Sequence[int]) -> set[int]:
        with self.store.transaction(write=False) as tx:
            return tx.runners.cancelled(job_ids)

    # -- a job's messages (job token) --------------------------------------------------

    def holder(self, principal: Principal, job_id: int, *, action: str) -> Holder:
        """The running try a job token belongs to; `Forbidden` for another job's token,
        `Conflict` when that try's lease was lost."""
        self.access.require_job(principal, job_id, action=action)
        with self.store.transaction(write=False) as tx:
            assignment = tx.runners.assignment_by_token(principal.token_id)
            job = tx.jobs.get(job_id)
        if assignment is None or job is None or assignment.state is not AssignmentState.RUNNING:
            raise Conflict(
                f"this runner no longer holds job {job_id}: its lease ran out and the job "
                "was given to another try"
            )
        return Holder(assignment, job)

    def _held(self, tx: Transaction, principal: Principal, job_id: int) -> JobRecord:
        """Inside a writing transaction: the job, when the token's try still holds it
        (`Conflict` otherwise). One transaction per message: the check and the write."""
        self._still_running(tx.runners.assignment_by_token(principal.token_id), job_id)
        job = tx.jobs.get(job_id)
        if job is None:
            raise Conflict(f"this runner no longer holds job {job_id}")
        return job

    def append_logs(self, principal: Principal, job_id: int, chunks: Sequence[LogChunkIn]) -> int:
        """Store log chunks; a seq stored already is skipped. Returns how many were new."""
        return self.report(principal, job_id, chunks, ())

    def step(self, principal: Principal, job_id: int, step: StepIn) -> None:
        """A step started or ended."""
        self.report(principal, job_id, (), (step,))

    def report(
        self,
        principal: Principal,
        job_id: int,
        chunks: Sequence[LogChunkIn],
        steps: Sequence[StepIn],
    ) -> int:
        """Log chunks and steps of a running job, in one transaction with the check that
        the token's try still holds the job; a chunk stored already is skipped. Returns
        how many chunks were new."""
        self._require(principal, job_id, chunks, steps)
        masker = self._masker(job_id)
        try:
            with self.store.transaction() as tx:
                job = self._held(tx, principal, job_id)
                return self._write(tx, job, masker, chunks, steps)
        except InvalidTransition as exc:
            raise Conflict(str(exc), field="status") from exc

    def _require(
        self,
        principal: Principal,
        job_id: int,
        chunks: Sequence[LogChunkIn],
        steps: Sequence[StepIn],
    ) -> None:
        # The scopes each part of a message needs (no transaction when they are given).
        if chunks:
            self.access.require_job(principal, job_id, action="log.write")
        if steps or not chunks:
            self.access.require_job(principal, job_id, action="step.write")

    def _write(
        self,
        tx: Transaction,
        job: JobRecord,
        masker: Masker,
        chunks: Sequence[LogChunkIn],
        steps: Sequence[StepIn],
    ) -> int:
        """Store a message's steps and log chunks (masked) in the caller's transaction."""
        now = self.clock.now()
        for step in _latest(steps):
            completed = step.status is Status.COMPLETED
            name = mask_text(masker, step.name)
            tx.steps.upsert(
                StepRecord(
                    job.id,
                    step.index,
                    step.key,
                    name,
                    Status.COMPLETED if completed else Status.IN_PROGRESS,
                    step.conclusion if completed else None,
                    step.exit_code,
                    started_at=step.started_at or now,
                    finished_at=(step.finished_at or now) if completed else None,
                )
            )
            data: dict[str, object] = {"step": step.index, "name": name}
            if completed:
                data = {"step": step.index, "conclusion": str(step.conclusion)}
            tx.events.publish(
                "step.completed" if completed else "step.started",
                now=now,
                run_id=job.run_id,
                job_id=job.id,
                data=data,
            )
        stored = 0
        for chunk in chunks:
            data_bytes = mask_text(masker, chunk.text).encode("utf-8", errors="replace")
            if tx.logs.append(job.id, chunk.seq, data_bytes, chunk.step):
                stored += 1
                tx.events.publish(
                    "log", now=now, run_id=job.run_id, job_id=job.id, data={"seq": chunk.seq}
                )
        return stored

    def finish(self, principal: Principal, job_id: int, result: FinishIn) -> JobRecord:
        """The job ended on the runner: store what the message still carries (its last log
        chunks and steps), end the try and move the run on, in one transaction. Safe to
        repeat (a runner resends when it did not get the answer)."""
        self.access.require_job(principal, job_id, action="job.finish")
        if result.chunks or result.steps:
            self._require(principal, job_id, result.chunks, result.steps)
        conclusion = result.conclusion
        masker = self._masker(job_id)
        # As GitHub does, an output that holds a secret is dropped (the runner did already).
        outputs = {k: v for k, v in result.outputs.items() if mask_text(masker, v) == v}
        error = mask_text(masker, result.error) if result.error is not None else None
        if conclusion is Conclusion.FAILURE:
            with self.store.transaction(write=False) as tx:
                job = tx.jobs.get(job_id)
                run = tx.runs.get(job.run_id) if job is not None else None
            if (
                job is not None
                and run is not None
                and continue_on_error(self.store, self.runs, run, job)
            ):
                conclusion = Conclusion.SUCCESS
        # Whether the job's whole log is in this message (nothing stored before it): it
        # is then scanned for credentials from here, without reading it back.
        whole_log: list[bool] = []

        def before(tx: Transaction) -> None:
            """In `job_finished`'s transaction, before the run's lock: the try's end (which
            checks that the runner still holds the job), the message's log and steps."""
            ended = tx.runners.end_by_token(
                principal.token_id, AssignmentState.FINISHED, now=self.clock.now()
            )
            if ended is None:
                assignment = tx.runners.assignment_by_token(principal.token_id)
                if assignment is None or assignment.state is AssignmentState.LOST:
                    raise Conflict(f"this runner no longer holds job {job_id}")
                return  # a repeated report: stored with the first one
            job = tx.jobs.get(job_id)
            if job is None:
                raise Conflict(f"this runner no longer holds job {job_id}")
            stored = self._write(tx, job, masker, result.chunks, result.steps)
            # Scanned when this report ends it (not when the server ended it already). A
            # runner sends its chunks in order, each until it is stored: when this
            # message's chunks were all new and start the log, none came before them.
            if job.status is not Status.COMPLETED:
                seqs = {chunk.seq for chunk in result.chunks}
                whole_log.append(
                    0 in seqs and stored == len(seqs) if seqs else tx.logs.last_seq(job_id) < 0
                )

        try:
            finished = _again(
                lambda: self.runs.job_finished(
                    job_id,
                    conclusion,
                    outputs=outputs,
                    error=error,
                    before=before,
                    run_id=self.maskers.run_id(job_id),
                )
            )
        except InvalidTransition as exc:
            raise Conflict(str(exc), field="status") from exc
        self.maskers.forget(job_id)
        if whole_log and whole_log[-1]:
            first: dict[int, str] = {}
            for chunk in result.chunks:  # as stored: a seq given twice is stored once
                first.setdefault(chunk.seq, chunk.text)
            texts = [
                mask_text(masker, first[seq]).encode("utf-8", errors="replace")
                for seq in sorted(first)
            ]
            scan_log(self.store, self.clock, job_id, texts=texts)
        elif whole_log:  # not for a repeated report
            scan_log(self.store, self.clock, job_id)
        return finished

    def _masker(self, job_id: int) -> Masker:
        def project_id() -> int | None:
            with self.store.transaction(write=False) as tx:
                job = tx.jobs.get(job_id)
                run = tx.runs.get(job.run_id) if job is not None else None
            return run.project_id if run is not None else None

        return self.maskers.get(job_id, project_id)

    def _end(self, assignment: AssignmentRecord, state: AssignmentState) -> bool:
        with self.store.transaction() as tx:
            return tx.runners.end_assignment(assignment.id, state, now=self.clock.now())

    @staticmethod
    def _still_running(assignment: AssignmentRecord | None, job_id: int) -> None:
        if assignment is None or assignment.state is not AssignmentState.RUNNING:
            raise Conflict(f"this runner no longer holds job {job_id}")


def _latest(steps: Sequence[StepIn]) -> list[StepIn]:
    """The steps of a message, a step's start dropped when its end follows (the end
    carries its start time)."""
    ended = {s.index for s in steps if s.status is Status.COMPLETED}
    return [s for s in steps if s.status is Status.COMPLETED or s.index not in ended]
