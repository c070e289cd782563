"""What a runner is handed for a claimed job, computed from the store: the planned job, its
workflow and event, the `github`, `needs` and `inputs` contexts, the run's trust, the
secrets the job references (opened only now, for the runner that holds it), its cache
scopes and its job token. One function for the embedded runner and for remote runners, so
both run a job with the same contexts and the same kind of token (`issue_token`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shipline.domain.records import JobRecord, RunRecord, TokenRecord, Trust
from shipline.domain.status import Conclusion, combine
from shipline.engine.job_tokens import NO_SCOPES, issue_for, scopes_for
from shipline.engine.secrets import SecretService
from shipline.engine.service import RunService
from shipline.engine.trust import cache_scopes
from shipline.plan.compile import Plan, PlannedJob
from shipline.runner.model import JobAssignment
from shipline.spec.secret_refs import may_reach_job_token
from shipline.store.ports import Store, Transaction

log = logging.getLogger(__name__)

# A job token outlives the job's own timeout by this much (it dies with the job anyway).
TOKEN_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A claimed job's assignment, with its run, the workflow text it was planned from
    (when asked for: remote runners rebuild the job from it) and its last log seq."""

    assignment: JobAssignment
    run: RunRecord
    workflow_text: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class AssignmentRead:
    """What `read_assignment` read of a claimed job (`finish_assignment` completes it)."""

    job: JobRecord
    run: RunRecord
    project_name: str
    default_branch: str
    planned: PlannedJob
    plan: Plan
    github: dict[str, object]
    siblings: list[JobRecord]
    last_seq: int
    text: str


def read_assignment(
    tx: Transaction,
    runs: RunService,
    job: JobRecord,
    *,
    with_text: bool = False,
    run: RunRecord | None = None,
) -> AssignmentRead:
    """What a claimed job's assignment is made of, read in the caller's transaction (a
    claim's, say; `run`: the job's run, when it read it; `with_text`: the workflow's text,
    which remote runners rebuild the job from). A job on its first try has no log yet: its
    last seq is not read."""
    if run is None or run.id != job.run_id:
        run = tx.runs.get(job.run_id)
    if run is None:
        raise LookupError(f"run {job.run_id} of job {job.id} is gone")
    project = tx.projects.get_by_id(run.project_id)
    if project is None:
        raise LookupError(f"the project of run {run.id} is gone")
    found = runs.planned(tx, run, job.key)
    if found is None:
        raise LookupError(f"job {job.key!r} is not in the plan of run {run.id}")
    planned, plan = found
    github = runs.github(tx, run)
    siblings = tx.jobs.for_run(run.id, run.attempt) if planned.needs else []
    last_seq = tx.logs.last_seq(job.id) if job.tries != 1 else -1
    text = runs.workflow_text(tx, run) if with_text else ""
    return AssignmentRead(
        job,
        run,
        project.name,
        project.default_branch,
        planned,
        plan,
        github,
        siblings,
        last_seq,
        text,
    )


def finish_claimed(
    job: JobRecord,
    read: AssignmentRead | Exception,
    *,
    secrets: SecretService | None,
    token: str | None,
) -> Prepared | Exception:
    """`finish_assignment` for a job just claimed, from what the claim's transaction read
    (or the error its read raised): the error, logged, is returned rather than raised,
    for the caller to fail the job with once the claim is committed."""
    try:
        if isinstance(read, Exception):
            raise read
        return finish_assignment(read, secrets=secrets, token=token)
    except Exception as exc:
        log.exception("cannot prepare job %s", job.id)
        return exc


def finish_assignment(
    read: AssignmentRead, *, secrets: SecretService | None = None, token: str | None = None
) -> Prepared:
    """The job's assignment from what `read_assignment` read: the needs, the secrets
    (opened now, in their own transaction: their delivery is audited) and the cache
    scopes. `token` is the job's token (`issue_token`, made when the job was claimed),
    which its steps see as `github.token` and `secrets.GITHUB_TOKEN`."""
    job, run, planned, plan = read.job, read.run, read.planned, read.plan
    needs: dict[str, object] = {}
    for need in planned.needs:
        records = [s for s in read.siblings if s.job_id == need]
        outputs: dict[str, object] = {}
        for record in records:
            if isinstance(record.outputs, dict):
                outputs.update(record.outputs)
        conclusions = [r.conclusion for r in records if r.conclusion is not None]
        result = combine(conclusions) if conclusions else Conclusion.SKIPPED
        needs[need] = {"result": str(result), "outputs": outputs}
    inputs = run.inputs if isinstance(run.inputs, dict) else {}
    # Opened only now that a runner holds the job, and only what it references.
    opened = secrets.for_job(run, job, planned, plan.workflow) if secrets is not None else {}
    # A job that runs a pull request's code on purpose (`unsafe_execute_untrusted_code`)
    # saves caches as untrusted runs do, whatever its run's trust (SECURITY-CASES 3).
    unsafe = planned.spec.unsafe_execute_untrusted_code
    cache_scope, restore_scopes = cache_scopes(
        read.project_name,
        run.ref,
        read.default_branch,
        Trust.UNTRUSTED if unsafe else run.trust,
    )
    assignment = JobAssignment(
        run_id=str(run.id),
        planned=planned,
        workflow=plan.workflow,
        event=plan.event,
        github=read.github,
        needs=needs,
        inputs=inputs,
        trust=run.trust,
        secrets=opened,
        cache_scope=cache_scope,
        cache_restore_scopes=restore_scopes,
    )
    if token is not None:
        assignment = replace(assignment, token=token)
    return Prepared(assignment, run, read.text, read.last_seq)


def issue_token(
    tx: Transaction,
    runs: RunService,
    job: JobRecord,
    *,
    now: datetime,
    run: RunRecord | None = None,
    handed_out: bool = False,
) -> tuple[str, TokenRecord]:
    """The token of a job being claimed, in the claiming transaction (the embedded runner
    and remote runners alike): `(plaintext, record)`. Its scopes are the job's
    `permissions:` (capped at read for a run that is not trusted; a job missing from its
    plan gets none); it expires with the job's timeout (plus `TOKEN_MARGIN`), is revoked
    when the job completes, and acts on the job's own project only (SECURITY-CASES 20-22).
    Only its hash is stored; hand the plaintext to the job and nowhere else. `run`: the
    job's run, when the caller has read it in this transaction; `handed_out`: it leaves
    the server now (`issue_for`)."""
    expires = now + timedelta(minutes=job.timeout_minutes) + TOKEN_MARGIN
    if run is None or run.id != job.run_id:
        run = tx.runs.get(job.run_id)
    found = runs.planned(tx, run, job.key) if run is not None else None
    scopes = NO_SCOPES
    if found is not None and run is not None:
        scopes = scopes_for(found[1].workflow, found[0].spec, run.trust)
    project_id = run.project_id if run is not None else None
    return issue_for(tx, job, project_id, expires, now=now, scopes=scopes, handed_out=handed_out)


def token_reachable(tx: Transaction, runs: RunService, run: RunRecord, job: JobRecord) -> bool:
    """Whether a step of `job` may read its job token (`may_reach_job_token`); a job
    missing from its run's plan counts as one that may."""
    found = runs.planned(tx, run, job.key)
    if found is None:
        return True
    planned, plan = found
    return may_reach_job_token(plan.workflow, planned.spec)


def continue_on_error(store: Store, runs: RunService, run: RunRecord, job: JobRecord) -> bool:
    """Whether the job's `continue-on-error` turns its failure into the run's success."""
    with store.transaction(write=False) as tx:
        return runs.continue_on_error(tx, run, job.key)
