"""Runs on the server: trigger, advance, finish, cancel — every change persisted with its
event and audit record in one transaction.

The scheduling decisions come from `engine.dag.RunState`, so the server decides exactly as
`shipline run` does. The store is the source of truth: a run's state is replayed from its
stored jobs when this process has not seen the run yet (or the store shows that another
process changed it), and otherwise kept in memory and moved forward with each change this
process makes (`RunService.live`). Workflow files are read by the server from the
project's repository at the run's commit, never from a client.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from shipline.domain.clock import Clock
from shipline.domain.deployments import GateState
from shipline.domain.records import JobRecord, ProjectRecord, RunRecord, Trust
from shipline.domain.status import Conclusion, Status
from shipline.domain.transitions import InvalidTransition
from shipline.engine.combine import Combiner
from shipline.engine.dag import Finished, RunState, Skip
from shipline.engine.errors import Conflict, Invalid, NotFound
from shipline.engine.job_tokens import revoke_job_tokens
from shipline.engine.run_contexts import evaluate_flag, evaluate_group, github_context, run_event
from shipline.engine.run_jobs import (
    Replay,
    StoredJobs,
    dependents,
    new_job,
    outputs_of,
    placeholder,
)
from shipline.plan.compile import Plan, PlanError, PlannedJob, compile_plan
from shipline.plan.events import Event
from shipline.plan.inputs import InputError, resolve_inputs
from shipline.plan.triggers import triggered
from shipline.spec.diagnostics import Severity
from shipline.spec.expressions import ExpressionError
from shipline.spec.models import WorkflowSpec
from shipline.spec.workflow import load_workflow
from shipline.store.ports import NewJob, NewRun, Store, Transaction


class Gatekeeper(Protocol):
    """Decides, in the transaction that creates it, what happens to a job that targets an
    environment (`engine.gates.GateService`): it stays waiting, is released to the queue,
    or is ended with the reason. Returns True when it ended the job."""

    def open(
        self, tx: Transaction, run: RunRecord, job: JobRecord, planned: PlannedJob
    ) -> bool: ...


class SourceRepository(Protocol):
    """The server's view of a project's repository (see `scm.repository.GitRepository`)."""

    def fetch(self, extra: Sequence[str] = ()) -> None: ...

    def fetch_optional(self, ref: str) -> bool: ...

    def branches_and_tags(self) -> dict[str, str]: ...

    def has_commit(self, sha: str) -> bool: ...

    def changed_paths(self, before: str | None, sha: str) -> tuple[str, ...] | None: ...

    def merge_base(self, a: str, b: str) -> str | None: ...

    def resolve(self, ref: str) -> tuple[str, str]: ...

    def workflow_files(self, sha: str) -> list[str]: ...

    def read(self, sha: str, path: str) -> str: ...


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """What a caller asks for; everything else is decided by the server."""

    ref: str | None = None
    workflow: str | None = None
    event: str = "workflow_dispatch"
    inputs: Mapping[str, str] | None = None


# The key of a run's event payload that says why it waits for approval.
APPROVAL_KEY = "shipline_approval"

# How many runs' compiled plans and live states `RunService` keeps in memory.
PLAN_CACHE = 512


@dataclass(frozen=True, slots=True)
class _Kept:
    """What never changes in a run, kept per run id: its compiled plan, its `github`
    context (without the attempt) and its workflow file's text."""

    plan: Plan
    github: dict[str, object]
    text: str


@dataclass(frozen=True, slots=True)
class _End:
    """A job's end, as `job_finished` was told it."""

    job_id: int
    conclusion: Conclusion
    outputs: Mapping[str, str] | None
    error: str | None
    before: Callable[[Transaction], None] | None


@dataclass(slots=True)
class _Live:
    """A run's replayed state kept between changes (see `RunService.live`), with the
    counts of its attempt's stored jobs it reflects: completed is final within an attempt
    and jobs are never removed, so equal counts in the store mean nobody else changed what
    scheduling depends on."""

    replay: Replay
    attempt: int
    cancelled: bool
    jobs: int
    completed: int


