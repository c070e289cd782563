"""Protection gates: a job that targets an environment waits (status `waiting`) until the
environment's rules pass, as read from the default branch when the server decides.

- refused at once, with the reason, when the environment has no (valid) file, the run is
  untrusted and the environment does not allow that, or the run's ref is not one the
  environment allows (SECURITY-CASES 9);
- released to the queue once enough reviewers approved (never the run's own actor when
  the environment prevents self-review: SECURITY-CASES 10), the wait timer after the last
  approval ran out and no freeze window is open;
- ended (failure) when a reviewer rejects it.

Every decision, allowed or denied, is an audit event. Environment secrets reach a job only
once its gate approved it (`gate_approved`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shipline.domain.clock import Clock
from shipline.domain.deployments import DecisionRecord, GateRecord, GateState
from shipline.domain.records import JobRecord, ProjectRecord, Role, RunRecord, TokenKind
from shipline.domain.status import Conclusion, Status
from shipline.engine.environment_files import EnvironmentError, EnvironmentFile, EnvironmentFiles
from shipline.engine.errors import Conflict, Forbidden, Invalid, NotFound
from shipline.engine.principal import Principal
from shipline.engine.projects import ProjectService
from shipline.engine.protection import (
    freeze_until,
    may_review,
    ref_refusal,
    trust_refusal,
)
from shipline.engine.service import RunService
from shipline.plan.compile import PlannedJob
from shipline.store import ports
from shipline.store.ports import NewGate, Store, Transaction

SYSTEM_ACTOR = "shipline"
DECISIONS = ("approve", "reject")
# How often the tick fetches a project's repository for gates that wait on time.
REFETCH = 30.0


@dataclass(frozen=True, slots=True)
class Approval:
    """A waiting gate as `shipline approvals list` shows it."""

    gate: GateRecord
    project: str
    run_number: int
    job_key: str
    decisions: tuple[DecisionRecord, ...]
    # For the viewer it was listed for (`GateService.for_reviewer`): why they may not decide
    # on it, or "" when they may.
    not_yours: str = ""

    @property
    def approvals(self) -> int:
        return sum(1 for d in self.decisions if d.decision == "approve")


def gate_approved(tx: Transaction, job_id: int) -> bool:
    """Whether the job's environment gate approved it (its environment's secrets may be
    delivered)."""
    gate = tx.gates.for_job(job_id)
    return gate is not None and gate.state is GateState.APPROVED


class GateService:
    """Opens, decides and releases the gates of jobs that target environments."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        files: EnvironmentFiles,
        runs: RunService,
        projects: ProjectService,
    ) -> None:
        self._store = store
        self._clock = clock
        self._files = files
        self._runs = runs
        self._projects = projects
        self._fetched: dict[int, datetime] = {}

    # -- opening (called by RunService when it creates the job) ----------------------

    def open(self, tx: Transaction, run: RunRecord, job: JobRecord, planned: PlannedJob) -> bool:
        """Decide a new waiting job's gate; True when the job was ended (refused)."""
        env = planned.spec.environment
        assert env is not None
        now = self._clock.now()
        project = tx.projects.get_by_id(run.project_id)
        assert project is not None
        name = env.name
        gate = NewGate(
            project_id=run.project_id,
            run_id=run.id,
            job_id=job.id,
            environment=name[:255],
            actor=run.actor,
            ref=run.ref,
            sha=run.sha,
            required=0,
        )
        if "${{" in name:
            return self._refuse(
                tx, gate, job, "an environment is named literally: expressions are not allowed"
            )
        try:
            # The run's trigger fetched the mirror; approvals and the deploy read again.
            file = self._files.read(project, name, fetch=False)
        except EnvironmentError as exc:
            return self._refuse(tx, gate, job, str(exc))
        tx.environments.record(project.id, name, file.sha, now=now)
        refusal = trust_refusal(file.rules, run.trust) or ref_refusal(file.rules, run.ref)
        if refusal is not None:
            return self._refuse(tx, gate, job, refusal)
        reviewers = file.rules.reviewers
        required = reviewers.required if reviewers is not None else 0
        record = tx.gates.create(replace(gate, required=required), now=now)
        tx.audit.append(
            actor=SYSTEM_ACTOR,
            action="deployment.gate.open",
            now=now,
            project_id=run.project_id,
            target=f"job:{job.id}",
            data=_gate_data(record),
        )
        self._settle(tx, record, file, approvals=0)
        return False

    def _refuse(self, tx: Transaction, gate: NewGate, job: JobRecord, reason: str) -> bool:
        now = self._clock.now()
        tx.gates.create(replace(gate, state=GateState.REFUSED, reason=reason), now=now)
        tx.audit.append(
            actor=SYSTEM_ACTOR,
            action="deployment.gate.open",
            now=now,
            decision="denied",
            project_id=gate.project_id,
            target=f"job:{job.id}",
            reason=reason,
            data={"run": gate.run_id, "environment": gate.environment, "ref": gate.ref},
        )
        ended = tx.jobs.set_status(
            job.id,
            Status.COMPLETED,
            Conclusion.FAILURE,
            now=now,
            error=f"environment {gate.environment}: {reason}",
        )
        tx.events.publish("job.completed", now=now, run_id=ended.run_id, job_id=ended.id)
        return True

    def _settle(
        self, tx: Transaction, gate: GateRecord, file: EnvironmentFile, *, approvals: int
    ) -> bool:
        """Release the job when the approvals, wait timer and freeze windows allow it."""
        if approvals < gate.required:
            return False
        now = self._clock.now()
        if file.rules.wait_timer and gate.wait_until is None:
            # The timer runs from the approval that completed the count.
            until = now + timedelta(seconds=file.rules.wait_timer)
            tx.gates.set_wait(gate.id, until)
            return False
        if gate.wait_until is not None and now < gate.wait_until:
            return False
        if freeze_until(file.rules, now) is not None:
            return False
        tx.gates.set_state(gate.id, GateState.APPROVED, now=now)
        job = tx.jobs.get(gate.job_id)
        assert job is not None
        tx.audit.append(
            actor=SYSTEM_ACTOR,
            action="deployment.gate.pass",
            now=now,
            project_id=gate.project_id,
            target=f"job:{gate.job_id}",
            data=_gate_data(gate),
        )
        if job.status is Status.WAITING:
            self._runs.release_job(tx, job)
        return True

    # -- reviewers -------------------------------------------------------------------

    def pending(self, actor: Principal, project_name: str | None = None) -> list[Approval]:
        """Gates waiting in the projects the actor may see (or in one of them)."""
        ids: list[int] | None = None
        if project_name is not None:
            project = self._projects.authorize(
                actor, project_name, Role.VIEWER, action="approval.list"
            )
            ids = [project.id]
        with self._store.transaction(write=False) as tx:
            if ids is not None:
                pass
            elif actor.is_admin:
                ids = None
            elif actor.user_id is not None:
                ids = [
                    p.id
                    for p in _all_projects(tx)
                    if tx.members.role(p.id, actor.user_id) is not None
                ]
            else:
                ids = []
            out: list[Approval] = []
            for gate in tx.gates.waiting(ids):
                run = tx.runs.get(gate.run_id)
                job = tx.jobs.get(gate.job_id)
                owner = tx.projects.get_by_id(gate.project_id)
                if run is None or job is None or owner is None or job.status is not Status.WAITING:
                    continue
                decisions = tuple(tx.gates.decisions(gate.id))
                out.append(Approval(gate, owner.name, run.number, job.key, decisions))
        return out

    def for_reviewer(self, actor: Principal) -> list[Approval]:
        """The waiting gates the actor may see, those the actor may decide on first; each
        other one says why not (`not_yours`: not a reviewer, the actor's own run under
        self-review, decided already). `decide` checks again whatever this says."""
        waiting = self.pending(actor)
        files: dict[tuple[int, str], EnvironmentFile | str] = {}
        fetched: set[int] = set()  # one fetch of a project's repository per page
        out: list[Approval] = []
        with self._store.transaction(write=False) as tx:
            facts = [
                (
                    approval,
                    tx.projects.get_by_id(approval.gate.project_id),
                    tx.runs.get(approval.gate.run_id),
                    tx.members.role(approval.gate.project_id, actor.user_id)
                    if actor.user_id is not None
                    else None,
                )
                for approval in waiting
            ]
        for approval, project, run, role in facts:
            gate = approval.gate
            if project is None or run is None:
                continue
            key = (project.id, gate.environment)
            if key not in files:
                try:
                    fetch = project.id not in fetched
                    fetched.add(project.id)
                    files[key] = self._files.read(project, gate.environment, fetch=fetch)
                except EnvironmentError as exc:
                    files[key] = str(exc)
            file = files[key]
            if isinstance(file, str):
                why: str | None = file
            elif any(d.user == actor.user_name for d in approval.decisions):
                why = "you decided on it already"
            else:
                why = self._denial(actor, run, file, role)
            out.append(replace(approval, not_yours=why or ""))
        out.sort(key=lambda a: a.not_yours != "")
        return out

    def decide(
        self,
        actor: Principal,
        run_id: int,
        environment: str,
        decision: str,
        comment: str = "",
        *,
        request_id: str = "",
    ) -> list[GateRecord]:
        """Approve or reject the run's jobs waiting for `environment`; returns their gates.

        `Forbidden` (audited) when the actor is not one of the environment's reviewers, or
        started the run and the environment prevents self-review; `NotFound` when nothing of
        the run waits for that environment; `Conflict` when the actor decided already."""
        if decision not in DECISIONS:
            raise Invalid("a decision is approve or reject", field="decision")
        if len(comment) > 2000:
            raise Invalid("a comment is at most 2000 characters", field="comment")
        action = f"deployment.{decision}"
        run = self._projects.authorize_run(
            actor, run_id, Role.VIEWER, action=action, request_id=request_id
        )
        with self._store.transaction(write=False) as tx:
            project = tx.projects.get_by_id(run.project_id)
            gates = [
                g
                for g in tx.gates.for_run(run.id)
                if g.environment == environment and g.state is GateState.WAITING
            ]
            role = (
                tx.members.role(run.project_id, actor.user_id)
                if actor.user_id is not None
                else None
            )
        assert project is not None
        if not gates:
            raise NotFound(f"nothing of run {run_id} waits for environment {environment!r}")
        try:
            file = self._files.read(project, environment)
        except EnvironmentError as exc:
            raise Conflict(str(exc)) from exc
        denial = self._denial(actor, run, file, role)
        if denial is not None:
            self._audit_denied(actor, action, run, environment, denial, request_id)
            raise Forbidden(denial)
        now = self._clock.now()
        decided: list[GateRecord] = []
        released = False
        with self._store.transaction() as tx:
            for gate in gates:
                current = tx.gates.get(gate.id)
                if current is None or current.state is not GateState.WAITING:
                    continue
                try:
                    tx.gates.decide(gate.id, actor.user_name, decision, comment, now=now)
                except ports.Conflict as exc:
                    raise Conflict(
                        f"{actor.user_name} decided on run {run_id}'s {environment} already"
                    ) from exc
                tx.audit.append(
                    actor=actor.user_name,
                    action=action,
                    now=now,
                    project_id=run.project_id,
                    target=f"job:{gate.job_id}",
                    request_id=request_id,
                    reason=comment,
                    data={**_gate_data(gate), "comment": comment},
                )
                if decision == "reject":
                    why = f"rejected by {actor.user_name}" + (f": {comment}" if comment else "")
                    current = tx.gates.set_state(gate.id, GateState.REJECTED, now=now, reason=why)
                    job = tx.jobs.get(gate.job_id)
                    if job is not None and job.status is Status.WAITING:
                        self._runs.end_waiting_job(tx, job, f"environment {environment}: {why}")
                else:
                    approvals = sum(
                        1 for d in tx.gates.decisions(gate.id) if d.decision == "approve"
                    )
                    released = self._settle(tx, current, file, approvals=approvals) or released
                    current = tx.gates.get(gate.id) or current
                decided.append(current)
        if released:
            self._runs.wake_runners()
        return decided

    def _denial(
        self, actor: Principal, run: RunRecord, file: EnvironmentFile, role: Role | None
    ) -> str | None:
        if actor.kind is not TokenKind.USER:
            return "only a user may review a deployment"
        if file.rules.prevent_self_review and actor.user_name == run.actor:
            return (
                f"{actor.user_name} started run {run.id} and may not review its own deployment "
                f"to {file.name} (the environment prevents self-review)"
            )
        if not may_review(file.rules, actor.user_name, role, actor.is_admin):
            return f"{actor.user_name} is not one of environment {file.name}'s reviewers"
        return None

    def _audit_denied(
        self,
        actor: Principal,
        action: str,
        run: RunRecord,
        environment: str,
        reason: str,
        request_id: str,
    ) -> None:
        with self._store.transaction() as tx:
            tx.audit.append(
                actor=actor.user_name,
                action=action,
                now=self._clock.now(),
                decision="denied",
                project_id=run.project_id,
                target=f"run:{run.id}",
                reason=reason,
                request_id=request_id,
                data={"environment": environment, "severity": "high"},
            )

    # -- time ------------------------------------------------------------------------

    def tick(self) -> int:
        """Release the jobs whose wait timer ran out or whose freeze window closed; returns
        how many were released. Called periodically by the server."""
        with self._store.transaction(write=False) as tx:
            ready = [
                g
                for g in tx.gates.waiting()
                if sum(1 for d in tx.gates.decisions(g.id) if d.decision == "approve") >= g.required
            ]
            projects = {g.project_id: tx.projects.get_by_id(g.project_id) for g in ready}
        files: dict[tuple[int, str], EnvironmentFile | None] = {}
        released = 0
        for gate in ready:
            project = projects.get(gate.project_id)
            if project is None:
                continue
            key = (gate.project_id, gate.environment)
            if key not in files:
                files[key] = self._read_or_none(project, gate.environment)
            file = files[key]
            if file is None:
                continue
            with self._store.transaction() as tx:
                current = tx.gates.get(gate.id)
                if current is None or current.state is not GateState.WAITING:
                    continue
                if self._settle(tx, current, file, approvals=current.required):
                    released += 1
        if released:
            self._runs.wake_runners()
        return released

    def _read_or_none(self, project: ProjectRecord, name: str) -> EnvironmentFile | None:
        # Called every tick: fetch a project's mirror at most every REFETCH seconds (a rule
        # changed on the default branch, such as a freeze lifted, is seen that late).
        now = self._clock.now()
        last = self._fetched.get(project.id)
        fetch = last is None or (now - last).total_seconds() >= REFETCH
        if fetch:
            self._fetched[project.id] = now
        try:
            return self._files.read(project, name, fetch=fetch)
        except EnvironmentError:
            return None


def _gate_data(gate: GateRecord | NewGate) -> dict[str, object]:
    return {
        "run": gate.run_id,
        "job": gate.job_id,
        "environment": gate.environment,
        "ref": gate.ref,
        "sha": gate.sha,
        "required": gate.required,
    }


def _all_projects(tx: Transaction) -> list[ProjectRecord]:
    out: list[ProjectRecord] = []
    cursor: str | None = None
    while True:
        page = tx.projects.page(limit=200, cursor=cursor)
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor
