"""Runs on the server: trigger, advance, finish, cancel — every change persisted with its
event and audit record in one transaction.

The scheduling decisions come from `engine.dag.RunState`, rebuilt from the stored jobs after
each change, so the server decides exactly as `shipline run` does. Workflow files are read
by the server from the project's repository at the run's commit, never from a client.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from shipline.domain.clock import Clock
from shipline.domain.deployments import GateState
from shipline.domain.records import JobRecord, ProjectRecord, RunRecord
from shipline.domain.status import Conclusion, Status
from shipline.domain.transitions import InvalidTransition
from shipline.engine.dag import Finished, RunState, Skip
from shipline.engine.errors import Conflict, Invalid, NotFound
from shipline.engine.run_contexts import evaluate_flag, evaluate_group, github_context, run_event
from shipline.engine.run_jobs import Replay, dependents, new_job, outputs_of, placeholder
from shipline.engine.trust import trust_of
from shipline.plan.compile import Plan, PlanError, PlannedJob, compile_plan
from shipline.plan.events import Event
from shipline.plan.inputs import InputError, resolve_inputs
from shipline.plan.triggers import triggered
from shipline.spec.diagnostics import Severity
from shipline.spec.expressions import ExpressionError
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

    def fetch(self) -> None: ...

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


# How many runs' compiled plans `RunService` keeps in memory.
PLAN_CACHE = 512


class RunService:
    """Creates runs from events and moves them forward as their jobs end."""

    def __init__(
        self, store: Store, clock: Clock, repositories: Callable[[ProjectRecord], SourceRepository]
    ) -> None:
        self.store = store
        self.clock = clock
        self.repositories = repositories
        self._plans: OrderedDict[int, tuple[Plan, dict[str, object]]] = OrderedDict()
        self._plans_lock = threading.Lock()
        # Called when jobs were queued (the embedded runner wakes up to claim them).
        self.queued_listeners: list[Callable[[], None]] = []
        # Holds jobs that target an environment until its protection rules pass (set by
        # `wiring`; None: such jobs queue like any other, as in `shipline run`).
        self.gatekeeper: Gatekeeper | None = None

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
        runs: list[RunRecord] = []
        for path in files:
            run = self._trigger_one(
                project,
                repo,
                path,
                ref,
                sha,
                request,
                actor=actor,
                explicit=request.workflow is not None,
            )
            if run is not None:
                runs.append(run)
        return runs

    def _trigger_one(
        self,
        project: ProjectRecord,
        repo: SourceRepository,
        path: str,
        ref: str,
        sha: str,
        request: TriggerRequest,
        *,
        actor: str,
        explicit: bool,
    ) -> RunRecord | None:
        text = repo.read(sha, path)
        spec, diagnostics = load_workflow(text, path)
        inputs: dict[str, object] = {}
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
            event = Event(
                name=request.event, ref=ref, sha=sha, repository=project.name, actor=actor
            )
            ok, _ = triggered(spec, event)
            if not ok and not explicit:
                return None
            if request.event == "workflow_dispatch":
                try:
                    inputs = resolve_inputs(spec.triggers.dispatch_inputs, request.inputs or {})
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
                        spec.concurrency.group, ref, sha, request.event, project.name, actor, inputs
                    )
                    cancel_in_progress = evaluate_flag(
                        spec.concurrency.cancel_in_progress, ref, request.event, inputs
                    )
                except ExpressionError as exc:
                    error = f"{path}: concurrency: {exc}"
        payload = {
            "ref": ref,
            "after": sha,
            "inputs": inputs,
            "repository": {"full_name": project.name},
            "sender": {"login": actor},
        }
        now = self.clock.now()
        with self.store.transaction() as tx:
            run = tx.runs.create(
                NewRun(
                    project_id=project.id,
                    workflow_file=path,
                    workflow_name=name,
                    workflow_text=text,
                    event=request.event,
                    ref=ref,
                    sha=sha,
                    actor=actor,
                    trust=trust_of(request.event),
                    inputs=inputs,
                    event_payload=payload,
                    plan_digest=plan.digest if plan else "",
                    concurrency_group=group,
                ),
                now=now,
            )
            tx.audit.append(
                actor=actor,
                action="run.trigger",
                now=now,
                project_id=project.id,
                target=f"run:{run.id}",
                data={"workflow": path, "ref": ref, "sha": sha, "event": request.event},
            )
            tx.events.publish("run.created", now=now, run_id=run.id)
            if error is not None:
                run = tx.runs.set_status(
                    run.id, Status.COMPLETED, Conclusion.FAILURE, now=now, error=error
                )
                tx.events.publish("run.completed", now=now, run_id=run.id)
                return run
            if group is not None and not self._admit(tx, run, group, cancel_in_progress):
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
        """A fresh `RunState` for the run's plan (nothing recorded yet).

        A run's definition never changes, so its compiled plan is kept (per run id, the
        most recent runs): parsing the workflow at every job's start and end made a run's
        cost quadratic in its jobs.
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
            cached = (plan, github_context(run, project, payload))
            with self._plans_lock:
                self._plans[run.id] = cached
                while len(self._plans) > PLAN_CACHE:
                    self._plans.popitem(last=False)
        plan, github = cached
        inputs = run.inputs if isinstance(run.inputs, dict) else {}
        github = {**github, "run_attempt": str(run.attempt)}
        return RunState(plan, github=github, inputs=inputs), plan

    def replay(self, tx: Transaction, run: RunRecord) -> Replay:
        """Feed the stored jobs of the run's attempt into a fresh `RunState`.

        Returns the state, every planned job seen (matrix cells expanded from outputs
        included) and the decisions about jobs not stored yet.
        """
        state, plan = self.state(tx, run)
        stored = {j.key: j for j in tx.jobs.for_run(run.id, run.attempt)}
        if run.status is Status.COMPLETED and run.conclusion is Conclusion.CANCELLED:
            state.cancel()
        replay = Replay(state, plan, stored)
        while True:
            decisions = state.decide()
            for decision in decisions:
                replay.planned[decision.job.key] = decision.job
                if decision.job.key not in replay.stored:
                    replay.new.append(decision)
                    replay.stored[decision.job.key] = placeholder(decision.job)
            replayed = False
            for key, job in list(state.running.items()):
                record = replay.stored.get(key)
                if record is not None and record.status is Status.COMPLETED:
                    state.record(
                        Finished(
                            key,
                            job.job_id,
                            record.conclusion or Conclusion.FAILURE,
                            outputs_of(record),
                        )
                    )
                    replayed = True
            if not decisions and not replayed:
                return replay

    def _advance(self, tx: Transaction, run: RunRecord) -> RunRecord:
        """Create the jobs that became ready, skip those that will not run, and complete
        the run when nothing is left. Idempotent: jobs already stored are not created again.
        """
        now = self.clock.now()
        replay = self.replay(tx, run)
        if replay.new:
            jobs = [self._new_job(d.job, d if isinstance(d, Skip) else None) for d in replay.new]
            ended = False
            for created in tx.jobs.create(run.id, run.attempt, jobs, now=now):
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
        now = self.clock.now()
        with self.store.transaction() as tx:
            job = tx.jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            run = tx.runs.get(job.run_id)
            if run is not None and run.status is Status.QUEUED:
                try:
                    tx.runs.set_status(run.id, Status.IN_PROGRESS, now=now)
                    tx.events.publish("run.started", now=now, run_id=run.id)
                except InvalidTransition:
                    pass  # another job of the run started at the same moment: it is running
            tx.events.publish("job.started", now=now, run_id=job.run_id, job_id=job_id)

    def job_finished(
        self,
        job_id: int,
        conclusion: Conclusion,
        *,
        outputs: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> JobRecord:
        """A job ended: store it, apply fail-fast, and advance its run."""
        with self.store.transaction() as tx:
            job = tx.jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            if job.status is Status.COMPLETED:
                return job  # a repeated report changes nothing
            return self._finish_in(tx, job, conclusion, outputs=outputs, error=error)

    def _finish_in(
        self,
        tx: Transaction,
        job: JobRecord,
        conclusion: Conclusion,
        *,
        outputs: Mapping[str, str] | None,
        error: str | None,
    ) -> JobRecord:
        now = self.clock.now()
        job_id = job.id
        job = tx.jobs.set_status(
            job_id,
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
            job_id=job_id,
            data={"conclusion": str(conclusion)},
        )
        run = tx.runs.get(job.run_id)
        assert run is not None
        if conclusion is Conclusion.FAILURE:
            self._fail_fast(tx, run, job)
        self._advance(tx, run)
        return job

    def _fail_fast(self, tx: Transaction, run: RunRecord, failed: JobRecord) -> None:
        replay = self.replay(tx, run)
        planned = replay.planned.get(failed.key)
        if planned is None or not replay.state.is_fail_fast(planned):
            return
        now = self.clock.now()
        for sibling in tx.jobs.for_run(run.id, run.attempt):
            if sibling.job_id != failed.job_id or sibling.id == failed.id:
                continue
            if sibling.status is Status.QUEUED:
                tx.jobs.set_status(
                    sibling.id,
                    Status.COMPLETED,
                    Conclusion.CANCELLED,
                    now=now,
                    error="fail-fast: another matrix cell failed",
                )
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
            run = tx.runs.get(run_id)
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
            run = tx.runs.get(run_id)
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