class RunService:
    """Creates runs from events and moves them forward as their jobs end."""

    def __init__(
        self, store: Store, clock: Clock, repositories: Callable[[ProjectRecord], SourceRepository]
    ) -> None:
        self.store = store
        self.clock = clock
        self.repositories = repositories
        self._plans: OrderedDict[int, _Kept] = OrderedDict()
        self._live: OrderedDict[int, _Live] = OrderedDict()
        self._plans_lock = threading.Lock()
        # Called when jobs were queued (the embedded runner wakes up to claim them).
        self.queued_listeners: list[Callable[[], None]] = []
        # Holds jobs that target an environment until its protection rules pass (set by
        # `wiring`; None: such jobs queue like any other, as in `shipline run`).
        self.gatekeeper: Gatekeeper | None = None
        self._ends: Combiner[int, _End, JobRecord] = Combiner(self._end_jobs)

    # -- triggering ----------------------------------------------------------------------

    def trigger(
        self, project: ProjectRecord, request: TriggerRequest, *, actor: str
    ) -> list[RunRecord]:
        """Start the workflows the event triggers at the ref's current commit.

        A named workflow starts whatever its `on:` says (for dispatch/API calls); a broken
        workflow file gives a failed run whose error lists the diagnostics.
        """
        repo = self.repositories(project)
        repo.fetch()
        ref, sha = repo.resolve(request.ref or project.default_branch)
        files = repo.workflow_files(sha)
        if request.workflow is not None:
            wanted = request.workflow
            files = [f for f in files if wanted in (f, f.rsplit("/", 1)[-1])]
            if not files:
                raise NotFound(f"no workflow {wanted!r} at {ref}", field="workflow")
        event = Event(
            name=request.event,
            ref=ref,
            sha=sha,
            repository=project.name,
            actor=actor,
            payload={
                "ref": ref,
                "after": sha,
                "repository": {"full_name": project.name},
                "sender": {"login": actor},
            },
        )
        runs: list[RunRecord] = []
        for path in files:
            run = self._trigger_one(
                project,
                repo,
                path,
                event,
                Trust.TRUSTED,
                inputs=request.inputs,
                explicit=request.workflow is not None,
            )
            if run is not None:
                runs.append(run)
        return runs

    def trigger_event(
        self,
        project: ProjectRecord,
        event: Event,
        *,
        trust: Trust,
        fetch: bool = True,
        hold: str | None = None,
    ) -> list[RunRecord]:
        """Start the workflows at `event.sha` whose `on:` filters `event` matches (a push,
        a pull request), as `trust` — decided by the caller from where the event came
        from (`plan.trust`), never from the workflow. `fetch`: bring the mirror up to
        date first (False when the caller just did). `hold`: the runs wait (status
        waiting) until `approve`d, for the reason given."""
        repo = self.repositories(project)
        if fetch:
            repo.fetch()
        runs: list[RunRecord] = []
        for path in repo.workflow_files(event.sha):
            run = self._trigger_one(
                project, repo, path, event, trust, inputs=None, explicit=False, hold=hold
            )
            if run is not None:
                runs.append(run)
        return runs

    def _trigger_one(
        self,
        project: ProjectRecord,
        repo: SourceRepository,
        path: str,
        event: Event,
        trust: Trust,
        *,
        inputs: Mapping[str, str] | None,
        explicit: bool,
        hold: str | None = None,
    ) -> RunRecord | None:
        ref, sha, actor = event.ref, event.sha, event.actor
        text = repo.read(sha, path)
        spec, diagnostics = load_workflow(text, path)
        resolved: dict[str, object] = {}
        error: str | None = None
        plan: Plan | None = None
        group: str | None = None
        cancel_in_progress = False
        name = path
        if spec is None:
            error = "the workflow is invalid:\n" + "\n".join(
                d.format() for d in diagnostics if d.severity is Severity.ERROR
            )
        else:
            name = spec.display_name
            ok, _ = triggered(spec, event)
            if not ok and not explicit:
                return None
            if event.name == "workflow_dispatch":
                try:
                    resolved = resolve_inputs(spec.triggers.dispatch_inputs, inputs or {})
                except InputError as exc:
                    raise Invalid(
                        str(exc), field=f"inputs.{exc.field}" if exc.field else "inputs"
                    ) from exc
            try:
                plan = compile_plan(spec, event)
            except PlanError as exc:
                error = str(exc)
            if spec.concurrency is not None and error is None:
                try:
                    group = evaluate_group(
                        spec.concurrency.group, ref, sha, event.name, project.name, actor, resolved
                    )
                    cancel_in_progress = evaluate_flag(
                        spec.concurrency.cancel_in_progress, ref, event.name, resolved
                    )
                except ExpressionError as exc:
                    error = f"{path}: concurrency: {exc}"
        payload = dict(event.payload) if isinstance(event.payload, dict) else {}
        payload["inputs"] = resolved
        if hold is not None:
            payload[APPROVAL_KEY] = hold
        now = self.clock.now()
        created: list[int] = []
        try:
            with self.store.transaction() as tx:
                return self._create_run(
                    tx,
                    project,
                    spec if error is None else None,
                    created,
                    now=now,
                    new=NewRun(
                        project_id=project.id,
                        workflow_file=path,
                        workflow_name=name,
                        workflow_text=text,
                        event=event.name,
                        ref=ref,
                        sha=sha,
                        actor=actor,
                        trust=trust,
                        inputs=resolved,
                        event_payload=payload,
                        plan_digest=plan.digest if plan else "",
                        concurrency_group=group,
                    ),
                    error=error,
                    group=group,
                    cancel_in_progress=cancel_in_progress,
                    hold=hold,
                )
        except BaseException:
            for run_id in created:  # the run's id may be used again: nothing of it stays
                self._forget(run_id)
            raise

    def _create_run(
        self,
        tx: Transaction,
        project: ProjectRecord,
        spec: WorkflowSpec | None,
        created: list[int],
        *,
        now: datetime,
        new: NewRun,
        error: str | None,
        group: str | None,
        cancel_in_progress: bool,
        hold: str | None,
    ) -> RunRecord:
        run = tx.runs.create(new, now=now)
        created.append(run.id)
        if spec is not None:  # the workflow is parsed once: the run's plan is kept
            with suppress(PlanError):  # `state` reports it
                plan = compile_plan(spec, run_event(run, project, new.event_payload))
                github = github_context(run, project, new.event_payload)
                self._cache_plan(run.id, _Kept(plan, github, new.workflow_text))
        tx.audit.append(
            actor=new.actor,
            action="run.trigger",
            now=now,
            project_id=project.id,
            target=f"run:{run.id}",
            data={
                "workflow": new.workflow_file,
                "ref": new.ref,
                "sha": new.sha,
                "event": new.event,
                "trust": str(new.trust),
            },
        )
        tx.events.publish("run.created", now=now, run_id=run.id)
        if error is not None:
            run = tx.runs.set_status(
                run.id, Status.COMPLETED, Conclusion.FAILURE, now=now, error=error
            )
            tx.events.publish("run.completed", now=now, run_id=run.id)
            return run
        if hold is not None:
            run = tx.runs.set_status(run.id, Status.WAITING, now=now)
            tx.events.publish("run.waiting", now=now, run_id=run.id, data={"approval": hold})
            return run
        if group is not None and not self._admit(tx, run, group, cancel_in_progress):
            return tx.runs.get(run.id) or run
        return self._advance(tx, run)

    def approve(self, run_id: int, *, actor: str) -> RunRecord:
        """Let a run that waits for approval start. The approval is for this run, so for
        its commit only: a new push makes new runs that wait again. Who may approve is
        the caller's check (a maintainer, not the run's author)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            run = tx.runs.get(run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            _, payload = tx.runs.definition(run_id)
            waiting = isinstance(payload, dict) and APPROVAL_KEY in payload
            if run.status is not Status.WAITING or not waiting:
                raise Conflict(f"run {run_id} is not waiting for approval")
            tx.audit.append(
                actor=actor,
                action="run.approve",
                now=now,
                project_id=run.project_id,
                target=f"run:{run.id}",
                data={"sha": run.sha, "author": run.actor, "trust": str(run.trust)},
            )
            run = tx.runs.set_status(run.id, Status.QUEUED, now=now)
            tx.events.publish("run.approved", now=now, run_id=run.id, data={"by": actor})
            group = run.concurrency_group
            if group is not None and not self._admit(tx, run, group, False):
                return tx.runs.get(run.id) or run
            return self._advance(tx, run)

    def _admit(self, tx: Transaction, run: RunRecord, group: str, cancel_in_progress: bool) -> bool:
        """GitHub's concurrency groups: one running and one pending run per group.

        A new run replaces the pending one (cancelled); with `cancel-in-progress` it also
        cancels the running one. Returns False when the new run must wait (status waiting).
        """
        now = self.clock.now()
        others = [r for r in tx.runs.active_in_group(run.project_id, group) if r.id != run.id]
        running = False
        for other in others:
            if other.status is Status.WAITING or cancel_in_progress:
                self._cancel_in(
                    tx,
                    other,
                    reason=f"superseded by run {run.id} in concurrency group {group!r}",
                    actor="shipline",
                )
            else:
                running = True
        if running:
            tx.runs.set_status(run.id, Status.WAITING, now=now)
            tx.events.publish("run.waiting", now=now, run_id=run.id, data={"group": group})
            return False
        return True

    def _release(self, tx: Transaction, finished: RunRecord) -> None:
        """A run of a group completed: the pending run of the group may start."""
        if finished.concurrency_group is None:
            return
        waiting = [
            r
            for r in tx.runs.active_in_group(finished.project_id, finished.concurrency_group)
            if r.status is Status.WAITING
        ]
        if waiting:
            run = tx.runs.set_status(waiting[0].id, Status.QUEUED, now=self.clock.now())
            self._advance(tx, run)

    # -- moving forward ------------------------------------------------------------------

    def state(self, tx: Transaction, run: RunRecord) -> tuple[RunState, Plan]:
        """A fresh `RunState` for the run's plan (nothing recorded yet)."""
        kept = self._plan(tx, run)
        plan = kept.plan
        inputs = run.inputs if isinstance(run.inputs, dict) else {}
        github = {**kept.github, "run_attempt": str(run.attempt)}
        return RunState(plan, github=github, inputs=inputs), plan

    def github(self, tx: Transaction, run: RunRecord) -> dict[str, object]:
        """The run's `github` context (kept with its plan)."""
        return {**self._plan(tx, run).github, "run_attempt": str(run.attempt)}

    def workflow_text(self, tx: Transaction, run: RunRecord) -> str:
        """The run's workflow file as it was at its commit (kept with its plan)."""
        return self._plan(tx, run).text

    def _plan(self, tx: Transaction, run: RunRecord) -> _Kept:
        """The run's compiled plan, `github` context and workflow text.

        A run's definition never changes, so they are kept (per run id, the most recent
        runs): parsing the workflow at every job's start and end made a run's cost
        quadratic in its jobs.
        """
        with self._plans_lock:
            cached = self._plans.get(run.id)
            if cached is not None:
                self._plans.move_to_end(run.id)
        if cached is None:
            text, payload = tx.runs.definition(run.id)
            project = tx.projects.get_by_id(run.project_id)
            if project is None:
                raise NotFound(f"project of run {run.id} is gone")
            spec, _ = load_workflow(text, run.workflow_file)
            if spec is None:
                raise Invalid(f"run {run.id}: its workflow no longer loads")
            plan = compile_plan(spec, run_event(run, project, payload))
            cached = _Kept(plan, github_context(run, project, payload), text)
            self._cache_plan(run.id, cached)
        return cached

    def _cache_plan(self, run_id: int, kept: _Kept) -> None:
        with self._plans_lock:
            self._plans[run_id] = kept
            while len(self._plans) > PLAN_CACHE:
                self._plans.popitem(last=False)

    def _forget(self, run_id: int) -> None:
        """Drop what this process keeps of a run (after a failed transaction, a cancel)."""
        with self._plans_lock:
            self._plans.pop(run_id, None)
            self._live.pop(run_id, None)

    def planned_jobs(self, run_id: int) -> tuple[PlannedJob, ...]:
        """Every job the run's plan holds (matrix cells of static matrices expanded), for
        views that draw the whole DAG before its jobs are created. `NotFound` for no such
        run, `Invalid` when its workflow no longer loads."""
        with self.store.transaction(write=False) as tx:
            run = tx.runs.get(run_id)
            if run is None:
                raise NotFound("no such run")
            _, plan = self.state(tx, run)
        return plan.jobs

    def replay(self, tx: Transaction, run: RunRecord) -> Replay:
        """Feed the stored jobs of the run's attempt into a fresh `RunState`.

        Returns the state, every planned job seen (matrix cells expanded from outputs
        included) and the decisions about jobs not stored yet.
        """
        state, plan = self.state(tx, run)
        stored = StoredJobs(tx.jobs.for_run(run.id, run.attempt))
        if run.status is Status.COMPLETED and run.conclusion is Conclusion.CANCELLED:
            state.cancel()
        replay = Replay(state, plan, stored)
        _catch_up(replay, fresh=True)
        return replay

    def live(self, tx: Transaction, run: RunRecord) -> Replay:
        """The run's replayed state, kept in memory between its changes.

        Equal to `replay` (the store is the source of truth): rebuilt from the stored jobs
        when this process has none for the run's attempt, or when the store's counts of the
        attempt's jobs differ from the kept state's (another server changed the run). The
        caller changing the run must hold it (`tx.runs.lock`), record what it changes with
        `_note` and keep the result with `_keep` in the same transaction. The kept records
        of jobs not completed may lag behind the store (claims are not followed): only
        completion, which scheduling depends on, is current.
        """
        cancelled = run.status is Status.COMPLETED and run.conclusion is Conclusion.CANCELLED
        with self._plans_lock:
            live = self._live.get(run.id)
        current = (
            live is not None
            and live.attempt == run.attempt
            and live.cancelled == cancelled
            and tx.jobs.progress(run.id, run.attempt) == (live.jobs, live.completed)
        )
        if live is not None and current:
            live.replay.new = []
            return live.replay
        return self.replay(tx, run)

    def _keep(self, run: RunRecord, replay: Replay) -> None:
        """Keep the run's state after a change (see `live`)."""
        cancelled = run.status is Status.COMPLETED and run.conclusion is Conclusion.CANCELLED
        stored = replay.stored
        live = _Live(replay, run.attempt, cancelled, len(stored), stored.completed)
        with self._plans_lock:
            self._live[run.id] = live
            self._live.move_to_end(run.id)
            while len(self._live) > PLAN_CACHE:
                self._live.popitem(last=False)

    def planned(self, tx: Transaction, run: RunRecord, key: str) -> tuple[PlannedJob, Plan] | None:
        """A stored job's place in the run's plan (from the kept state when there is one)."""
        with self._plans_lock:
            live = self._live.get(run.id)
        if live is not None and live.attempt == run.attempt:
            found = live.replay.planned.get(key)
            if found is not None:
                return found, live.replay.plan
        replay = self.replay(tx, run)
        found = replay.planned.get(key)
        return None if found is None else (found, replay.plan)

    def continue_on_error(self, tx: Transaction, run: RunRecord, key: str) -> bool:
        """Does the job's `continue-on-error` turn its failure into a success?"""
        with self._plans_lock:
            live = self._live.get(run.id)
        if live is not None and live.attempt == run.attempt and key in live.replay.planned:
            state = live.replay.state
            planned = live.replay.planned[key]
        else:
            replay = self.replay(tx, run)
            state = replay.state
            found = replay.planned.get(key)
            if found is None:
                return False
            planned = found
        return state.continue_on_error(planned)

    def _advance(self, tx: Transaction, run: RunRecord, replay: Replay | None = None) -> RunRecord:
        """Create the jobs that became ready, skip those that will not run, and complete
        the run when nothing is left. Idempotent: jobs already stored are not created again.
        """
        now = self.clock.now()
        if replay is None:
            replay = self.live(tx, run)
        else:
            _catch_up(replay)
        if replay.new:
            decisions, replay.new = replay.new, []
            jobs = [self._new_job(d.job, d if isinstance(d, Skip) else None) for d in decisions]
            ended = False
            for created in tx.jobs.create(run.id, run.attempt, jobs, now=now):
                replay.stored[created.key] = created
                kind = {Status.QUEUED: "job.queued", Status.WAITING: "job.waiting"}.get(
                    created.status, "job.completed"
                )
                tx.events.publish(kind, now=now, run_id=run.id, job_id=created.id)
                if created.status is Status.WAITING and self.gatekeeper is not None:
                    planned = replay.planned[created.key]
                    ended = self.gatekeeper.open(tx, run, created, planned) or ended
            for listener in self.queued_listeners:
                listener()
            if ended:  # a gate ended a job: what depends on it is decided now
                return self._advance(tx, run)
        if replay.state.finished() and run.status is not Status.COMPLETED:
            run = tx.runs.set_status(run.id, Status.COMPLETED, replay.state.conclusion(), now=now)
            tx.events.publish("run.completed", now=now, run_id=run.id)
            self._release(tx, run)
        self._keep(run, replay)
        return run

    def _new_job(self, job: PlannedJob, skip: Skip | None) -> NewJob:
        created = new_job(job, skip)
        if skip is None and job.spec.environment is not None and self.gatekeeper is not None:
            return replace(created, status=Status.WAITING)
        return created

    def release_job(self, tx: Transaction, job: JobRecord) -> JobRecord:
        """A waiting job's gate passed: it joins the queue (in the caller's transaction)."""
        now = self.clock.now()
        job = tx.jobs.set_status(job.id, Status.QUEUED, now=now)
        tx.events.publish("job.queued", now=now, run_id=job.run_id, job_id=job.id)
        return job

    def wake_runners(self) -> None:
        """Tell the runners that jobs were queued (after the transaction committed)."""
        for listener in self.queued_listeners:
            listener()

    def end_waiting_job(self, tx: Transaction, job: JobRecord, error: str) -> None:
        """A waiting job's gate refused or was rejected: the job fails with `error` and its
        run moves on (in the caller's transaction)."""
        self._finish_in(tx, job, Conclusion.FAILURE, outputs=None, error=error)

    def job_started(self, job_id: int) -> None:
        """A runner began a claimed job: the run is in progress."""
        with self.store.transaction() as tx:
            job = tx.jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            self.started(tx, job)

    def started(self, tx: Transaction, *jobs: JobRecord) -> dict[int, RunRecord]:
        """`job_started` for claimed jobs, inside the caller's transaction (the one that
        claimed them); returns their runs as read (by id). The runs change first and the
        events follow, so that the event feed's lock (PostgreSQL) is taken after the runs'
        rows, as everywhere else."""
        now = self.clock.now()
        started: list[int] = []
        read: dict[int, RunRecord] = {}
        for run_id in sorted({job.run_id for job in jobs}):
            run = tx.runs.get(run_id)
            if run is None:
                continue
            read[run_id] = run
            if run.status is not Status.QUEUED:
                continue
            try:  # `set_status` locks the run: of two jobs starting at once, one moves it
                read[run_id] = tx.runs.set_status(run_id, Status.IN_PROGRESS, now=now)
                started.append(run_id)
            except InvalidTransition:
                pass  # another job of the run started at the same moment: it is running
        for run_id in started:
            tx.events.publish("run.started", now=now, run_id=run_id)
        for job in jobs:
            tx.events.publish("job.started", now=now, run_id=job.run_id, job_id=job.id)
        return read

    def job_finished(
        self,
        job_id: int,
        conclusion: Conclusion,
        *,
        outputs: Mapping[str, str] | None = None,
        error: str | None = None,
        before: Callable[[Transaction], None] | None = None,
        run_id: int | None = None,
    ) -> JobRecord:
        """A job ended: store it, apply fail-fast, and advance its run.

        `before` writes what the job's runner still holds (its last steps and log lines)
        in the same transaction, first: rows of the job's own (never its run's or its
        job row), written before the run's lock is taken, which is then held for the
        run's change alone. `run_id`: the job's run, when the caller knows it; the ends of
        the run's jobs that arrive while another holds its lock are then stored together,
        in one transaction (`combine.py`: the jobs of a wide matrix end at once).
        """
        end = _End(job_id, conclusion, outputs, error, before)
        if run_id is None:
            return self._end_jobs(None, [end])[0]
        return self._ends.submit(run_id, end)

    def _end_jobs(self, run_id: int | None, ends: Sequence[_End]) -> list[JobRecord]:
        """`job_finished` for jobs of run `run_id` (None: the one job's run, read), in one
        transaction holding the run's lock once; the run advances once, after them all."""
        try:
            with self.store.transaction() as tx:
                if run_id is None:
                    found = tx.jobs.get(ends[0].job_id)
                    if found is None:
                        raise NotFound(f"no job {ends[0].job_id}")
                    run_id = found.run_id
                for end in ends:  # their events and audit records are written last
                    if end.before is not None:
                        end.before(tx)
                run = tx.runs.lock(run_id)  # one change of a run at a time
                if run is None:
                    raise NotFound(f"no run {run_id}")
                replay: Replay | None = None
                ended: list[JobRecord] = []
                for end in ends:
                    job = tx.jobs.get(end.job_id)
                    if job is None or job.run_id != run_id:
                        raise NotFound(f"no job {end.job_id} in run {run_id}")
                    if job.status is Status.COMPLETED:
                        ended.append(job)  # a repeated report changes nothing
                        continue
                    current = job.attempt == run.attempt
                    if current and replay is None:  # before the first change of the attempt
                        replay = self.live(tx, run)
                    ended.append(
                        self._complete_in(
                            tx, run, job, end.conclusion, end.outputs, end.error,
                            replay if current else None,
                        )
                    )  # fmt: skip
                if replay is not None:
                    self._advance(tx, run, replay)
                return ended
        except BaseException:
            if run_id is not None:
                self._forget(run_id)
            raise

    def _finish_in(
        self,
        tx: Transaction,
        job: JobRecord,
        conclusion: Conclusion,
        *,
        outputs: Mapping[str, str] | None,
        error: str | None,
    ) -> JobRecord:
        """Complete `job` in the caller's transaction (which holds its run's lock when the
        run may change elsewhere), apply fail-fast and advance the run."""
        run = tx.runs.get(job.run_id)
        assert run is not None
        replay = self.live(tx, run) if job.attempt == run.attempt else None
        job = self._complete_in(tx, run, job, conclusion, outputs, error, replay)
        if replay is not None:
            self._advance(tx, run, replay)
        return job

    def _complete_in(
        self,
        tx: Transaction,
        run: RunRecord,
        job: JobRecord,
        conclusion: Conclusion,
        outputs: Mapping[str, str] | None,
        error: str | None,
        replay: Replay | None,
    ) -> JobRecord:
        """Complete `job` of `run` and apply fail-fast; `replay`: the run's state, which
        learns it (None: a job of an earlier attempt). The caller advances the run."""
        now = self.clock.now()
        had_token = job.status is Status.IN_PROGRESS  # a claimed job: its token dies with it
        job = tx.jobs.set_status(
            job.id,
            Status.COMPLETED,
            conclusion,
            now=now,
            outputs=dict(outputs or {}),
            error=error,
        )
        tx.events.publish(
            "job.completed",
            now=now,
            run_id=job.run_id,
            job_id=job.id,
            data={"conclusion": str(conclusion)},
        )
        if had_token:  # after the job's row, as the event feed's lock (SECURITY-CASES 20)
            revoke_job_tokens(tx, job.id, now=now, project_id=run.project_id)
        if replay is not None:
            _note(replay, job)
            if conclusion is Conclusion.FAILURE:
                self._fail_fast(tx, run, job, replay)
        return job

    def _fail_fast(
        self, tx: Transaction, run: RunRecord, failed: JobRecord, replay: Replay
    ) -> None:
        planned = replay.planned.get(failed.key)
        if planned is None or not replay.state.is_fail_fast(planned):
            return
        now = self.clock.now()
        # The store's statuses: the kept state does not follow claims (queued or running).
        for sibling in tx.jobs.for_run(run.id, run.attempt):
            if sibling.job_id != failed.job_id or sibling.id == failed.id:
                continue
            if sibling.status is Status.QUEUED:
                cancelled = tx.jobs.set_status(
                    sibling.id,
                    Status.COMPLETED,
                    Conclusion.CANCELLED,
                    now=now,
                    error="fail-fast: another matrix cell failed",
                )
                _note(replay, cancelled)
            elif sibling.status is Status.IN_PROGRESS:
                tx.events.publish("job.cancel", now=now, run_id=run.id, job_id=sibling.id)

    def rerun(self, run_id: int, *, actor: str, failed_only: bool = False) -> RunRecord:
        """A new attempt of a completed run at the same commit.

        `failed_only` re-runs the jobs that did not succeed and every job that depends on
        them; the others keep their result and outputs, as GitHub's "re-run failed jobs".
        Earlier attempts' jobs, steps and logs stay.
        """
        now = self.clock.now()
        with self.store.transaction() as tx:
            run = tx.runs.lock(run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if run.status is not Status.COMPLETED:
                raise Conflict(f"run {run_id} is {run.status}: only a completed run can be re-run")
            previous = tx.jobs.for_run(run.id, run.attempt)
            keep: list[JobRecord] = []
            if failed_only:
                bad = {
                    j.job_id
                    for j in previous
                    if j.conclusion not in (Conclusion.SUCCESS, Conclusion.SKIPPED)
                }
                if not bad:
                    raise Conflict(f"run {run_id} has no failed job to re-run")
                _, plan = self.state(tx, run)
                again = dependents(plan, bad)
                keep = [
                    j
                    for j in previous
                    if j.job_id not in again and j.conclusion is Conclusion.SUCCESS
                ]
            run = tx.runs.new_attempt(run_id, now=now)
            if keep:
                copies = tx.jobs.create(
                    run.id,
                    run.attempt,
                    [
                        NewJob(
                            key=j.key,
                            job_id=j.job_id,
                            name=j.name,
                            matrix=j.matrix,
                            needs=j.needs,
                            runs_on=j.runs_on,
                            timeout_minutes=j.timeout_minutes,
                        )
                        for j in keep
                    ],
                    now=now,
                )
                for copy, old in zip(copies, keep, strict=True):
                    tx.jobs.set_status(
                        copy.id, Status.COMPLETED, old.conclusion, now=now, outputs=old.outputs
                    )
            tx.audit.append(
                actor=actor,
                action="run.rerun",
                now=now,
                project_id=run.project_id,
                target=f"run:{run.id}",
                data={"attempt": run.attempt, "failed_only": failed_only},
            )
            tx.events.publish("run.created", now=now, run_id=run.id, data={"attempt": run.attempt})
            return self._advance(tx, run)

    def cancel(self, run_id: int, *, actor: str) -> RunRecord:
        """Cancel a run: queued jobs end cancelled, running ones are told to stop."""
        with self.store.transaction() as tx:
            run = tx.runs.lock(run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if run.status is Status.COMPLETED:
                return run
            run = self._cancel_in(tx, run, reason=f"cancelled by {actor}", actor=actor)
            self._release(tx, run)
            return run

    def _cancel_in(self, tx: Transaction, run: RunRecord, *, reason: str, actor: str) -> RunRecord:
        now = self.clock.now()
        for job in tx.jobs.for_run(run.id, run.attempt):
            if job.status in (Status.QUEUED, Status.WAITING):
                tx.jobs.set_status(job.id, Status.COMPLETED, Conclusion.CANCELLED, now=now)
            elif job.status is Status.IN_PROGRESS:
                tx.events.publish("job.cancel", now=now, run_id=run.id, job_id=job.id)
        for gate in tx.gates.for_run(run.id):
            if gate.state is GateState.WAITING:  # nobody needs to decide any more
                tx.gates.set_state(gate.id, GateState.REFUSED, now=now, reason=reason)
        run = tx.runs.set_status(
            run.id, Status.COMPLETED, Conclusion.CANCELLED, now=now, error=reason
        )
        tx.audit.append(
            actor=actor,
            action="run.cancel",
            now=now,
            project_id=run.project_id,
            target=f"run:{run.id}",
            reason=reason,
        )
        tx.events.publish("run.completed", now=now, run_id=run.id)
        return run


def _note(replay: Replay, record: JobRecord) -> None:
    """A stored job changed: the kept state learns it (a completed job is recorded)."""
    replay.stored[record.key] = record
    if record.status is Status.COMPLETED:
        job = replay.state.running.get(record.key)
        if job is not None:
            replay.state.record(
                Finished(
                    record.key,
                    job.job_id,
                    record.conclusion or Conclusion.FAILURE,
                    outputs_of(record),
                )
            )


def _catch_up(replay: Replay, *, fresh: bool = False) -> None:
    """Decide until nothing changes: new decisions become `replay.new` (placeholders in
    `stored` until created), stored jobs that completed are recorded. `fresh`: the state
    has just been built, any of its running jobs may have completed; else `_note`
    recorded every completion as it came, and only jobs started here need a look."""
    state = replay.state
    look = list(state.running) if fresh else []
    while True:
        decisions = state.decide()
        for decision in decisions:
            replay.planned[decision.job.key] = decision.job
            if decision.job.key not in replay.stored:
                replay.new.append(decision)
                replay.stored[decision.job.key] = placeholder(decision.job)
            look.append(decision.job.key)
        replayed = False
        for key in look:
            job = state.running.get(key)
            record = replay.stored.get(key)
            if job is not None and record is not None and record.status is Status.COMPLETED:
                state.record(
                    Finished(
                        key,
                        job.job_id,
                        record.conclusion or Conclusion.FAILURE,
                        outputs_of(record),
                    )
                )
                replayed = True
        look = []
        if not decisions and not replayed:
            return
